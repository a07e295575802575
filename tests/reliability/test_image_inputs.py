"""Hostile and unusual images: decompression bombs are refused before decoding (with the limit
in the message), broken files give one line, odd but valid pictures encode and render."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from reliability_support import (
    assert_fails,
    assert_ok,
    invoke,
    lines_of,
    png_bytes,
    png_claiming,
    stderr_of,
    temporaries,
)
from support import synthetic_image

from models.io.images import DEFAULT_MAX_PIXELS, encode_png, load_image
from models.io.inr_file import load_inr

BUG_PIL_LIMIT = (
    "BUG models/io/images.py load_image: Pillow's own bomb check runs first at Image.open: over "
    "2 x Image.MAX_IMAGE_PIXELS (178,956,970) it raises DecompressionBombError, reported as "
    "'cannot read image ... (Image size ... could be decompression bomb DOS attack.); is it "
    "truncated?' without our limit; between 89,478,485 and that, the DecompressionBombWarning "
    "(made an error by the filter) escapes uncaught; and a TRANSINR_MAX_PIXELS above Pillow's "
    "limits has no effect. Fix: set Image.MAX_IMAGE_PIXELS = None around the open, our check "
    "decides"
)


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRANSINR_MAX_PIXELS", raising=False)


def encode(model, image, *options, env=None):
    return invoke("encode", image, "--model", model, "-o", "out/x.inr", "-q", *options, env=env)


def assert_nothing_written(tmp_path):
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []
    assert temporaries(tmp_path) == []


# --- decompression bombs --------------------------------------------------------------------


def test_a_bomb_over_the_default_limit_is_refused_with_the_limit(tmp_path, tiny_run):
    (tmp_path / "bomb.png").write_bytes(png_claiming(20000, 20000))  # 400 M pixels, 70 bytes
    line = assert_fails(encode(tiny_run, "bomb.png"), "bomb.png", "20000x20000")
    assert f"{DEFAULT_MAX_PIXELS:,}" in line and "--max-pixels" in line
    assert_nothing_written(tmp_path)


def test_an_image_just_under_the_default_limit_is_not_a_bomb(tmp_path, tiny_run):
    (tmp_path / "big.png").write_bytes(png_claiming(10000, 9500))  # 95 M pixels: allowed
    line = assert_fails(encode(tiny_run, "big.png"), "big.png", "truncated")
    assert "bomb" not in line
    assert_nothing_written(tmp_path)


def test_a_raised_limit_lets_a_bigger_image_through(tmp_path, tiny_run):
    (tmp_path / "big.png").write_bytes(png_claiming(20000, 10000))  # 200 M pixels
    result = encode(tiny_run, "big.png", env={"TRANSINR_MAX_PIXELS": "500000000"})
    line = assert_fails(result, "big.png", "truncated")  # the data is 8 x 8: not a bomb refusal
    assert "bomb" not in line


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_bomb_over_a_chosen_limit_is_refused_before_decoding(tmp_path, tiny_run, how):
    (tmp_path / "bomb.png").write_bytes(png_claiming(5000, 5000))  # 25 M pixels, 70 bytes
    if how == "option":
        result = encode(tiny_run, "bomb.png", "--max-pixels", 1_000_000)
    else:
        result = encode(tiny_run, "bomb.png", env={"TRANSINR_MAX_PIXELS": "1000000"})
    line = assert_fails(result, "bomb.png", "5000x5000", "1,000,000")
    assert "--max-pixels" in line and "TRANSINR_MAX_PIXELS" in line
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_real_image_over_a_small_limit(tmp_path, tiny_run, image_folder, how):
    image = image_folder / "img00.png"  # 40 x 36 = 1,440 pixels
    over = ("--max-pixels", 1439) if how == "option" else ()
    env = {"TRANSINR_MAX_PIXELS": "1439"} if how == "environment" else None
    assert_fails(encode(tiny_run, image, *over, env=env), "40x36", "1,439")
    assert_nothing_written(tmp_path)
    at = ("--max-pixels", 1440) if how == "option" else ()
    env = {"TRANSINR_MAX_PIXELS": "1440"} if how == "environment" else None
    assert_ok(encode(tiny_run, image, *at, env=env))  # the limit itself is allowed


def test_refine_takes_max_pixels_too(tmp_path, inr_copy, image_folder):
    result = invoke("refine", inr_copy, "--image", image_folder / "img00.png", "--steps", 1,
                    "--max-pixels", 100, "-o", "r.inr")  # fmt: skip
    assert_fails(result, "40x36", "100")
    assert not (tmp_path / "r.inr").exists()


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e9"])
def test_a_bad_max_pixels_environment_value(tmp_path, tiny_run, image_folder, value):
    result = encode(tiny_run, image_folder / "img00.png", env={"TRANSINR_MAX_PIXELS": value})
    assert_fails(result, "TRANSINR_MAX_PIXELS", value)
    assert_nothing_written(tmp_path)


def test_max_pixels_zero_is_a_usage_error(tmp_path, tiny_run, image_folder):
    assert_fails(encode(tiny_run, image_folder / "img00.png", "--max-pixels", 0), code=2)


# --- broken files ---------------------------------------------------------------------------


def jpeg_bytes(array, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", **save)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_truncated_and_empty_images(tmp_path, tiny_run, kind):
    data = (png_bytes if kind == "png" else jpeg_bytes)(synthetic_image(5, 64, 64))
    for cut in (0, 8, 40, len(data) // 3, len(data) - 30):
        name = f"cut{cut}.{kind}"
        (tmp_path / name).write_bytes(data[:cut])
        assert_fails(encode(tiny_run, name), name)
        assert_nothing_written(tmp_path)


def test_a_text_file_named_png(tmp_path, tiny_run):
    (tmp_path / "notes.png").write_text("not an image\n")
    assert_fails(encode(tiny_run, "notes.png"), "notes.png", "not an image")
    assert_nothing_written(tmp_path)


# --- odd but valid pictures -----------------------------------------------------------------


def inr_weights(path):
    return load_inr(path).weights


def test_wrong_extensions_still_read(tmp_path, tiny_run):
    picture = synthetic_image(6)
    (tmp_path / "png.jpg").write_bytes(png_bytes(picture))
    (tmp_path / "real.png").write_bytes(png_bytes(picture))
    (tmp_path / "jpeg.png").write_bytes(jpeg_bytes(picture))
    (tmp_path / "real.jpg").write_bytes(jpeg_bytes(picture))
    for name in ("png.jpg", "real.png", "jpeg.png", "real.jpg"):
        assert_ok(invoke("encode", name, "--model", tiny_run, "-o", f"{name}.inr", "-q"))
    for wrong, right in (("png.jpg", "real.png"), ("jpeg.png", "real.jpg")):
        for a, b in zip(inr_weights(f"{wrong}.inr"), inr_weights(f"{right}.inr"), strict=True):
            assert torch.equal(a, b)


def test_a_1x1_image(tmp_path, tiny_run):
    (tmp_path / "dot.png").write_bytes(png_bytes(np.array([[[200, 30, 90]]], np.uint8)))
    assert_ok(invoke("encode", "dot.png", "--model", tiny_run, "-o", "dot.inr", "-q"))
    inr = load_inr("dot.inr")
    assert (inr.header.native_width, inr.header.native_height) == (1, 1)
    assert_ok(invoke("render", "dot.inr", "-o", "dot1.png", "-q"))
    assert_ok(invoke("render", "dot.inr", "--size", 16, "-o", "dot16.png", "-q"))
    assert Image.open("dot1.png").size == (1, 1) and Image.open("dot16.png").size == (16, 16)


@pytest.mark.parametrize("fit", ["crop", "pad", "resize"])
@pytest.mark.parametrize(("width", "height"), [(1, 2000), (2000, 1)], ids=["1x2000", "2000x1"])
def test_extreme_aspect_ratios(tmp_path, tiny_run, fit, width, height):
    rng = np.random.default_rng(width)
    pixels = rng.integers(0, 256, (height, width, 3), np.uint8)
    (tmp_path / "line.png").write_bytes(png_bytes(pixels))
    assert_ok(invoke("encode", "line.png", "--model", tiny_run, "-o", "line.inr", "--fit", fit))
    inr = load_inr("line.inr")
    native = (1, 1) if fit == "crop" else (width, height)
    assert (inr.header.native_width, inr.header.native_height) == native
    assert_ok(invoke("render", "line.inr", "-o", "native.png", "-q"))
    assert Image.open("native.png").size == native
    assert_ok(invoke("render", "line.inr", "--size", 64, "-o", "small.png", "-q"))
    assert max(Image.open("small.png").size) == 64


def test_a_cmyk_jpeg(tmp_path, tiny_run):
    Image.fromarray(synthetic_image(8)).convert("CMYK").save(tmp_path / "print.jpg")
    assert Image.open(tmp_path / "print.jpg").mode == "CMYK"
    expected = np.asarray(Image.open(tmp_path / "print.jpg").convert("RGB"), np.float32) / 255
    loaded = load_image(tmp_path / "print.jpg").permute(1, 2, 0).numpy()
    assert np.array_equal(loaded, expected)
    assert_ok(invoke("encode", "print.jpg", "--model", tiny_run, "-o", "print.inr", "-q"))


def test_16_bit_pngs(tmp_path, tiny_run):
    rgb = np.zeros((20, 24, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 65535, 32768, 257
    (tmp_path / "rgb16.png").write_bytes(encode_png(rgb))
    grey = np.full((20, 24), 32768, np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    colour = load_image(tmp_path / "rgb16.png")[:, 0, 0]
    assert torch.allclose(colour, torch.tensor([1.0, 32768 / 65535, 257 / 65535]), atol=1 / 255)
    assert torch.allclose(load_image(tmp_path / "grey16.png"), torch.tensor(32768 / 65535))
    for name in ("rgb16.png", "grey16.png"):
        assert_ok(invoke("encode", name, "--model", tiny_run, "-o", f"{name}.inr", "-q"))


def test_an_animated_gif_uses_its_first_frame_with_one_warning(tmp_path, tiny_run):
    frames = [Image.fromarray(synthetic_image(seed)) for seed in (11, 12, 13)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=80)
    with Image.open(tmp_path / "anim.gif") as gif:
        assert gif.n_frames == 3
        gif.convert("RGB").save(tmp_path / "first.png")  # the first frame, as decoded
    result = assert_ok(invoke("encode", "anim.gif", "--model", tiny_run, "-o", "anim.inr", "-q"))
    lines = lines_of(stderr_of(result))
    assert len(lines) == 1, lines
    assert lines[0].startswith("warning: ") and "3 frames" in lines[0] and "first" in lines[0]
    assert "anim.gif" in lines[0]
    assert_ok(invoke("encode", "first.png", "--model", tiny_run, "-o", "first.inr", "-q"))
    for a, b in zip(inr_weights("anim.inr"), inr_weights("first.inr"), strict=True):
        assert torch.equal(a, b)
