"""Attention maps (paper Sec. 5, Fig. 7): the last layer's attention, its per-layer split, mask
alignment with the padded patch grid, the figure, and the `transinr attention` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nerf_support import assert_fails, assert_ok, invoke, json_of
from PIL import Image
from support import synthetic_image, write_png

from models.core.metalearner import TransInr
from models.core.presets import preset_config
from models.io.checkpoint import save_checkpoint
from models.tasks.attention_maps import (
    attention_figure,
    attention_map_figure,
    attention_masks,
    most_focused_tokens,
    weight_token_attention,
)


def untrained(**overrides) -> TransInr:
    torch.manual_seed(0)
    return TransInr(preset_config("tiny", **overrides)).eval()


@pytest.fixture
def picture(tmp_path):
    return write_png(tmp_path / "face.png", synthetic_image(3))


def test_last_attention_is_softmax_of_scaled_scores_and_output_unchanged():
    model = untrained()
    encoder = model.transformer
    tokens = torch.randn(2, 7, model.config.dim)
    with torch.no_grad():
        output, attention = encoder.forward_with_last_attention(tokens)
        expected_output = encoder(tokens)  # the normal (SDPA) path
        hidden = encoder.blocks[0](tokens)
        last = encoder.blocks[-1]
        qkv = last.attention.to_qkv(last.attention_norm(hidden))
        query, key, _ = qkv.view(2, 7, 3, model.config.heads, model.config.head_dim).unbind(2)
        scores = torch.einsum("bihd,bjhd->bhij", query, key) / model.config.head_dim**0.5
        by_hand = torch.exp(scores - scores.amax(-1, keepdim=True))
        by_hand = by_hand / by_hand.sum(-1, keepdim=True)
    assert attention.shape == (2, model.config.heads, 7, 7)
    torch.testing.assert_close(attention, by_hand, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(output, expected_output, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, model.config.heads, 7))


def test_weight_token_attention_splits_per_inr_layer():
    model = untrained()
    images = torch.rand(2, 3, 32, 32)
    per_layer = weight_token_attention(model, images)
    data_count = (32 // 8) ** 2  # the tiny preset: 32 x 32 images, 8 x 8 patches, no padding
    assert [a.shape[1] for a in per_layer] == model.hypernetwork.group_counts == [8, 8, 3]
    for layer_attention in per_layer:
        assert layer_attention.shape == (2, layer_attention.shape[1], data_count)
        assert (layer_attention >= 0).all()
        data_share = layer_attention.sum(-1)  # the rest went to the weight tokens
        assert (data_share <= 1 + 1e-6).all() and (data_share > 0).all()
        assert (data_share < 1 - 1e-4).all()  # weight tokens attend to weight tokens too


def test_single_vector_model_gives_its_one_token_to_every_layer():
    model = untrained(method="single-vector")
    if model.hypernetwork.weight_token_count != 1:
        pytest.skip("this version has no single-vector method")
    per_layer = weight_token_attention(model, torch.rand(1, 3, 32, 32))
    assert [a.shape for a in per_layer] == [(1, 1, 16)] * 3


def test_nerf_model_is_refused_by_the_core():
    torch.manual_seed(0)
    model = TransInr(preset_config("tiny", "nerf")).eval()
    with pytest.raises(Exception, match="image model"):
        weight_token_attention(model, torch.rand(1, 1, 9, 32, 32))


def test_most_focused_tokens_prefers_peaked_attention_and_is_deterministic():
    layer_attention = torch.full((4, 16), 1 / 32)  # tokens 0..3 spread evenly over the patches
    layer_attention[2] = 0.0
    layer_attention[2, 5] = 0.4  # token 2: all of its data attention on one patch
    layer_attention[1, :8] = 1 / 16  # token 1: half the patches
    assert most_focused_tokens(layer_attention, 2) == [2, 1]
    assert most_focused_tokens(layer_attention, 9) == [2, 1, 0, 3]  # ties: lower id first


def forced_onto_bright_patch(image_size: int, padding: int) -> TransInr:
    """A one-block model whose weight tokens attend only to patches with content (and to each
    other): zero patches give zero tokens, keys equal queries only on the content direction."""
    model = untrained(image_size=image_size, padding=padding, depth=1)
    direction = torch.tensor([1.0, -1.0]).repeat(model.config.dim // 2)  # LayerNorm keeps it
    with torch.no_grad():
        embedding = model.tokenizer.patch_embedding
        embedding.weight.copy_(
            direction[:, None].expand_as(embedding.weight) / embedding.in_features
        )
        embedding.bias.zero_()
        model.tokenizer.position_embedding.zero_()
        model.hypernetwork.weight_tokens.copy_(
            direction.expand_as(model.hypernetwork.weight_tokens)
        )
        block = model.transformer.blocks[0].attention
        inner = block.heads * block.head_dim
        block.to_qkv.weight.zero_()
        block.to_qkv.weight[:inner].copy_(3.0 * torch.eye(inner, model.config.dim))
        block.to_qkv.weight[inner : 2 * inner].copy_(3.0 * torch.eye(inner, model.config.dim))
    return model


def test_masks_peak_where_the_attended_patch_lies_in_the_padded_image():
    # 27 + 5 padding = 32: a 4 x 4 grid of 8 x 8 patches, 2 padding rows / columns before.
    model = forced_onto_bright_patch(image_size=27, padding=5)
    row, column = 1, 2  # the patch covering padded pixels [8, 16) x [16, 24)
    image = torch.zeros(3, 27, 27)
    image[:, 8 * row - 2 : 8 * row + 6, 8 * column - 2 : 8 * column + 6] = 1.0
    per_layer = weight_token_attention(model, image[None])
    for layer_attention in per_layer:
        share = layer_attention[0] / layer_attention[0].sum(-1, keepdim=True)
        assert (share.argmax(-1) == 4 * row + column).all()
        assert (share[:, 4 * row + column] > 0.999).all()
        masks = attention_masks(layer_attention[0], 27, 8, 5)  # (g, 27, 27)
        assert masks.shape == (layer_attention.shape[1], 27, 27)
        assert torch.allclose(masks.amax(dim=(-2, -1)), torch.ones(masks.shape[0]))
        for mask in masks:
            peak_rows, peak_columns = torch.nonzero(mask > 0.999, as_tuple=True)
            # bilinear peak: the patch's centre (padded 8r + 3.5), minus the 2 padding pixels
            assert peak_rows.float().mean() == pytest.approx(8 * row + 1.5)
            assert peak_columns.float().mean() == pytest.approx(8 * column + 1.5)
            assert mask[:, :4].max() < 1e-3 and mask[20:, :].max() < 1e-3  # far patches: dark


def test_attention_masks_without_padding_cover_the_whole_grid():
    attention = torch.zeros(2, 16)
    attention[0, 0], attention[1, 15] = 0.2, 0.5  # top-left and bottom-right patches
    masks = attention_masks(attention, 32, 8, 0)
    assert masks.shape == (2, 32, 32) and masks.min() >= 0 and masks.max() <= 1
    assert masks[0, :8, :8].mean() > 0.5 and masks[0, 24:, 24:].max() == 0
    assert masks[1, 24:, 24:].mean() > 0.5 and masks[1, :8, :8].max() == 0


def test_figure_has_a_row_per_inr_layer_and_one_plus_k_columns():
    model = untrained()
    image = torch.rand(3, 32, 32)
    figure, chosen = attention_map_figure(model, image, tokens=4, cell=10)
    assert figure.dtype == np.uint8 and figure.shape == (3 * 10, 5 * 10, 3)
    assert [len(ids) for ids in chosen] == [4, 4, 3]  # the last layer has only 3 weight tokens
    assert all(len(set(ids)) == len(ids) for ids in chosen)
    assert (figure[20:, 40:] == 255).all()  # its missing cell stays white
    first_column = attention_figure(image, [torch.ones(1, 32, 32)], 1, 32)
    expected = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(first_column[:, :32], expected)
    assert np.array_equal(first_column[:, 32:], expected)  # an all-ones mask shows the image


# --- the command line ------------------------------------------------------------------------


def test_cli_writes_the_figure(tmp_path, tiny_run, picture):
    out = tmp_path / "figs" / "attn.png"
    args = ("attention", picture, "--model", tiny_run, "-o", out, "--cell", 12, "--tokens", 2)
    summary = json_of(invoke(*args, "--json"))
    assert summary["output"] == str(out) and summary["layers"] == 3
    assert [len(ids) for ids in summary["tokens"]] == [2, 2, 2]
    with Image.open(out) as written:
        assert written.format == "PNG" and written.mode == "RGB"
        assert written.size == (3 * 12, 3 * 12)  # (1 + 2 tokens) columns, 3 INR layers
    assert sorted(p.name for p in out.parent.iterdir()) == ["attn.png"]  # no temporary left


def test_cli_refuses_an_existing_output_without_overwrite(tmp_path, tiny_run, picture):
    out = tmp_path / "attn.png"
    out.write_bytes(b"keep")
    args = ("attention", picture, "--model", tiny_run, "-o", out, "--cell", 8, "--fit", "pad")
    assert_fails(invoke(*args), "already exists", "--overwrite")
    assert out.read_bytes() == b"keep"
    assert_ok(invoke(*args, "--overwrite", "--quiet"))
    with Image.open(out) as written:
        assert written.size == (4 * 8, 3 * 8)


def test_cli_refuses_a_nerf_checkpoint(tmp_path, picture):
    torch.manual_seed(0)
    config = preset_config("tiny", "nerf")
    checkpoint = tmp_path / "nerf.safetensors"
    save_checkpoint(checkpoint, TransInr(config), config, {"step": 0})
    out = tmp_path / "attn.png"
    result = invoke("attention", picture, "--model", checkpoint, "-o", out)
    assert_fails(result, "nerf model", "image model", "--model")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png", "nerf.safetensors"]


def test_cli_refuses_a_non_png_output(tmp_path, tiny_run, picture):
    out = tmp_path / "attn.jpg"
    assert_fails(invoke("attention", picture, "--model", tiny_run, "-o", out), ".png")
    assert not out.exists()
