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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

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
        del rgba, background
    array = np.asarray(image.convert("RGB"), dtype=np.float32)
    array /= 255.0  # in place: one float copy of the picture, not two
    return array


# --- memory: what decoding a picture costs, and decoding it smaller -------------------------

REDUCED_SIDE = 1024  # pictures at least twice this (shorter side) over what is needed: reduced
FLOAT_STAGE_BYTES = 32  # per decoded pixel: compositing on white and the float32 RGB array
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes reading one picture may take (more with --max-pixels)
STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}  # EXIF orientation -> the transposition that shows the picture upright


def memory_budget(max_pixels: int) -> int:
    """Bytes that reading one picture may take: 1 GiB, or 10 bytes a pixel of a raised
    --max-pixels (so raising the pixel limit raises this too)."""
    return max(DEFAULT_MEMORY_BUDGET, 10 * max_pixels)


def reduction(width: int, height: int, keep: int | None) -> int:
    """The factor a picture may be shrunk by at decode time so that its shorter side stays at
    least `keep` pixels (1: decode it whole). Only pictures twice as large as needed shrink."""
    if keep is None:
        return 1
    return max(1, min(width, height) // max(keep, 1))


def decode_cost(image: Image.Image, factor: int) -> int:
    """Bytes decoding `image` takes: Pillow's own copy (4 bytes a pixel for most modes), then
    the float stage of the picture shrunk by `factor`."""
    width, height = image.size
    stored = width * height * STORED_BYTES.get(image.mode, 4)
    shrunk = -(-width // factor) * -(-height // factor)
    return stored + shrunk * FLOAT_STAGE_BYTES


def _shrink(image: Image.Image, factor: int) -> Image.Image:
    """A decoded picture shrunk by an integer `factor` (box filter, Pillow's `reduce`); modes
    `reduce` does not take are converted to equivalent ones first."""
    if factor <= 1:
        return image
    if image.mode.startswith("I;16"):
        wide = np.asarray(image.convert("I").reduce(factor))
        return Image.fromarray(wide.astype(np.uint16))
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image.reduce(factor)


def _draft_jpeg(image: Image.Image, keep: int | None) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale (in the DCT, nearly free) when even that
    leaves the shorter side at least `keep` pixels."""
    if keep is None or image.format != "JPEG":
        return
    width, height = image.size
    if reduction(width, height, keep) >= 2:
        shorter = min(width, height)
        image.draft(None, (max(1, width * keep // shorter), max(1, height * keep // shorter)))


def _orientation(image: Image.Image, header_only: bool = False) -> int:
    """The EXIF orientation (1: upright); a broken EXIF block counts as upright. A PNG may
    keep its EXIF after the pixels: `header_only` does not decode them to look."""
    if header_only and image.format == "PNG" and "exif" not in image.info:
        return 1
    try:
        value = image.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError, struct.error):
        return 1
    return value if value in ORIENTATIONS else 1


def _check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise TransInrError(
            f"{path} has {width}x{height} pixels, over the limit of "
            f"{max_pixels:,}; downscale it first, or raise the limit "
            "(--max-pixels or TRANSINR_MAX_PIXELS)"
        )


def _check_cost(path: Path, image: Image.Image, factor: int, max_pixels: int) -> None:
    """Refuse, before decoding, a picture whose decoding would take more than the budget."""
    cost, budget = decode_cost(image, factor), memory_budget(max_pixels)
    if cost > budget:
        width, height = image.size
        needed = -(-cost // 10)  # the --max-pixels whose budget covers it
        raise TransInrError(
            f"{path} ({width}x{height}) would take {cost / 1e9:.1f} GB of memory to decode, "
            f"over the budget of {budget / 1e9:.1f} GB; downscale it first, or raise the limit "
            f"(--max-pixels {needed} or TRANSINR_MAX_PIXELS)"
        )


@dataclass
class Picture:
    """A decoded picture: pixels (3, h, w) in [0, 1], and the size of the picture itself
    (width, height, EXIF orientation applied): larger than the pixels when it was decoded
    reduced."""

    pixels: torch.Tensor
    width: int
    height: int

    @property
    def source_size(self) -> tuple[int, int]:
        return self.width, self.height


def is_file(path: Path) -> bool:
    """Path.is_file, with a path the OS refuses (too long, a loop) as a one-line error."""
    try:
        return path.is_file()
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or error
        raise TransInrError(f"cannot open {path} ({reason}); check the path") from None


@contextmanager
def decoding_errors(path: Path) -> Iterator[None]:
    """Pillow's ways of failing on a file, as one-line TransInrErrors naming it."""
    try:
        yield
    except UnidentifiedImageError:
        raise TransInrError(
            f"{path} is not an image file (PNG, JPEG, ...); give an image"
        ) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise TransInrError(f"cannot read image {path} ({error}); is it truncated?") from None


def image_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of an image file, EXIF orientation applied, from its header only."""
    path = Path(path)
    if not is_file(path):
        raise TransInrError(f"image not found: {path}; check the path")
    with decoding_errors(path), Image.open(path) as image:
        width, height = image.size
        if _orientation(image, header_only=True) in (5, 6, 7, 8):
            width, height = height, width
    _check_pixels(path, width, height, max_pixels or max_pixels_setting())
    return width, height


def read_picture(
    path: str | Path, max_pixels: int | None = None, keep: int | None = None
) -> Picture:
    """Read an image file, EXIF orientation applied, transparency on white.

    With `keep`, a picture whose shorter side is at least twice `keep` is decoded reduced (a
    JPEG in the DCT, others by an integer box filter) to a shorter side of at least `keep`.
    Pictures over `max_pixels`, or whose decoding would take more than `memory_budget`, are
    refused before decoding; an animated image gives its first frame and a warning.
    """
    path = Path(path)
    max_pixels = max_pixels or max_pixels_setting()
    if not is_file(path):
        raise TransInrError(f"image not found: {path}; check the path")
    with decoding_errors(path), Image.open(path) as image:
        _check_pixels(path, image.width, image.height, max_pixels)
        width, height = image.size
        _draft_jpeg(image, keep)
        factor = reduction(image.width, image.height, keep)
        _check_cost(path, image, factor, max_pixels)
        orientation = _orientation(image)  # a PNG's EXIF may come after its pixels
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            warnings.warn(f"{path} has {frames} frames; using the first", UserWarning, stacklevel=2)
        image.load()
        decoded = _shrink(image, factor)
        if orientation in ORIENTATIONS:
            decoded = decoded.transpose(ORIENTATIONS[orientation])
        array = _to_rgb_array(decoded)
        del decoded
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise TransInrError(f"{path} has no pixels; give a non-empty image")
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    pixels = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    return Picture(pixels, width, height)


def load_image(path: str | Path, max_pixels: int | None = None) -> torch.Tensor:
    """Read an image file -> float (3, H, W) in [0, 1] at its full size (read_picture)."""
    return read_picture(path, max_pixels).pixels


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


def fit_image(
    image: torch.Tensor, size: int, mode: str = "crop", source_size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, FitInfo]:
    """(3, H, W) -> (3, size, size): centre-crop, zero-pad (centred) or resize to a square.

    `source_size` (width, height): the picture's own size when `image` is a reduced decode of
    it (read_picture); the FitInfo is in the picture's pixels."""
    if mode not in FIT_MODES:
        raise TransInrError(f"unknown --fit '{mode}'; choose one of: {', '.join(FIT_MODES)}")
    height, width = image.shape[1:]
    source_w, source_h = source_size or (width, height)
    if mode == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        fitted = resize(image[:, top : top + side, left : left + side], size, size)
        side = min(source_h, source_w)
        top, left = (source_h - side) // 2, (source_w - side) // 2
        box = (left, top, left + side, top + side)
        info = FitInfo(mode, source_w, source_h, side, side, (-1.0, -1.0, 1.0, 1.0), box)
        return fitted, info
    whole = (0, 0, source_w, source_h)
    if mode == "resize":
        fitted = resize(image, size, size)
        full = (-1.0, -1.0, 1.0, 1.0)
        return fitted, FitInfo(mode, source_w, source_h, source_w, source_h, full, whole)
    scale = size / max(source_h, source_w)
    inner_h = max(1, min(size, round(source_h * scale)))
    inner_w = max(1, min(size, round(source_w * scale)))
    top, left = (size - inner_h) // 2, (size - inner_w) // 2
    fitted = torch.zeros(3, size, size)
    fitted[:, top : top + inner_h, left : left + inner_w] = resize(image, inner_h, inner_w)
    box = (
        -1.0 + 2.0 * top / size,
        -1.0 + 2.0 * left / size,
        -1.0 + 2.0 * (top + inner_h) / size,
        -1.0 + 2.0 * (left + inner_w) / size,
    )
    return fitted, FitInfo(mode, source_w, source_h, source_w, source_h, box, whole)


def read_fitted(
    path: str | Path, size: int, mode: str = "crop", max_pixels: int | None = None
) -> tuple[torch.Tensor, FitInfo, Picture]:
    """An image file fitted to the model's size x size input (fit_image), decoded no larger
    than that needs (read_picture): the fitted pixels, how, and the picture."""
    if mode not in FIT_MODES:
        raise TransInrError(f"unknown --fit '{mode}'; choose one of: {', '.join(FIT_MODES)}")
    picture = read_picture(path, max_pixels, keep=max(size, REDUCED_SIDE))
    fitted, info = fit_image(picture.pixels, size, mode, picture.source_size)
    return fitted, info, picture


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


def encode_png(array: np.ndarray, rows_per_chunk: int = 256) -> bytes:
    """An (H, W, 3) RGB or (H, W) grey uint8 / uint16 array as PNG bytes (8 or 16 bits per
    channel). Written directly (Pillow cannot write 16-bit RGB): signature, IHDR, one IDAT, IEND;
    compressed a block of rows at a time, so memory is the array plus its compressed bytes.
    """
    height, width = array.shape[:2]
    colour_type = 0 if array.ndim == 2 else 2
    bit_depth = 16 if array.dtype == np.uint16 else 8
    compressor = zlib.compressobj(6)
    parts = []
    for first in range(0, height, rows_per_chunk):
        block = array[first : first + rows_per_chunk]
        rows = block.astype(">u2" if bit_depth == 16 else np.uint8).reshape(len(block), -1)
        raw = np.concatenate([np.zeros((len(block), 1), np.uint8), rows.view(np.uint8)], axis=1)
        parts.append(compressor.compress(raw.tobytes()))  # filter byte 0 before every row
    parts.append(compressor.flush())

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )
