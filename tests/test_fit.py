"""Fitting INRs from scratch (`models/tasks/fitting.py`, `transinr fit`) and the SIREN (sine)
INR."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image
from support import synthetic_image, write_png
from test_cli import assert_fails, assert_ok, invoke, json_of

from models.core.config import INRConfig
from models.core.inr import (
    SINE_OMEGA,
    fourier_features,
    fourier_frequencies,
    grid_image_inr,
    image_inr,
    init_weights,
)
from models.core.presets import preset_config
from models.core.rendering import coordinate_grid, pixel_centres, render_image
from models.errors import TransInrError
from models.io.inr_file import InrFile, load_inr, save_inr
from models.io.inr_header import ImageHeader
from models.tasks.fitting import fit_image, fit_image_file
from models.tasks.refinement import observed_psnr

SIREN = INRConfig(fourier_count=0, depth=3, width=16, activation="sine")
TINY_INR = preset_config("tiny").inr


def tiny_inr(activation: str) -> INRConfig:
    """The tiny preset's INR; sine on the raw coordinates, as `transinr fit` builds it."""
    if activation == "sine":
        return dataclasses.replace(TINY_INR, activation="sine", fourier_count=0)
    return dataclasses.replace(TINY_INR)


def random_weights(config: INRConfig, batch: int = 1, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        0.3 * torch.randn(batch, fan_in + 1, fan_out, generator=generator)
        for fan_in, fan_out in config.layer_shapes()
    ]


def synthetic_tensor(size: int = 16) -> torch.Tensor:
    return torch.from_numpy(synthetic_image(3, size, size)).permute(2, 0, 1).float() / 255.0


# The INR functions


def test_sine_inr_is_a_siren():
    weights = random_weights(SIREN, batch=2)
    coords = torch.rand(2, 10, 2) * 2 - 1
    hidden = coords
    for wb in weights[:-1]:  # sin(w0 (x W + b)) on every hidden layer, as SIREN's code does
        hidden = torch.sin(30.0 * (hidden @ wb[:, :-1] + wb[:, -1:]))
    expected = hidden @ weights[-1][:, :-1] + weights[-1][:, -1:] + 0.5
    assert SIREN.in_dim == 2 and SINE_OMEGA == 30.0
    assert torch.allclose(image_inr(coords, weights, SIREN), expected, atol=1e-4)


@pytest.mark.parametrize("fourier_count", [0, 4])
def test_grid_render_of_a_sine_inr_equals_the_pointwise_one(fourier_count):
    config = dataclasses.replace(SIREN, fourier_count=fourier_count)
    torch.manual_seed(0)  # SIREN-scaled weights: w0 = 30 magnifies rounding of larger ones
    weights = [w + 0.01 * torch.randn_like(w) for w in init_weights(config, batch=2)]
    box = (-0.5, -1.0, 0.25, 0.8)
    pointwise = image_inr(coordinate_grid(5, 7, box)[None].expand(2, -1, -1), weights, config)
    rows, cols = pixel_centres(5, box[0], box[2]), pixel_centres(7, box[1], box[3])
    separable = grid_image_inr(rows, cols, weights, config)
    assert torch.allclose(separable, pointwise, atol=1e-4)
    assert not torch.allclose(separable[0], separable[1])


def test_siren_initialisation_ranges():
    config = dataclasses.replace(SIREN, depth=4, width=64)
    torch.manual_seed(0)
    weights = init_weights(config, batch=2)
    assert [tuple(w.shape) for w in weights] == [(2, 3, 64), (2, 65, 64), (2, 65, 64), (2, 65, 3)]
    assert torch.equal(weights[0][0], weights[0][1])  # shared across the batch
    for index, wb in enumerate(weights):
        fan_in = wb.shape[1] - 1
        bound = 1 / fan_in if index == 0 else math.sqrt(6 / fan_in) / 30
        weight, bias = wb[0, :-1].abs().max().item(), wb[0, -1].abs().max().item()
        assert 0.8 * bound < weight <= bound
        assert bias <= 1 / math.sqrt(fan_in)


def test_relu_inr_and_initialisation_are_unchanged():
    """The ReLU INR is the paper's: Fourier features, ReLU, linear output; nn.Linear init."""
    config = TINY_INR
    torch.manual_seed(5)
    weights = init_weights(config)
    torch.manual_seed(5)
    first = torch.nn.Linear(config.in_dim, config.width)
    assert torch.equal(weights[0][0, :-1], first.weight.detach().t())
    assert torch.equal(weights[0][0, -1], first.bias.detach())
    weights = random_weights(config, seed=1)
    coords = torch.rand(1, 9, 2) * 2 - 1
    hidden = fourier_features(coords, fourier_frequencies(config))
    for wb in weights[:-1]:
        hidden = torch.relu(hidden @ wb[:, :-1] + wb[:, -1:])
    expected = hidden @ weights[-1][:, :-1] + weights[-1][:, -1:] + 0.5
    assert torch.allclose(image_inr(coords, weights, config), expected, atol=1e-5)


def test_config_accepts_sine_and_raw_coordinates_only_for_sine():
    data = dataclasses.asdict(SIREN)
    assert INRConfig.from_dict(data) == SIREN
    for bad in ({"activation": "tanh"}, {"activation": "relu", "fourier_count": 0}):
        with pytest.raises(TransInrError):
            INRConfig.from_dict({**data, **bad})


# Fitting


@pytest.mark.parametrize(("activation", "lr"), [("relu", 1e-2), ("sine", 1e-3)])
def test_fitting_raises_psnr_well_above_the_initial_one(activation, lr):
    config, image = tiny_inr(activation), synthetic_tensor()
    torch.manual_seed(0)
    initial = observed_psnr(init_weights(config), config, image[None]).item()
    losses = []
    weights, score = fit_image(image, config, 50, lr, on_step=lambda s, loss: losses.append(loss))
    assert len(losses) == 50 and losses[-1] < losses[0] / 4
    assert score > initial + 8, (initial, score)
    assert [tuple(w.shape) for w in weights] == [(f + 1, o) for f, o in config.layer_shapes()]
    again = observed_psnr([w[None] for w in weights], config, image[None]).item()
    assert again == pytest.approx(score, abs=1e-4)


def test_fitting_is_deterministic_and_rejects_bad_settings():
    config, image = tiny_inr("sine"), synthetic_tensor(8)
    first, _ = fit_image(image, config, 3, 1e-3, seed=4)
    second, _ = fit_image(image, config, 3, 1e-3, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    for steps, lr in ((0, 1e-3), (3, 0.0), (3, float("nan"))):
        with pytest.raises(TransInrError):
            fit_image(image, config, steps, lr)
    with pytest.raises(TransInrError):
        fit_image(image[0], config, 3, 1e-3)


def test_running_out_of_memory_is_a_one_line_error(monkeypatch):
    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr("models.tasks.fitting.refine", exhausted)
    with pytest.raises(TransInrError, match="out of memory fitting 8x8 pixels"):
        fit_image(synthetic_tensor(8), tiny_inr("relu"), 3, 1e-3)


def test_fit_image_file_pad_records_the_content_box(tmp_path):
    path = write_png(tmp_path / "wide.png", synthetic_image(1, 8, 16))
    inr_file, seconds = fit_image_file(path, tiny_inr("relu"), 16, 3, 1e-3, fit="pad")
    header = inr_file.header
    assert seconds > 0 and header.fit.mode == "pad"
    assert header.content_box == (-0.5, -1.0, 0.5, 1.0)
    assert (header.native_width, header.native_height, header.input_size) == (16, 8, 16)
    assert (header.fit_steps, header.fit_lr, header.activation) == (3, 1e-3, "relu")


SINE_HEADER = ImageHeader(native_width=16, native_height=16, activation="sine")


def test_a_sine_inr_file_round_trips(tmp_path):
    config = tiny_inr("sine")
    weights = [w[0] for w in random_weights(config)]
    save_inr(InrFile(weights, config, "image", SINE_HEADER), tmp_path / "s.inr")
    loaded = load_inr(tmp_path / "s.inr")
    assert loaded.inr == config and loaded.header.activation == "sine"
    assert all(torch.equal(a, b) for a, b in zip(loaded.weights, weights, strict=True))
    assert torch.equal(
        render_image(loaded.batched(), config, 6, 6),
        render_image([w[None] for w in weights], config, 6, 6),
    )


# The command line


@pytest.fixture
def picture(tmp_path):
    return write_png(tmp_path / "pic.png", synthetic_image(2, 20, 24))


@pytest.mark.parametrize("activation", ["relu", "sine"])
def test_fit_writes_an_inr_that_render_info_and_refine_accept(tmp_path, picture, activation):
    out = tmp_path / "fitted" / "pic.inr"
    details = json_of(
        invoke(
            "fit", picture, "-o", out, "--preset", "tiny", "--size", 16, "--steps", 20,
            "--activation", activation, "--device", "cpu", "--quiet", "--json",
        )
    )  # fmt: skip
    assert details["inr"] == str(out) and details["image"] == str(picture)
    assert details["steps"] == 20 and details["activation"] == activation
    assert details["seconds"] > 0 and 5 < details["psnr"] < 100
    info = json_of(invoke("info", out, "--json"))
    assert info["inr"]["activation"] == info["activation"] == activation
    assert info["fit_steps"] == 20 and info["input_size"] == 16 and info["psnr"] == details["psnr"]
    assert (info["native_width"], info["native_height"]) == (20, 20)  # the centre crop
    assert_ok(invoke("render", out, "--size", 40, "-o", tmp_path / "big.png", "--quiet"))
    with Image.open(tmp_path / "big.png") as rendered:
        assert rendered.size == (40, 40) and np.asarray(rendered).std() > 0
    refined = tmp_path / "refined.inr"
    assert_ok(invoke("refine", out, "--image", picture, "--steps", 2, "-o", refined, "-q"))
    assert load_inr(refined).inr.activation == activation


def test_fit_prints_one_summary_line(tmp_path, picture):
    """One result line, with or without -q (it silences the progress bar only)."""
    for name, quiet in (("a", ("-q",)), ("b", ())):
        target = tmp_path / f"{name}.inr"
        result = assert_ok(
            invoke("fit", picture, "-o", target, "--preset", "tiny", "--steps", 2, *quiet)
        )
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{picture} -> {target}  fit 2 ")
        assert " PSNR " in lines[0] and lines[0].endswith(" dB")


def test_fit_refuses_an_existing_output_without_overwrite(tmp_path, picture):
    out = tmp_path / "kept.inr"
    out.write_bytes(b"keep me")
    args = ("fit", picture, "-o", out, "--preset", "tiny", "--steps", 2, "-q")
    assert_fails(invoke(*args), "already exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    assert_ok(invoke(*args, "--overwrite"))
    assert load_inr(out).header.fit_steps == 2


def test_fit_bad_input_is_one_error_line_and_no_file(tmp_path, picture):
    out = tmp_path / "out.inr"
    assert_fails(invoke("fit", picture, "-o", out, "--activation", "tanh"), "tanh", code=2)
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture")
    assert_fails(invoke("fit", broken, "-o", out, "--steps", 2), "not an image")
    assert_fails(invoke("fit", tmp_path / "missing.png", "-o", out), "not found")
    assert_fails(invoke("fit", picture, "-o", out, "--preset", "huge"), "unknown preset")
    assert_fails(invoke("fit", picture, "-o", out, "--lr", -1), "--lr")
    assert_fails(invoke("fit", picture, "-o", out, "--size", 5000), "--size")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.png", "pic.png"]
