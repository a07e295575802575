"""The files of posed views, read strictly: `transforms.json` and the learnit splits file.

Both are JSON a user (or an attacker) hands us. They are read as the `.inr` header is
(models/io/inr_header.py): a size cap before reading, JSON parsed with guards against deep nesting
and giant numbers, then a typed record whose every field is checked: types, shapes, finite
numbers in range, at most MAX_FRAMES frames, cameras at a sane distance that see the object.
Keys we do not use (Blender's `rotation`, ...) are ignored. Strings from the files (file paths,
object ids) are escaped in every message.

Paths stay inside the object folder (views) and the data root (objects), symlinks included,
unless the caller allows them out (`follow_links`, the commands' `--follow-links`). Split ids
must be plain folder names: no `/`, no `..`, nothing absolute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from models.errors import TransInrError
from models.io.images import is_file
from models.io.inr_header import shown
from models.io.safetensors_io import parse_json

MAX_JSON_BYTES = 8 << 20  # a transforms.json or splits file; learnit's are a few kB to 300 kB
MAX_FRAMES = 10_000  # frames in one transforms.json (learnit: 50)
MAX_OBJECTS = 200_000  # object ids in one split (ShapeNet chairs: 6,778 in all)
MAX_NAME_BYTES = 255  # one file or folder name (NAME_MAX)
MAX_PATH_CHARS = 4096  # one file_path string
ANGLE_RANGE = (0.01, 3.0)  # camera_angle_x, radians: 0.6 to 172 degrees
DISTANCE_RANGE = (0.1, 1000.0)  # a camera's distance from the object at the origin
OBJECT_RADIUS = 1.0  # the object fits in this sphere around the origin (ShapeNet's scale)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")  # else: + ".png"
SPLITS_HINT = 'it needs {"train": [object ids], "val": [...], "test": [...]}'
LEARNIT_HINT = "it needs camera_angle_x and frames of {file_path, transform_matrix}"


@dataclass(frozen=True)
class Frame:
    """One view: its file_path as written, the image file it names, its camera-to-world pose."""

    file_path: str
    image_name: str  # `<basename of file_path>.png`, a name inside the object folder
    pose: torch.Tensor  # (4, 4) float32, OpenGL camera-to-world


@dataclass(frozen=True)
class Transforms:
    """A checked transforms.json: the horizontal field of view and the frames."""

    path: Path
    camera_angle_x: float
    frames: list[Frame]

    @property
    def folder(self) -> Path:
        return self.path.parent


# --- reading JSON safely --------------------------------------------------------------------


def read_json(path: Path, what: str, hint: str) -> object:
    """A small JSON file, parsed with guards; any problem is a one-line error (with `hint`:
    what the file should hold)."""
    if not is_file(path):
        raise TransInrError(f"{what} {path} not found; check the path")
    try:
        size = path.stat().st_size
    except (OSError, ValueError) as error:
        raise TransInrError(f"cannot open {what} {path} ({error}); check the path") from None
    if size > MAX_JSON_BYTES:
        raise TransInrError(
            f"{path} is {size:,} bytes, over the {MAX_JSON_BYTES >> 20} MB a {what} may be; "
            "is it the right file?"
        )
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_JSON_BYTES + 1)
    except OSError as error:
        raise TransInrError(f"cannot read {what} {path} ({error.strerror})") from None
    if len(data) > MAX_JSON_BYTES:  # it grew, or is not a regular file after all
        raise TransInrError(f"{path} is over the {MAX_JSON_BYTES >> 20} MB a {what} may be")
    try:
        return parse_json(data)
    except ValueError as error:
        reason = str(error).split(";")[0]  # not Python's advice on its own limits
        raise TransInrError(f"{path} is malformed: not JSON ({reason}); {hint}") from None


def is_number(value: object) -> bool:
    """A JSON number (not a boolean) that is finite as a float (a 400-digit integer is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def unsafe_text(text: str) -> bool:
    """Characters that are not printable (controls, line separators, bidi overrides, lone
    surrogates, unassigned code points): nothing a file or folder name should hold."""
    return not text.isprintable()


# --- transforms.json --------------------------------------------------------------------------


def check_angle(path: Path, value: object) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise TransInrError(
            f"{path} is malformed: camera_angle_x is {shown(value)}, not a number of radians; "
            f"{LEARNIT_HINT}"
        )
    low, high = ANGLE_RANGE
    if not (is_number(value) and low <= value <= high):
        raise TransInrError(
            f"{path}: camera_angle_x {shown(value)} is not a field of view in (0, pi) radians "
            f"that a camera has; give one from {low} to {high}"
        )
    return float(value)


def image_name(path: Path, index: int, file_path: object) -> str:
    """The image file a frame names: learnit's `<basename of file_path>.png` in the object
    folder (a basename with an image suffix, `000.jpg`, as it is). The file_path must be a
    relative path of printable text."""
    where = f"{path} frame {index}"
    if not isinstance(file_path, str):
        raise TransInrError(
            f"{path} is malformed: frame {index}'s file_path is {shown(file_path)}, not a "
            f"string; {LEARNIT_HINT}"
        )
    if len(file_path) > MAX_PATH_CHARS or unsafe_text(file_path):
        problem = "is too long" if len(file_path) > MAX_PATH_CHARS else "holds control characters"
        raise TransInrError(
            f"{where}: the file_path {shown(file_path)} {problem}; give a plain relative path "
            "like ./rgb/000"
        )
    parts = file_path.replace("\\", "/").split("/")
    if file_path.startswith(("/", "\\")) or (len(file_path) > 1 and file_path[1] == ":"):
        raise TransInrError(
            f"{where}: the file_path {shown(file_path)} is absolute; learnit file paths are "
            "relative to the object folder, like ./rgb/000"
        )
    if ".." in parts:
        raise TransInrError(
            f"{where}: the file_path {shown(file_path)} climbs out of the object folder with "
            "'..'; give a path inside it, like ./rgb/000"
        )
    name = Path(file_path).name
    if name in ("", ".", ".."):
        raise TransInrError(
            f"{where}: the file_path {shown(file_path)} names no file; give one like ./rgb/000"
        )
    name = name if name.lower().endswith(IMAGE_SUFFIXES) else name + ".png"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise TransInrError(
            f"{where}: the file name in {shown(file_path)} is over {MAX_NAME_BYTES} bytes, "
            "longer than a file system allows; rename the image"
        )
    return name


def matrix_values(path: Path, index: int, matrix: object) -> list[list[float]]:
    """A frame's transform_matrix as 4 rows of 4 finite numbers."""
    where = f"{path} frame {index}"
    rows = matrix if isinstance(matrix, list) and len(matrix) == 4 else None
    if rows is None or not all(isinstance(row, list) and len(row) == 4 for row in rows):
        raise TransInrError(f"{where}: the pose is not a 4x4 matrix of numbers")
    if not all(is_number(value) for row in rows for value in row):
        raise TransInrError(f"{where}: the pose is not a finite 4x4 matrix of numbers")
    return [[float(value) for value in row] for row in rows]


def first_bad(flags: torch.Tensor) -> int | None:
    """The index of the first True in a 1-D bool tensor, or None."""
    found = torch.nonzero(flags)
    return int(found[0, 0]) if len(found) else None


def check_rigid(path: Path, poses: torch.Tensor) -> None:
    """Every pose (F, 4, 4) float64 is a rotation plus a translation (as rays.check_pose)."""
    rotation = poses[:, :3, :3]
    eye = torch.eye(3, dtype=poses.dtype)
    gap = (rotation @ rotation.transpose(1, 2) - eye).abs()
    orthonormal = (gap <= 1e-3 + 1e-5 * eye).flatten(1)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=poses.dtype)
    last_row = ((poses[:, 3] - bottom).abs() <= 1e-8 + 1e-5 * bottom.abs()).all(dim=1)
    proper = (torch.linalg.det(rotation) - 1.0).abs() < 1e-3
    bad = first_bad(~(orthonormal.all(dim=1) & last_row & proper))
    if bad is not None:
        raise TransInrError(
            f"{path} frame {bad}: the pose is not a rigid transform (rotation + translation, last "
            "row 0 0 0 1); give a camera-to-world matrix"
        )


def check_cameras(path: Path, poses: torch.Tensor, angle: float) -> None:
    """Every camera (F, 4, 4) float64 is at a sane distance from the object at the origin and
    sees it: the sphere of OBJECT_RADIUS around the origin is in front of the camera and
    overlaps its (diagonal) field of view."""
    position = poses[:, :3, 3]
    distance = position.norm(dim=1)
    low, high = DISTANCE_RANGE
    bad = first_bad((distance < low) | (distance > high))
    if bad is not None:
        raise TransInrError(
            f"{path} frame {bad}: the camera is {distance[bad].item():.4g} from the object at "
            f"the origin; give cameras {low} to {high} away (learnit's are 4 away)"
        )
    to_object = (poses[:, :3, :3].transpose(1, 2) @ -position[:, :, None])[:, :, 0]
    ahead = -to_object[:, 2]  # the camera looks down its -z axis
    off_axis = torch.atan2(to_object[:, :2].norm(dim=1), ahead)
    half_view = math.atan(math.tan(0.5 * angle) * math.sqrt(2.0))
    margin = torch.asin((OBJECT_RADIUS / distance).clamp(max=1.0))
    bad = first_bad(off_axis > half_view + margin)
    if bad is not None:
        raise TransInrError(
            f"{path} frame {bad}: the camera does not see the object at the origin (it looks "
            f"{math.degrees(off_axis[bad].item()):.0f} degrees away from it); give "
            "camera-to-world poses that look at the object (OpenGL: the camera looks down -z)"
        )


def parse_frames(path: Path, frames: object) -> tuple[list[str], list[list[list[float]]]]:
    """The frames' image names and pose values, every field of every frame checked."""
    if not isinstance(frames, list) or not frames:
        raise TransInrError(f"{path} is malformed: frames is not a list of frames; {LEARNIT_HINT}")
    if len(frames) > MAX_FRAMES:
        raise TransInrError(
            f"{path} has {len(frames):,} frames, over the limit of {MAX_FRAMES:,}; split the "
            "object's views into several folders"
        )
    names, values = [], []
    for index, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise TransInrError(
                f"{path} is malformed: frame {index} is {shown(frame)}, not an object; "
                f"{LEARNIT_HINT}"
            )
        for key in ("file_path", "transform_matrix"):
            if key not in frame:
                raise TransInrError(
                    f"{path} is malformed: frame {index} has no {key}; {LEARNIT_HINT}"
                )
        names.append(image_name(path, index, frame["file_path"]))
        values.append(matrix_values(path, index, frame["transform_matrix"]))
    return names, values


def read_transforms(path: str | Path) -> Transforms:
    """Read and check a transforms.json: a typed record, or a one-line error."""
    path = Path(path)
    if not is_file(path):
        raise TransInrError(f"{path} not found; a views folder needs a transforms.json")
    data = read_json(path, "transforms.json", LEARNIT_HINT)
    if not isinstance(data, dict):
        raise TransInrError(
            f"{path} is malformed: it holds {shown(data)}, not an object; {LEARNIT_HINT}"
        )
    for key in ("camera_angle_x", "frames"):
        if key not in data:
            raise TransInrError(f"{path} is malformed: it has no {key}; {LEARNIT_HINT}")
    angle = check_angle(path, data["camera_angle_x"])
    names, values = parse_frames(path, data["frames"])
    poses = torch.tensor(values, dtype=torch.float64)
    check_rigid(path, poses)
    check_cameras(path, poses, angle)
    frames = [
        Frame(frame["file_path"], name, pose)
        for frame, name, pose in zip(data["frames"], names, poses.float(), strict=True)
    ]
    return Transforms(path, angle, frames)


# --- paths: inside the object folder and the data root -------------------------------------


def resolved(path: Path) -> Path:
    """`path` with every symlink followed (it need not exist); a path the OS refuses (too
    long, a loop) is a one-line error."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError) as error:
        raise TransInrError(f"cannot open {path} ({error}); check the path") from None


def check_inside(path: Path, root: Path, what: str, follow_links: bool) -> Path:
    """`path` resolved; it must stay inside `root` (resolved) unless `follow_links`."""
    target = resolved(path)
    if not follow_links and not target.is_relative_to(resolved(root)):
        raise TransInrError(
            f"{what} {path} leads to {target}, outside {root} (a symlink); copy it in, or pass "
            "--follow-links to read it there"
        )
    return target


def frame_image(transforms: Transforms, index: int, follow_links: bool = False) -> Path:
    """The image file of frame `index`, inside the object folder (symlinks included)."""
    path = transforms.folder / transforms.frames[index].image_name
    return check_inside(path, transforms.folder, "the image", follow_links)


# --- the splits file ------------------------------------------------------------------------


def splits_file(root: Path, category: str) -> Path:
    """`chairs` -> `<root>/chair_splits.json` (the category minus its trailing s)."""
    return root / f"{category[:-1] if category.endswith('s') else category}_splits.json"


def check_object_id(path: Path, split: str, index: int, object_id: object) -> str:
    """An object id: one plain folder name (no separators, `.`, `..`, control characters)."""
    if not isinstance(object_id, str):
        raise TransInrError(
            f"{path}: object {index} of split '{split}' is {shown(object_id)}, not a folder "
            "name; the split lists object ids as strings"
        )
    bad = (
        object_id in ("", ".", "..")
        or "/" in object_id
        or "\\" in object_id
        or unsafe_text(object_id)
        or len(object_id.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
    )
    if bad:
        raise TransInrError(
            f"{path}: object {index} of split '{split}' is {shown(object_id)}, not a plain "
            "folder name (no '/', '..', control characters; at most 255 bytes); fix the split"
        )
    return object_id


def read_splits(root: str | Path, category: str, split: str) -> list[str]:
    """The object ids of a split, checked; a split the file does not list is an error."""
    path = splits_file(Path(root), category)
    if not is_file(path):
        raise TransInrError(f"split file {path} not found; check --data and --category")
    data = read_json(path, "split file", SPLITS_HINT)
    ids = data.get(split) if isinstance(data, dict) else None
    if not isinstance(ids, list):
        raise TransInrError(f"{path} has no list of object ids for split '{split}'")
    if len(ids) > MAX_OBJECTS:
        raise TransInrError(
            f"{path} lists {len(ids):,} {split} objects, over the limit of {MAX_OBJECTS:,}"
        )
    return [check_object_id(path, split, index, value) for index, value in enumerate(ids)]


def lists_split(root: str | Path, category: str, split: str) -> bool:
    """Whether the split file lists any object for `split` (False for a broken file: the
    reader proper says what is wrong with it)."""
    try:
        return bool(read_splits(root, category, split))
    except TransInrError:
        return False


def object_folders(
    root: str | Path, category: str, split: str, follow_links: bool = False
) -> list[Path]:
    """The object folders of a split, in the split file's order, inside the data root."""
    root = Path(root)
    folders = []
    for object_id in read_splits(root, category, split):
        folder = root / category / object_id
        check_inside(folder, root, f"object {shown(object_id)} at", follow_links)
        folders.append(folder)
    return folders
