"""The meta-learner: tokenizer, Transformer, hypernetwork and weight grouping (paper Sec. 3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.core.config import TASKS
from models.core.hypernetwork import HyperNetwork, group_modulate
from models.core.metalearner import TransInr, parameter_breakdown
from models.core.presets import IMAGE_PRESETS, PRESETS, preset_config
from models.core.tokenizers import ImageTokenizer, image_to_patches
from models.core.transformer import Attention, TransformerEncoder, naive_attention
from models.errors import TransInrError
from models.tasks.training import TrainConfig, recipe

PAPER_BREAKDOWN = {
    "tokenizer": 494_592,
    "transformer": 42_513_408,
    "base INR": 263_939,
    "layer heads": 992_000,
    "weight tokens": 198_912,
    "total": 44_462_851,
}


def test_celeba_preset_parameter_count_matches_the_paper():
    model = TransInr(preset_config("celeba"))
    counts = parameter_breakdown(model)
    assert counts == PAPER_BREAKDOWN
    assert sum(p.numel() for p in model.parameters()) == 44_462_851
    parts = sum(v for k, v in counts.items() if k != "total")
    assert parts == counts["total"]


def test_paper_preset_shapes():
    config = preset_config("celeba")
    assert config.data_token_count == 400
    assert config.inr.layer_shapes() == [(256, 256)] * 4 + [(256, 3)]
    assert config.group_counts() == [64, 64, 64, 64, 3]
    assert sum(config.group_counts()) == 259
    assert config.inr.parameter_count() == 263_939
    assert preset_config("imagenette").to_json().replace("imagenette", "celeba") == (
        config.to_json()
    )


def test_celeba89_has_100_data_tokens():
    config = preset_config("celeba89")
    assert (config.image_size, config.padding, config.patch_size) == (89, 1, 9)
    assert config.patch_grid == 10
    assert config.data_token_count == 100
    tokenizer = ImageTokenizer(89, 9, 1, 3, config.dim)
    tokens = tokenizer(torch.rand(2, 3, 89, 89))
    assert tokens.shape == (2, 100, config.dim)


@pytest.mark.parametrize("name", sorted(IMAGE_PRESETS))
def test_tokenizer_output_has_data_token_count(name):
    config = preset_config(name)
    tokenizer = ImageTokenizer(
        config.image_size, config.patch_size, config.padding, config.channels, 8
    )
    size = config.image_size
    assert tokenizer(torch.rand(1, 3, size, size)).shape == (1, config.data_token_count, 8)


def test_patches_are_row_major_with_padding_after():
    # 3x3 image, padding 1 (0 before, 1 after) -> 4x4, 2x2 patches, row-major.
    image = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3) + 1
    patches = image_to_patches(image, patch_size=2, padding=1)
    assert patches.shape == (1, 4, 4)
    expected = torch.tensor(
        [[1.0, 2, 4, 5], [3, 0, 6, 0], [7, 8, 0, 0], [9, 0, 0, 0]]
    )  # each patch flattened as (row 0, row 1)
    assert torch.equal(patches[0], expected)


def test_generated_weights_have_per_layer_shapes(tiny_config):
    torch.manual_seed(0)
    model = TransInr(tiny_config).eval()
    with torch.no_grad():
        weights = model(torch.rand(3, 3, tiny_config.image_size, tiny_config.image_size))
    shapes = tiny_config.inr.layer_shapes()
    assert len(weights) == len(shapes) == tiny_config.inr.depth
    for wb, (fan_in, fan_out) in zip(weights, shapes, strict=True):
        assert wb.shape == (3, fan_in + 1, fan_out)
        assert torch.isfinite(wb).all()


def test_generated_weight_columns_have_unit_norm_and_base_bias(tiny_config):
    torch.manual_seed(1)
    model = TransInr(tiny_config).eval()
    with torch.no_grad():
        weights = model(torch.rand(2, 3, tiny_config.image_size, tiny_config.image_size))
    for wb, base in zip(weights, model.hypernetwork.base_weights, strict=True):
        norms = wb[:, :-1, :].norm(dim=1)  # L2 over the input dimension, per column
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
        assert torch.equal(wb[:, -1, :], base[-1].detach().expand(2, -1))
    # The weights depend on the image (they are generated, not just the base).
    assert not torch.allclose(weights[0][0], weights[0][1])


def reference_group_modulate(base: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """W[:, j] = normalize(W_base[:, j] * u[:, j mod g]), bias row unchanged; spelled out."""
    batch, fan_in, groups = u.shape
    fan_out = base.shape[1]
    out = torch.empty(batch, fan_in + 1, fan_out, dtype=base.dtype)
    for b in range(batch):
        for j in range(fan_out):
            column = base[:-1, j] * u[b, :, j % groups]
            out[b, :-1, j] = column / column.norm().clamp_min(1e-12)
            out[b, -1, j] = base[-1, j]
    return out


@pytest.mark.parametrize(
    ("fan_in", "fan_out", "groups"),
    [(5, 8, 4), (5, 10, 4), (7, 10, 3), (6, 3, 3), (4, 7, 1), (3, 6, 6)],
)
def test_group_modulate_matches_hand_written_loop(fan_in, fan_out, groups):
    generator = torch.Generator().manual_seed(fan_in * 100 + fan_out * 10 + groups)
    base = torch.randn(fan_in + 1, fan_out, generator=generator, dtype=torch.float64)
    u = torch.randn(2, fan_in, groups, generator=generator, dtype=torch.float64)
    result = group_modulate(base, u)
    expected = reference_group_modulate(base, u)
    assert result.shape == (2, fan_in + 1, fan_out)
    assert torch.allclose(result, expected, atol=1e-12)
    assert torch.equal(result[:, -1], base[-1].expand(2, -1))


def test_group_modulate_tiles_groups_rather_than_interleaving():
    # out 6, g 3: columns 0 and 3 share group 0 (tiled), so with a base of all ones their
    # generated directions are the same; with interleaving, columns 0 and 1 would share.
    base = torch.ones(4, 6, dtype=torch.float64)
    u = torch.randn(1, 3, 3, dtype=torch.float64)
    result = group_modulate(base, u)[0, :-1]
    assert torch.allclose(result[:, 0], result[:, 3])
    assert torch.allclose(result[:, 2], result[:, 5])
    assert not torch.allclose(result[:, 0], result[:, 1])


@pytest.mark.parametrize("groups", [1, 4, 16])
def test_weight_token_count_is_min_groups_out_per_layer(groups):
    config = preset_config("tiny", groups=groups)
    expected = [min(groups, fan_out) for _, fan_out in config.inr.layer_shapes()]
    assert config.group_counts() == expected
    model = TransInr(config)
    assert model.hypernetwork.group_counts == expected
    assert model.hypernetwork.weight_tokens.shape == (sum(expected), config.dim)
    assert model.hypernetwork.weight_token_count == sum(expected)
    assert {1: 3, 4: 11, 16: 35}[groups] == sum(expected)  # tiny: outs (32, 32, 3)
    heads = [head[1].out_features for head in model.hypernetwork.heads]
    assert heads == [fan_in for fan_in, _ in config.inr.layer_shapes()]


def test_hypernetwork_uses_the_last_weight_token_outputs():
    shapes = [(4, 6), (6, 2)]
    hyper = HyperNetwork(shapes, dim=8, groups=4)
    assert hyper.group_counts == [4, 2]
    outputs = torch.randn(1, 6, 8)
    weights = hyper(outputs)
    changed = outputs.clone()
    changed[:, 4:] += torch.randn(1, 2, 8)  # only the second layer's tokens
    weights_changed = hyper(changed)
    assert torch.equal(weights[0], weights_changed[0])
    assert not torch.allclose(weights[1], weights_changed[1])


@pytest.mark.parametrize("groups", [0, 33])
def test_groups_out_of_range_are_refused(groups):
    with pytest.raises(TransInrError, match="groups"):
        preset_config("tiny", groups=groups)


def test_each_preset_is_one_entry_holding_its_model_and_its_recipe():
    assert tuple(PRESETS) == TASKS
    for task, presets in PRESETS.items():
        for name, preset in presets.items():
            assert preset_config(name, task) == preset.model
            assert (preset.model.task, preset.model.preset) == (task, name)
            train_config = recipe(name, task)
            for key, value in preset.recipe.items():
                assert getattr(train_config, key) == value, (task, name, key)
    assert recipe("celeba").epochs == 30.0 and recipe("imagenette").epochs == 400.0
    assert recipe("chairs-2view", "nerf").support_views == 2
    assert recipe("custom", lr=0.5) == TrainConfig(lr=0.5)  # no preset: the defaults
    assert recipe("tiny", lr=None).lr == PRESETS["image"]["tiny"].recipe["lr"]


def test_unknown_preset_is_refused():
    with pytest.raises(TransInrError, match="unknown preset 'nope'"):
        preset_config("nope")


def test_sdpa_attention_equals_naive_attention():
    generator = torch.Generator().manual_seed(0)
    query, key, value = torch.randn(3, 2, 4, 13, 16, generator=generator)
    output, attention = naive_attention(query, key, value)
    assert torch.allclose(F.scaled_dot_product_attention(query, key, value), output, atol=1e-5)
    assert attention.shape == (2, 4, 13, 13)
    assert torch.allclose(attention.sum(-1), torch.ones(2, 4, 13), atol=1e-6)


def test_attention_module_sdpa_and_naive_paths_agree():
    torch.manual_seed(0)
    attention = Attention(dim=32, heads=4, head_dim=8)
    tokens = torch.randn(2, 9, 32)
    with torch.no_grad():
        fast = attention(tokens)
        attention.use_sdpa = False
        slow = attention(tokens)
    assert fast.shape == (2, 9, 32)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert attention.to_qkv.bias is None and attention.to_out.bias is not None


def test_transformer_reference_attention_gives_the_same_outputs():
    torch.manual_seed(0)
    encoder = TransformerEncoder(dim=32, depth=2, heads=4, head_dim=8, ff_dim=64).eval()
    tokens = torch.randn(2, 11, 32)
    with torch.no_grad():
        fast = encoder(tokens)
        encoder.set_reference_attention(True)
        slow = encoder(tokens)
    assert all(not block.attention.use_sdpa for block in encoder.blocks)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert not torch.allclose(fast, tokens)


def test_config_json_round_trip_and_unknown_fields():
    config = preset_config("celeba89", groups=16)
    again = type(config).from_json(config.to_json())
    assert again == config
    assert again.groups == 16
    with pytest.raises(TransInrError, match="unknown fields"):
        type(config).from_dict({**again.__dict__, "inr": {}, "sparkle": 1})
