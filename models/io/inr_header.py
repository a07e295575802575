"""The `.inr` header: what an INR stands for, as one typed, strict record per task.

An image INR records the picture it was encoded from (native size, crop, content box); a NeRF
INR its cameras and ray sampling (near, far, samples, focal). Both record where they came from
(source model, encode PSNR, refinement). Written and read only here: unknown keys, wrong types,
non-finite numbers and out-of-range values are refused with a one-line error. The file's
`format_version` versions this schema (models/io/inr_file.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field

from models import __version__
from models.errors import TransInrError
from models.io.images import FIT_MODES, FitInfo

MAX_TEXT = 4096  # characters in one header string
MAX_ITEMS = 1024  # items in one header list
MAX_VIEW_SIZE = 4096  # a NeRF's view size: what `render` draws by default, one ray a pixel
Box = tuple[float, float, float, float]
FULL_BOX: Box = (-1.0, -1.0, 1.0, 1.0)


def within(low: float, high: float, **options) -> dataclasses.Field:
    """A header field whose numbers must lie in [low, high]."""
    return field(metadata={"range": (low, high)}, **options)


@dataclass(kw_only=True)
class Provenance:
    """Where an INR came from: the model that wrote it, its PSNR, and its refinement if any."""

    source_model: str = ""
    encode_psnr: float | None = within(-1e3, 1e3, default=None)
    refine_steps: int | None = within(0, 10**7, default=None)
    refine_lr: float | None = within(0.0, 1e6, default=None)
    refine_schedule: str | None = None
    psnr_before_refine: float | None = within(-1e3, 1e3, default=None)
    refined_psnr: float | None = within(-1e3, 1e3, default=None)
    tool_version: str = field(default_factory=lambda: __version__)  # the writer's version


@dataclass(kw_only=True)
class ImageHeader(Provenance):
    """An image INR: the picture it stands for, in pixels and in INR coordinates (y, x)."""

    native_width: int = within(1, 1 << 20)
    native_height: int = within(1, 1 << 20)
    input_size: int = within(0, 1 << 20, default=0)  # the model's input side; 0: the native size
    content_box: Box = within(-1.0, 1.0, default=FULL_BOX)  # (y0, x0, y1, x1) of the picture
    greyscale: bool = False  # a grey picture: render grey
    fit: FitInfo | None = None  # how the picture was fitted to the model input
    source_image: str = ""
    input_region: str = ""
    fit_steps: int | None = within(0, 10**7, default=None)  # `transinr fit`: its optimisation
    fit_lr: float | None = within(0.0, 1e6, default=None)
    fit_seed: int | None = None
    activation: str | None = None
    psnr: float | None = within(-1e3, 1e3, default=None)

    def __post_init__(self) -> None:
        y0, x0, y1, x1 = self.content_box
        if not (y0 < y1 and x0 < x1):
            raise TransInrError(f"'content_box' {list(self.content_box)} is empty")
        if self.fit is not None and self.fit.mode not in FIT_MODES:
            raise TransInrError(f"'fit' mode {json.dumps(self.fit.mode)} is not a fit mode")
        if not self.input_size:
            self.input_size = max(self.native_width, self.native_height)


@dataclass(kw_only=True)
class SceneBounds:
    """A sphere holding the object: what a viewer may orbit."""

    centre: tuple[float, float, float] = within(-1e4, 1e4, default=(0.0, 0.0, 0.0))
    radius: float = within(0.0, 1e4, default=0.0)


@dataclass(kw_only=True)
class NerfHeader(Provenance):
    """A NeRF INR: the cameras and ray sampling it was encoded with (Sec. 4.2)."""

    near: float = within(1e-6, 1e4)
    far: float = within(1e-6, 1e4)
    samples: int = within(2, 4096, default=128)
    focal: float = within(1e-6, 1e6)  # pixels, at view_size
    camera_angle_x: float | None = within(1e-6, math.pi, default=None)
    view_size: int = within(1, MAX_VIEW_SIZE, default=128)  # render's default: a ray a pixel
    native_width: int = within(1, MAX_VIEW_SIZE, default=128)
    native_height: int = within(1, MAX_VIEW_SIZE, default=128)
    camera_radius: float = within(1e-6, 1e4, default=4.0)
    camera_convention: str = ""
    support_views: list[int] = within(0, 10**6, default_factory=lambda: [0])
    support_poses: list[list[list[float]]] = within(-1e6, 1e6, default_factory=list)
    scene_bounds: SceneBounds = field(default_factory=SceneBounds)
    source_views: str = ""

    def __post_init__(self) -> None:
        if not self.near < self.far:
            raise TransInrError(f"near {self.near} is not below far {self.far}")
        if any(len(pose) != 4 or any(len(row) != 4 for row in pose) for pose in self.support_poses):
            raise TransInrError("'support_poses' are not 4x4 camera-to-world matrices")


Header = ImageHeader | NerfHeader
HEADERS: dict[str, type[ImageHeader] | type[NerfHeader]] = {
    "image": ImageHeader,
    "nerf": NerfHeader,
}


def with_refinement(
    header: Header, steps: int, lr: float, schedule: str, before: float, after: float
) -> Header:
    """The header of an INR refined `steps` steps from `before` to `after` dB."""
    return dataclasses.replace(
        header,
        refine_steps=steps,
        refine_lr=lr,
        refine_schedule=schedule,
        psnr_before_refine=round(before, 4),
        refined_psnr=round(after, 4),
    )


def shown(value: object) -> str:
    """A header value for a message: JSON (control characters escaped), at most 60 characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = ascii(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _scalar(value: object, hint: type, path: str, bounds: tuple | None) -> object:
    """Check one bool / int / float / str against its type and range."""
    if hint is bool:
        valid = isinstance(value, bool)
    elif hint is str:
        valid = isinstance(value, str) and len(value) <= MAX_TEXT
    elif hint is int:
        valid = isinstance(value, int) and not isinstance(value, bool)
    else:  # float: ints are accepted
        valid = isinstance(value, int | float) and not isinstance(value, bool)
        valid = valid and math.isfinite(value)
        value = float(value) if valid else value
    if not valid:
        raise TransInrError(f"header field '{path}' is {shown(value)}, not a {hint.__name__}")
    if bounds is not None and hint is not str and not bounds[0] <= value <= bounds[1]:
        raise TransInrError(
            f"header field '{path}' is {shown(value)}, outside [{bounds[0]}, {bounds[1]}]"
        )
    return value


def _parse(value: object, hint: object, path: str, bounds: tuple | None) -> object:
    """`value` (decoded JSON) as type `hint`, checked recursively."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _parse(value, inner, path, bounds)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple) or len(value) > MAX_ITEMS:
            raise TransInrError(f"header field '{path}' is {shown(value)}, not a list")
        if origin is tuple and len(value) != len(args):
            raise TransInrError(f"header field '{path}' needs {len(args)} items: {shown(value)}")
        kinds = args if origin is tuple else [args[0]] * len(value)
        pairs = enumerate(zip(value, kinds, strict=True))
        items = [_parse(item, kind, f"{path}[{i}]", bounds) for i, (item, kind) in pairs]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(hint):
        return _record(hint, value, f"{path}.")
    return _scalar(value, hint, path, bounds)


def _record(cls: type, data: object, path: str = "") -> object:
    """A dataclass from a JSON object: every key known, typed and in range; none missing."""
    if not isinstance(data, dict):
        where = path.rstrip(".") or "header"
        raise TransInrError(f"header field '{where}' is {shown(data)}, not an object")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise TransInrError(f"unknown header field '{path}{shown(unknown[0])[1:-1]}'")
    values = {}
    for name, spec in fields.items():
        if name in data:
            bounds = spec.metadata.get("range")
            values[name] = _parse(data[name], hints[name], f"{path}{name}", bounds)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise TransInrError(f"header field '{path}{name}' is missing")
    return cls(**values)


def header_from_dict(task: str, data: object, name: str) -> Header:
    """The typed header of a `task` INR from the file's JSON (less task, inr and coordinates)."""
    try:
        return _record(HEADERS[task], data)
    except TransInrError as error:
        raise TransInrError(f"{name}: {error}; re-encode it") from None


def header_to_dict(header: Header) -> dict:
    """The header as JSON-ready values; fields left at None are not written."""
    data = dataclasses.asdict(header)
    return {key: value for key, value in data.items() if value is not None}
