"""Reading images of any mode into RGB tensors, refusing bad files, and fitting to a square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.errors import TransInrError
from models.io.images import content_mask, fit_image, load_image

PALETTE = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9)


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def test_rgb_png_is_read_exactly(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = load_image(save(Image.fromarray(array), tmp_path / "rgb.png"))
    assert image.dtype == torch.float32
    assert image.shape == (3, 5, 7)
    assert torch.allclose(image * 255, torch.from_numpy(array).permute(2, 0, 1).float(), atol=1e-4)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 255, 128)])
    image = load_image(save(rgba, tmp_path / "rgba.png"))
    assert image.shape == (3, 1, 3)
    assert torch.allclose(image[:, 0, 0], torch.ones(3))  # fully transparent -> white
    assert torch.allclose(image[:, 0, 1], torch.tensor([1.0, 0, 0]))
    half = 1 - 128 / 255
    assert torch.allclose(image[:, 0, 2], torch.tensor([half, half, 1.0]), atol=1.5 / 255)


def test_la_is_composited_on_white(tmp_path):
    la = Image.new("LA", (2, 1))
    la.putdata([(0, 0), (100, 255)])
    image = load_image(save(la, tmp_path / "la.png"))
    assert torch.allclose(image[:, 0, 0], torch.ones(3))
    assert torch.allclose(image[:, 0, 1] * 255, torch.full((3,), 100.0), atol=1e-3)


def test_greyscale_becomes_three_equal_channels(tmp_path):
    array = np.array([[0, 64, 255]], dtype=np.uint8)
    image = load_image(save(Image.fromarray(array, "L"), tmp_path / "grey.png"))
    assert image.shape == (3, 1, 3)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert torch.allclose(image[0, 0] * 255, torch.tensor([0.0, 64, 255]), atol=1e-3)


def test_palette_without_and_with_transparency(tmp_path):
    palette = Image.new("P", (3, 1))
    palette.putpalette(PALETTE)
    palette.putdata([0, 1, 2])
    opaque = load_image(save(palette, tmp_path / "p.png"))
    assert torch.allclose(opaque[:, 0].T, torch.eye(3))
    clear = load_image(save(palette, tmp_path / "pt.png", transparency=1))
    expected = torch.tensor([[1.0, 0, 0], [1, 1, 1], [0, 0, 1]])  # index 1 -> white
    assert torch.allclose(clear[:, 0].T, expected)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = save(Image.new("CMYK", (8, 8), (0, 255, 0, 0)), tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
        reference = np.asarray(raw.convert("RGB"), dtype=np.float32) / 255
    image = load_image(path)
    assert image.shape == (3, 8, 8)
    assert torch.allclose(image.permute(1, 2, 0), torch.from_numpy(reference), atol=1e-6)
    assert torch.allclose(image[:, 4, 4], torch.tensor([1.0, 0, 1]), atol=0.05)  # magenta


def test_16_bit_greyscale_is_scaled_by_65535(tmp_path):
    array = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    path = save(Image.fromarray(array), tmp_path / "g16.png")
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    image = load_image(path)
    assert image.shape == (3, 3, 4)
    assert torch.allclose(image[1] * 65535, torch.from_numpy(array).float(), atol=0.05)


def test_dark_16_bit_greyscale_is_still_scaled_by_65535(tmp_path):
    # Every value under 256: still 16-bit data, so 200 means 200/65535, not 200/255.
    array = np.full((2, 2), 200, dtype=np.uint16)
    image = load_image(save(Image.fromarray(array), tmp_path / "dark16.png"))
    assert torch.allclose(image, torch.full((3, 2, 2), 200 / 65535), atol=1e-6)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    picture = Image.new("RGB", (30, 20), (0, 0, 255))
    picture.paste((255, 0, 0), (0, 0, 10, 10))  # red top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: rotate 90 degrees clockwise to display
    image = load_image(save(picture, tmp_path / "rotated.jpg", exif=exif, quality=95))
    assert image.shape == (3, 30, 20)  # width and height swapped
    assert image[0, 3, -4] > 0.9 and image[2, 3, -4] < 0.1  # the corner is now top-right
    assert image[2, 3, 3] > 0.9 and image[0, 3, 3] < 0.1


def test_one_pixel_image(tmp_path):
    image = load_image(save(Image.new("RGB", (1, 1), (10, 20, 30)), tmp_path / "dot.png"))
    assert image.shape == (3, 1, 1)
    assert torch.allclose(image[:, 0, 0] * 255, torch.tensor([10.0, 20, 30]), atol=1e-3)
    fitted, info = fit_image(image, 8, "crop")
    assert fitted.shape == (3, 8, 8)
    assert torch.allclose(fitted, image.expand(3, 8, 8), atol=1e-5)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(TransInrError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_directory_is_refused(tmp_path):
    with pytest.raises(TransInrError):
        load_image(tmp_path)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(TransInrError):
        load_image(path)


def test_text_file_is_refused(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 20)
    with pytest.raises(TransInrError, match="not an image"):
        load_image(path)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_images_are_refused(tmp_path, suffix):
    array = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    data = save(Image.fromarray(array), tmp_path / f"whole{suffix}").read_bytes()
    for cut in (1, 8, 16, 30, 60, 100, len(data) // 2, len(data) * 3 // 4):
        path = tmp_path / f"cut{cut}{suffix}"
        path.write_bytes(data[:cut])
        with pytest.raises(TransInrError):
            load_image(path)


def test_image_over_the_pixel_limit_is_refused(tmp_path):
    path = save(Image.new("RGB", (50, 40)), tmp_path / "big.png")
    with pytest.raises(TransInrError, match="limit"):
        load_image(path, max_pixels=1999)
    assert load_image(path, max_pixels=2000).shape == (3, 40, 50)


def gradient(height: int, width: int) -> torch.Tensor:
    ys = torch.linspace(0, 1, height)[:, None].expand(height, width)
    xs = torch.linspace(0, 1, width)[None, :].expand(height, width)
    return torch.stack([ys, xs, (ys + xs) / 2])


def test_fit_crop_takes_the_centre_square():
    image = gradient(40, 60)
    fitted, info = fit_image(image, 40, "crop")
    assert fitted.shape == (3, 40, 40)
    assert torch.equal(fitted, image[:, :, 10:50])
    assert info.content_box == (-1.0, -1.0, 1.0, 1.0)
    assert (info.source_width, info.source_height) == (60, 40)
    assert (info.native_width, info.native_height) == (40, 40)
    smaller, _ = fit_image(image, 16, "crop")
    assert smaller.shape == (3, 16, 16)


def test_fit_resize_squashes_the_whole_image():
    fitted, info = fit_image(gradient(40, 60), 32, "resize")
    assert fitted.shape == (3, 32, 32)
    assert info.content_box == (-1.0, -1.0, 1.0, 1.0)
    assert (info.native_width, info.native_height) == (60, 40)
    assert fitted.min() >= 0 and fitted.max() <= 1


def test_fit_pad_of_a_wide_image():
    image = gradient(30, 60)
    fitted, info = fit_image(image, 32, "pad")
    assert fitted.shape == (3, 32, 32)
    y0, x0, y1, x1 = info.content_box
    assert (x0, x1) == (-1.0, 1.0)
    assert -1 < y0 < 0 < y1 < 1
    assert y0 == pytest.approx(-y1)
    assert (info.native_width, info.native_height) == (60, 30)
    mask = content_mask(32, info.content_box)
    assert mask.shape == (32, 32)
    assert int(mask.sum()) == 16 * 32  # 30x60 -> 16x32 inside the 32x32 square
    assert (fitted[:, ~mask] == 0).all()  # zero padding outside
    assert fitted[:, mask].abs().sum() > 0


def test_fit_pad_of_a_tall_image():
    fitted, info = fit_image(gradient(50, 20), 25, "pad")
    y0, x0, y1, x1 = info.content_box
    assert (y0, y1) == (-1.0, 1.0)
    assert -1 < x0 < x1 < 1
    assert int(content_mask(25, info.content_box).sum()) == 25 * 10


def test_content_mask_of_the_full_box_is_everything():
    assert content_mask(9, (-1.0, -1.0, 1.0, 1.0)).all()
    assert int(content_mask(8, (-1.0, -1.0, 0.0, 0.0)).sum()) == 16


def test_unknown_fit_mode_is_refused():
    with pytest.raises(TransInrError, match="fit"):
        fit_image(gradient(4, 4), 4, "stretch")
