"""INRs as pure functions of (coordinates, weights), chunked rendering, PNG writing and PSNR."""

from __future__ import annotations

import io
import math
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from models.core.config import INRConfig
from models.core.inr import fourier_features, fourier_frequencies, grid_image_inr, image_inr
from models.core.inr import init_weights as fresh_weights
from models.core.presets import preset_config
from models.core.rendering import (
    coordinate_grid,
    pixel_centres,
    psnr,
    render_image,
    render_pixels,
    render_quantized,
)
from models.io.images import encode_png


@pytest.fixture
def inr_config() -> INRConfig:
    return preset_config("tiny").inr


@pytest.fixture
def weights(inr_config):
    """Two different random INRs (batch of 2) with outputs spread over [0, 1]."""
    torch.manual_seed(0)
    layers = fresh_weights(inr_config, batch=2)
    layers = [w + 0.05 * torch.randn_like(w) for w in layers]
    layers[-1] = layers[-1] * 4.0  # spread the output around 0.5, with some clamping
    return layers


def test_fourier_features_follow_the_paper():
    config = preset_config("celeba").inr
    frequencies = fourier_frequencies(config)
    assert frequencies.shape == (64,)
    assert frequencies[0].item() == pytest.approx(math.pi)
    assert frequencies[-1].item() == pytest.approx(1024 * math.pi, rel=1e-5)
    coords = torch.tensor([[0.25, -0.5]])
    features = fourier_features(coords, frequencies)
    assert features.shape == (1, 256) == (1, config.in_dim)
    assert features[0, 0].item() == pytest.approx(math.cos(math.pi * 0.25), abs=1e-6)
    assert features[0, 64].item() == pytest.approx(math.cos(math.pi * -0.5), abs=1e-6)
    assert features[0, 128].item() == pytest.approx(math.sin(math.pi * 0.25), abs=1e-6)


def test_pixel_centres_and_coordinate_grid():
    assert torch.allclose(pixel_centres(4), torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    grid = coordinate_grid(2, 3)
    assert grid.shape == (6, 2)
    assert torch.allclose(grid[1], torch.tensor([-0.5, 0.0]))  # (y, x), row-major
    assert torch.allclose(grid[3], torch.tensor([0.5, -2 / 3]))


@pytest.mark.parametrize("box", [(-1.0, -1.0, 1.0, 1.0), (-0.5, -1.0, 0.25, 0.8)])
def test_grid_image_inr_equals_image_inr_on_the_coordinate_grid(inr_config, weights, box):
    height, width = 7, 11
    coords = coordinate_grid(height, width, box)
    pointwise = image_inr(coords[None].expand(2, -1, -1), weights, inr_config)
    rows = pixel_centres(height, box[0], box[2])
    cols = pixel_centres(width, box[1], box[3])
    separable = grid_image_inr(rows, cols, weights, inr_config)
    assert separable.shape == (2, height * width, 3)
    assert torch.allclose(separable, pointwise, atol=1e-5)
    assert not torch.allclose(separable[0], separable[1])


def test_render_pixels_is_differentiable(inr_config, weights):
    params = [w.clone().requires_grad_(True) for w in weights]
    render_pixels(params, inr_config, 5, 6).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("chunk_pixels", [1, 7, 40, 100])
def test_render_image_small_chunks_equal_one_big_chunk(inr_config, weights, chunk_pixels):
    whole = render_image(weights, inr_config, 13, 9, chunk_pixels=1 << 20)
    chunked = render_image(weights, inr_config, 13, 9, chunk_pixels=chunk_pixels)
    assert whole.shape == (2, 3, 13, 9)
    assert torch.allclose(chunked, whole, atol=1e-6)
    assert whole.min() >= 0 and whole.max() <= 1


def test_render_image_equals_clamped_render_pixels(inr_config, weights):
    image = render_image(weights, inr_config, 6, 10)
    pixels = render_pixels(weights, inr_config, 6, 10).detach().clamp(0, 1)
    assert torch.allclose(image.permute(0, 2, 3, 1).reshape(2, -1, 3), pixels, atol=1e-6)


@pytest.mark.parametrize(
    ("bit_depth", "dtype", "scale"), [(8, np.uint8, 255), (16, np.uint16, 65535)]
)
def test_render_quantized_dtype_shape_and_range(inr_config, weights, bit_depth, dtype, scale):
    single = [w[:1] for w in weights]
    array = render_quantized(single, inr_config, 12, 17, bit_depth=bit_depth, chunk_pixels=30)
    assert array.dtype == dtype
    assert array.shape == (12, 17, 3)
    reference = render_image(single, inr_config, 12, 17)[0].permute(1, 2, 0).numpy()
    expected = np.round(reference * scale)
    assert np.abs(array.astype(np.float64) - expected).max() <= 1
    assert array.max() <= scale
    assert len(np.unique(array)) > 10  # not a constant image


def test_render_quantized_reports_rows(inr_config, weights):
    rows = []
    render_quantized(
        [w[:1] for w in weights], inr_config, 10, 8, chunk_pixels=24, on_rows=rows.append
    )
    assert sum(rows) == 10
    assert rows == [3, 3, 3, 1]


def test_render_box_sub_region_matches_the_full_render(inr_config, weights):
    full = render_image(weights, inr_config, 16, 16)
    top_left = render_image(weights, inr_config, 8, 8, box=(-1.0, -1.0, 0.0, 0.0))
    assert torch.allclose(top_left, full[:, :, :8, :8], atol=1e-5)
    bottom_right_strip = render_image(weights, inr_config, 4, 16, box=(0.5, -1.0, 1.0, 1.0))
    assert torch.allclose(bottom_right_strip, full[:, :, 12:, :], atol=1e-5)
    single = [w[:1] for w in weights]
    quantized = render_quantized(single, inr_config, 8, 8, box=(-1.0, 0.0, 0.0, 1.0))
    full_quantized = render_quantized(single, inr_config, 16, 16)
    assert np.abs(quantized.astype(int) - full_quantized[:8, 8:].astype(int)).max() <= 1


def parse_png(data: bytes) -> tuple[dict, bytes]:
    """Split a PNG into IHDR fields and the concatenated IDAT data, checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        position += 12 + length
    assert position == len(data)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    header = {
        "width": width,
        "height": height,
        "bit_depth": depth,
        "colour_type": colour,
        "interlace": interlace,
        "compression": compression,
        "filter": filtering,
    }
    return header, b"".join(body for kind, body in chunks if kind == b"IDAT")


def test_encode_png_8_bit_decodes_exactly():
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    data = encode_png(array)
    header, _ = parse_png(data)
    assert header["bit_depth"] == 8 and header["colour_type"] == 2
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == "RGB" and decoded.size == (5, 7)
    assert np.array_equal(np.asarray(decoded), array)


def test_encode_png_16_bit_decodes_exactly():
    rng = np.random.default_rng(1)
    array = rng.integers(0, 65536, (6, 9, 3), dtype=np.uint16)
    array[0, 0] = (0, 65535, 256)  # byte order matters for these
    data = encode_png(array)
    header, compressed = parse_png(data)
    assert header == {
        "width": 9,
        "height": 6,
        "bit_depth": 16,
        "colour_type": 2,
        "interlace": 0,
        "compression": 0,
        "filter": 0,
    }
    raw = zlib.decompress(compressed)
    stride = 1 + 9 * 3 * 2
    assert len(raw) == 6 * stride
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(6, stride)
    assert (rows[:, 0] == 0).all()  # filter type 0 (None) on every row
    decoded = rows[:, 1:].copy().view(">u2").reshape(6, 9, 3).astype(np.uint16)
    assert np.array_equal(decoded, array)
    with Image.open(io.BytesIO(data)) as image:  # a standard decoder accepts it too
        assert image.size == (9, 6)
        image.load()


def test_psnr_of_identical_and_known_mse():
    target = torch.rand(3, 10, 3)
    assert (psnr(target, target) >= 100).all()
    offsets = torch.tensor([0.1, 0.01, 0.5])[:, None, None]
    prediction = target + offsets
    expected = -10 * torch.log10(offsets.flatten() ** 2)
    assert torch.allclose(psnr(prediction, target), expected, atol=1e-3)
    assert psnr(prediction, target)[0].item() == pytest.approx(20.0, abs=1e-3)
    assert psnr(prediction, target).shape == (3,)
