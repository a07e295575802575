"""Reading images of any kind into RGB tensors, and fitting them to a model's square input.

Any size and mode (RGBA, greyscale, palette, CMYK, 16-bit, EXIF-rotated JPEG) becomes a float
(3, H, W) tensor in [0, 1]; transparency is composited on white. `fit_image` crops, pads or
resizes it to the model's S x S input and records where the picture sits in INR coordinates.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from models.errors import TransInrError

DEFAULT_MAX_PIXELS = 100_000_000  # decompression-bomb guard; TRANSINR_MAX_PIXELS overrides
Image.MAX_IMAGE_PIXELS = None  # our own limit is checked from the header, before decoding


def max_pixels_setting() -> int:
    """The pixel limit for images we read: $TRANSINR_MAX_PIXELS, else DEFAULT_MAX_PIXELS."""
    text = os.environ.get("TRANSINR_MAX_PIXELS", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise TransInrError(f"TRANSINR_MAX_PIXELS={text!r} is not a positive whole number")
    return int(text)


FIT_MODES = ("crop", "pad", "resize")


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """PIL image of any mode -> float32 (H, W, 3) in [0, 1]."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.asarray(image, dtype=np.float32)
        grey = grey / (65535.0 if grey.max(initial=0) > 255 or image.mode != "I" else 255.0)
        return np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=2)
    if image.mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def load_image(path: str | Path, max_pixels: int | None = None) -> torch.Tensor:
    """Read an image file -> float (3, H, W) in [0, 1], EXIF orientation applied.

    Images over `max_pixels` are refused before decoding; an animated image gives its first
    frame and a warning (`warnings.warn`).
    """
    path = Path(path)
    max_pixels = max_pixels or max_pixels_setting()
    if not path.is_file():
        raise TransInrError(f"image not found: {path}; check the path")
    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                raise TransInrError(
                    f"{path} has {image.width}x{image.height} pixels, over the limit of "
                    f"{max_pixels:,}; downscale it first, or raise the limit "
                    "(--max-pixels or TRANSINR_MAX_PIXELS)"
                )
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                warnings.warn(
                    f"{path} has {frames} frames; using the first", UserWarning, stacklevel=2
                )
            image.load()
            image = ImageOps.exif_transpose(image)
            array = _to_rgb_array(image)
    except TransInrError:
        raise
    except UnidentifiedImageError:
        raise TransInrError(
            f"{path} is not an image file (PNG, JPEG, ...); give an image"
        ) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise TransInrError(f"cannot read image {path} ({error}); is it truncated?") from None
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise TransInrError(f"{path} has no pixels; give a non-empty image")
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


@dataclass
class FitInfo:
    """How an image was fitted to the model input, and where it sits in INR coordinates."""

    mode: str
    source_width: int
    source_height: int
    native_width: int  # size of the picture the INR stands for (the crop, or the whole image)
    native_height: int
    content_box: tuple[float, float, float, float]  # (y0, x0, y1, x1) in INR coordinates
    source_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # (left, top, right, bottom) used

    def describe(self, input_size: int) -> str:
        """What was taken of the picture, e.g. 'the centre 600x600 crop of the 800x600 image'."""
        left, top, right, bottom = self.source_box
        whole = f"{self.source_width}x{self.source_height}"
        if self.mode == "crop" and (right - left, bottom - top) != (
            self.source_width,
            self.source_height,
        ):
            return f"the centre {right - left}x{bottom - top} crop of the {whole} image"
        how = {"crop": "", "pad": ", padded to a square", "resize": ", squashed to a square"}
        return f"the whole {whole} image{how[self.mode]}"

    @property
    def discards_pixels(self) -> bool:
        left, top, right, bottom = self.source_box
        return (right - left, bottom - top) != (self.source_width, self.source_height)

    def to_dict(self) -> dict:
        return asdict(self)

    def header_fields(self, input_size: int, source: str | Path, greyscale: bool = False) -> dict:
        """The ImageHeader fields an image `.inr` file records about its input (encode and fit
        alike); a greyscale input renders greyscale."""
        return {
            "input_size": input_size,
            "greyscale": greyscale,
            "fit": self,
            "native_width": self.native_width,
            "native_height": self.native_height,
            "content_box": tuple(self.content_box),
            "source_image": Path(source).name,
            "input_region": self.describe(input_size),
        }


def resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bicubic resize of (3, H, W), clamped to [0, 1]."""
    if image.shape[1:] == (height, width):
        return image
    resized = F.interpolate(
        image[None], size=(height, width), mode="bicubic", antialias=True, align_corners=False
    )
    return resized[0].clamp_(0.0, 1.0)


def fit_image(image: torch.Tensor, size: int, mode: str = "crop") -> tuple[torch.Tensor, FitInfo]:
    """(3, H, W) -> (3, size, size): centre-crop, zero-pad (centred) or resize to a square."""
    if mode not in FIT_MODES:
        raise TransInrError(f"unknown --fit '{mode}'; choose one of: {', '.join(FIT_MODES)}")
    height, width = image.shape[1:]
    if mode == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        fitted = resize(image[:, top : top + side, left : left + side], size, size)
        box = (left, top, left + side, top + side)
        return fitted, FitInfo(mode, width, height, side, side, (-1.0, -1.0, 1.0, 1.0), box)
    whole = (0, 0, width, height)
    if mode == "resize":
        fitted = resize(image, size, size)
        return fitted, FitInfo(mode, width, height, width, height, (-1.0, -1.0, 1.0, 1.0), whole)
    scale = size / max(height, width)
    inner_h = max(1, min(size, round(height * scale)))
    inner_w = max(1, min(size, round(width * scale)))
    top, left = (size - inner_h) // 2, (size - inner_w) // 2
    fitted = torch.zeros(3, size, size)
    fitted[:, top : top + inner_h, left : left + inner_w] = resize(image, inner_h, inner_w)
    box = (
        -1.0 + 2.0 * top / size,
        -1.0 + 2.0 * left / size,
        -1.0 + 2.0 * (top + inner_h) / size,
        -1.0 + 2.0 * (left + inner_w) / size,
    )
    return fitted, FitInfo(mode, width, height, width, height, box, whole)


def content_mask(size: int, box: tuple[float, float, float, float]) -> torch.Tensor:
    """(size, size) bool: the pixels of the input grid whose centres lie inside `box`."""
    centres = -1.0 + (torch.arange(size, dtype=torch.float32) + 0.5) * 2.0 / size
    rows = (centres > box[0]) & (centres < box[2])
    cols = (centres > box[1]) & (centres < box[3])
    return rows[:, None] & cols[None, :]


def is_greyscale(image: torch.Tensor, tolerance: float = 2.0 / 255.0) -> bool:
    """Whether a (3, H, W) picture has no colour: at every pixel the channels agree to within
    `tolerance` (an L, LA or 16-bit grey file, or grey content saved as RGB JPEG)."""
    return bool((image.amax(0) - image.amin(0)).max() <= tolerance)


def to_grey(array: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 / uint16 -> (H, W) of the same dtype: the mean of the channels."""
    return array.astype(np.float64).mean(axis=2).round().astype(array.dtype)


def encode_png(array: np.ndarray) -> bytes:
    """An (H, W, 3) RGB or (H, W) grey uint8 / uint16 array as PNG bytes (8 or 16 bits per
    channel). Written directly (Pillow cannot write 16-bit RGB): signature, IHDR, one IDAT, IEND.
    """
    height, width = array.shape[:2]
    colour_type = 0 if array.ndim == 2 else 2
    bit_depth = 16 if array.dtype == np.uint16 else 8
    rows = array.astype(">u2" if bit_depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)  # filter byte 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
