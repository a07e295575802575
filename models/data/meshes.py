"""Real meshes rendered into the paper's "learnit" layout: OBJ files (with MTL colours and
textures) and Sweet Home 3D furniture libraries (`.sh3f`: zip files of OBJ models with a
`PluginFurnitureCatalog.properties` catalogue naming each model's category).

Each mesh is turned Z up, normalised as the real ShapeNet renders are (bounding box centred at
the origin, longest side from -1 to 1: measured on ../shared/data/shapenet-real), and rasterised
with the `models.nerf.rays` cameras (pixel centres, focal 0.5 W / tan(camera_angle_x / 2)) from 50
cameras at radius 4 looking at the origin, elevation 0-60 degrees. Shading imitates the real
renders: flat faces lit by a light at the camera, 0.5 ambient + 0.5 |cos|, both sides lit, 4 x 4
samples a pixel (alpha is their coverage), RGB not premultiplied, transparent white background.
A mesh that cannot be read or rendered is skipped with a one-line reason; nothing is printed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import posixpath
import re
import time
import zipfile
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from models.data.synth import (
    CAMERA_ANGLE_X,
    RADIUS,
    splits_name,
    view_poses,
    write_atomic,
    write_views,
)
from models.errors import TransInrError
from models.nerf.rays import focal_from_angle

EXTENT = 1.0  # largest half extent after normalisation (shapenet-real: the longest side is 2)
SUPERSAMPLE = 4  # samples a pixel along each axis (shapenet-real has 4 x 4: 17 alpha levels)
AMBIENT, HEADLIGHT = 0.5, 0.5  # shade = AMBIENT + HEADLIGHT * |cos(normal, view ray)|
DEFAULT_COLOUR = (0.8, 0.8, 0.8)  # faces without a material (the MTL default Kd)
PAIRS_PER_CHUNK = 1 << 20  # (triangle, sample) candidates the rasterizer holds at once
CATALOGUE = "PluginFurnitureCatalog.properties"
# Words that put a catalogue entry in a category: a word of its name, its tags or its catalogue
# category ("Lights"). Other categories match their own name, singular or plural.
CATEGORY_WORDS: dict[str, frozenset[str]] = {
    "chairs": frozenset({"chair", "chairs", "armchair", "armchairs", "stool", "stools", "bench"}),
    "lamps": frozenset({"lamp", "lamps", "lights", "lantern", "lamppost", "chandelier"}),
    "sofas": frozenset({"sofa", "sofas", "couch", "couches"}),
    "tables": frozenset({"table", "tables"}),
}


class MeshError(Exception):
    """Why one mesh cannot be rendered, in one line (the mesh is skipped, the run goes on)."""


@dataclass
class Material:
    """An MTL material: diffuse colour Kd (3,) in [0, 1] and an optional map_Kd texture,
    uint8 RGB (H, W, 3), which replaces Kd where the face has texture coordinates."""

    name: str
    colour: tuple[float, float, float] = DEFAULT_COLOUR
    texture: np.ndarray | None = None


@dataclass
class Mesh:
    """A triangle mesh: vertices (N, 3), faces (F, 3) vertex indices, texture coordinates
    uvs (M, 2) with face_uvs (F, 3) indices into them (-1: none), face_materials (F,)
    indices into materials."""

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    face_uvs: np.ndarray
    face_materials: np.ndarray
    materials: list[Material]


@dataclass(frozen=True)
class MeshSource:
    """One mesh to render: `label` names it in messages, `key` makes its object id, `load`
    reads it Z up (raising MeshError), `info` goes to the sources file (licence, creator)."""

    label: str
    key: str
    load: Callable[[], Mesh]
    info: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A mesh that was not rendered and why, each on one line (whitespace runs collapsed)."""

    source: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", " ".join(self.source.split()))
        object.__setattr__(self, "reason", " ".join(self.reason.split()))


@dataclass
class MeshDataset:
    """What `write_mesh_dataset` did: object ids written (in source order), the meshes it
    skipped, render seconds per written object and the splits file."""

    ids: list[str]
    skipped: list[Skipped]
    seconds: list[float]
    splits: dict[str, list[str]]
    splits_path: Path


# ----------------------------------------------------------------------------------------------
# Files a model refers to


class ModelFiles(Protocol):
    """The files an OBJ refers to (MTL libraries, textures), by name relative to the OBJ."""

    def read(self, reference: str) -> bytes | None: ...


def _file_names(folder: str, reference: str) -> list[str]:
    """Where a referenced file may be: its path relative to `folder`, then its bare name there
    (exporters write absolute paths of the author's machine)."""
    reference = reference.strip().strip('"').replace("\\", "/")
    names = [posixpath.join(folder, reference.lstrip("/"))]
    names.append(posixpath.join(folder, posixpath.basename(reference)))
    return [posixpath.normpath(name) for name in names]


class ZipModelFiles:
    """Files of a model inside a zip (a `.sh3f` library or a model zip), case-insensitively."""

    def __init__(self, archive: zipfile.ZipFile | FolderArchive, folder: str) -> None:
        self.archive, self.folder = archive, folder
        self.names = {name.lower(): name for name in archive.namelist()}

    def read(self, reference: str) -> bytes | None:
        for name in _file_names(self.folder, reference):
            found = self.names.get(name.lower())
            if found is not None:
                return self.archive.read(found)
        return None


class FolderModelFiles:
    """Files of a model in a folder on disk, case-insensitively."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, reference: str) -> bytes | None:
        for name in _file_names(".", reference):
            path = self.folder / name
            if path.is_file():
                return path.read_bytes()
            parent = path.parent
            if parent.is_dir():
                for other in sorted(parent.iterdir()):
                    if other.name.lower() == path.name.lower() and other.is_file():
                        return other.read_bytes()
        return None


# ----------------------------------------------------------------------------------------------
# OBJ and MTL


def _texture(files: ModelFiles, reference: str) -> np.ndarray | None:
    """A texture as uint8 RGB (H, W, 3), or None when it is missing or unreadable."""
    data = files.read(reference)
    if data is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.array(image.convert("RGB"))  # (H, W, 3) uint8, writable
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


_MAP_OPTIONS = {"-s": 3, "-o": 3, "-t": 3, "-mm": 2}  # values each option takes (others: 1)


def _map_name(parts: list[str]) -> str:
    """The file of a `map_Kd [-option values ...] name, spaces allowed` line."""
    words, index = parts[1:], 0
    while index < len(words) - 1 and words[index].startswith("-"):
        index += 1 + _MAP_OPTIONS.get(words[index], 1)
    return " ".join(words[index:])


def parse_mtl(text: str, files: ModelFiles) -> dict[str, Material]:
    """MTL text -> materials by name (Kd colour, map_Kd texture; the rest is ignored)."""
    materials: dict[str, Material] = {}
    current: Material | None = None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "newmtl":
            current = Material(" ".join(parts[1:]))
            materials[current.name] = current
        elif current is not None and parts[0] == "Kd" and len(parts) >= 4:
            try:
                r, g, b = (min(max(float(value), 0.0), 1.0) for value in parts[1:4])
            except ValueError:
                continue
            if all(math.isfinite(value) for value in (r, g, b)):
                current.colour = (r, g, b)
        elif current is not None and parts[0] == "map_Kd":
            current.texture = _texture(files, _map_name(parts))
    return materials


def _index(token: str, count: int, what: str, line: int) -> int:
    """An OBJ index (1-based, or negative from the end) -> 0-based."""
    try:
        value = int(token)
    except ValueError:
        raise MeshError(f"line {line}: bad {what} index {token!r}") from None
    index = value - 1 if value > 0 else count + value
    if value == 0 or not 0 <= index < count:
        raise MeshError(f"line {line}: {what} index {value} does not exist ({count} defined)")
    return index


class _ObjReader:
    """State of one OBJ parse: vertices, texture coordinates, triangles, materials."""

    def __init__(self, files: ModelFiles) -> None:
        self.files = files
        self.vertices: list[list[str]] = []
        self.uvs: list[list[str]] = []
        self.triangles: list[tuple[int, int, int]] = []
        self.triangle_uvs: list[tuple[int, int, int]] = []
        self.triangle_materials: list[int] = []
        self.library: dict[str, Material] = {}
        self.material_index: dict[str, int] = {"": 0}  # "": faces before any usemtl
        self.current = 0

    def use_material(self, name: str) -> None:
        self.current = self.material_index.setdefault(name, len(self.material_index))

    def load_library(self, references: str) -> None:
        """`mtllib a.mtl b.mtl` (or one name with spaces): materials missing are left grey."""
        for reference in [references, *references.split()]:
            data = self.files.read(reference)
            if data is not None:
                self.library.update(parse_mtl(data.decode("utf-8", "replace"), self.files))
                if reference == references:
                    return

    def materials(self) -> list[Material]:
        """The materials faces use, by index (those no library defines: DEFAULT_COLOUR)."""
        names = sorted(self.material_index, key=self.material_index.__getitem__)
        return [self.library.get(name, Material(name or "(none)")) for name in names]

    def face(self, corners: list[str], line: int) -> None:
        """A polygon `v`, `v/vt`, `v//vn` or `v/vt/vn` corners, fan-triangulated."""
        vertex_ids, uv_ids = [], []
        for corner in corners:
            fields = corner.split("/")
            vertex_ids.append(_index(fields[0], len(self.vertices), "vertex", line))
            has_uv = len(fields) > 1 and fields[1] != ""
            uv_ids.append(_index(fields[1], len(self.uvs), "texture", line) if has_uv else -1)
        if -1 in uv_ids:
            uv_ids = [-1] * len(uv_ids)
        for k in range(1, len(vertex_ids) - 1):
            self.triangles.append((vertex_ids[0], vertex_ids[k], vertex_ids[k + 1]))
            self.triangle_uvs.append((uv_ids[0], uv_ids[k], uv_ids[k + 1]))
            self.triangle_materials.append(self.current)

    def line(self, parts: list[str], number: int) -> None:
        tag = parts[0]
        if tag == "v":
            if len(parts) < 4:
                raise MeshError(f"line {number}: a vertex needs x y z")
            self.vertices.append(parts[1:4])
        elif tag == "vt":
            self.uvs.append((parts[1:3] + ["0", "0"])[:2])
        elif tag == "f" and len(parts) >= 4:
            self.face(parts[1:], number)
        elif tag == "usemtl":
            self.use_material(" ".join(parts[1:]))
        elif tag == "mtllib":
            self.load_library(" ".join(parts[1:]))


def _numbers(rows: list[list[str]], columns: int, what: str) -> np.ndarray:
    """Rows of number strings -> float64 (R, columns)."""
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), columns)
    except ValueError:
        raise MeshError(f"a {what} line holds something that is not a number") from None


def parse_obj(text: str, files: ModelFiles) -> Mesh:
    """OBJ text -> Mesh (its MTL libraries and textures read through `files`); MeshError when
    it has no faces or unusable numbers. Axes are left as the file has them."""
    reader = _ObjReader(files)
    for number, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if parts and not parts[0].startswith("#"):
            reader.line(parts, number)
    if not reader.triangles:
        raise MeshError("the mesh has no faces (empty mesh)")
    vertices = _numbers(reader.vertices, 3, "vertex")
    faces = np.array(reader.triangles, dtype=np.int64)
    if not np.isfinite(vertices[np.unique(faces)]).all():
        raise MeshError("the mesh has NaN or infinite vertex coordinates")
    return Mesh(
        vertices=vertices,
        faces=faces,
        uvs=_numbers(reader.uvs, 2, "texture coordinate"),
        face_uvs=np.array(reader.triangle_uvs, dtype=np.int64),
        face_materials=np.array(reader.triangle_materials, dtype=np.int64),
        materials=reader.materials(),
    )


# ----------------------------------------------------------------------------------------------
# Placing a mesh: rotation, size, Z up, ShapeNet normalisation


# Sweet Home 3D models face +z (towards the viewer of its front view); ShapeNet's, and so the
# learnit renders', face -z, which Z up is +y (the benches of shapenet-real face +y). Turning a
# library model half a turn about its up axis puts its front where a ShapeNet model's is.
SH3D_TO_SHAPENET_FRONT = np.diag([-1.0, 1.0, -1.0])


def y_up_to_z_up(vertices: np.ndarray) -> np.ndarray:
    """(x, y, z) in a Y-up frame (OBJ, Sweet Home 3D) -> Z up: (x, -z, y), a proper rotation."""
    return np.stack([vertices[:, 0], -vertices[:, 2], vertices[:, 1]], axis=1)


def used_bounds(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (lo (3,), hi (3,)) of the vertices that faces use."""
    used = mesh.vertices[np.unique(mesh.faces)]
    return used.min(0), used.max(0)


def normalise(mesh: Mesh, extent: float = EXTENT) -> Mesh:
    """The mesh with its bounding box centred at the origin and its longest side 2 * extent
    (ShapeNet's normalisation as the real renders show it); MeshError when it is flat."""
    lo, hi = used_bounds(mesh)
    size = float((hi - lo).max())
    if not size > 0 or not math.isfinite(size):
        raise MeshError("the mesh has no extent (all its vertices coincide)")
    vertices = (mesh.vertices - (lo + hi) / 2) * (2 * extent / size)
    return replace(mesh, vertices=vertices)


def place(
    mesh: Mesh,
    rotation: np.ndarray | None = None,
    size: tuple[float, float, float] | None = None,
    y_up: bool = True,
) -> Mesh:
    """Sweet Home 3D's placement of a model, then Z up: rotate the vertices by `rotation`
    (3, 3) (v -> R v), stretch the bounding box to `size` = (width x, height y, depth z) when
    given, and turn a Y-up model Z up."""
    vertices = mesh.vertices
    if rotation is not None:
        vertices = vertices @ rotation.T
    if size is not None:
        used = vertices[np.unique(mesh.faces)]
        extent = used.max(0) - used.min(0)
        wanted = np.asarray(size, dtype=np.float64)
        if (extent > 0).all() and (wanted > 0).all():
            vertices = vertices * (wanted / extent)
    if y_up:
        vertices = y_up_to_z_up(vertices)
    return replace(mesh, vertices=vertices)


# ----------------------------------------------------------------------------------------------
# Sweet Home 3D catalogues


def parse_properties(text: str) -> dict[str, str]:
    """A Java .properties file -> {key: value} (comments, continuation lines, `=`, `:` or
    space separators, backslash escapes and \\uXXXX)."""
    logical, pending = [], ""
    for raw in text.splitlines():
        line = pending + raw.lstrip() if pending else raw.lstrip()
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending = line[:-1]
            continue
        pending = ""
        if line and line[0] not in "#!":
            logical.append(line)
    properties = {}
    for line in logical:
        match = re.match(r"((?:[^\\=:\s]|\\.)*)\s*[=:\s]?\s*(.*)$", line)
        if match:
            properties[_unescape(match.group(1))] = _unescape(match.group(2))
    return properties


def _unescape(text: str) -> str:
    """Java properties escapes: \\uXXXX, \\t, \\n, \\r, \\f and \\x -> x."""
    named = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}

    def unescaped(match: re.Match) -> str:
        escape = match.group(1)
        if escape.startswith("u"):
            return chr(int(escape[1:], 16))
        return named.get(escape, escape)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", unescaped, text)


@dataclass(frozen=True)
class CatalogueEntry:
    """One piece of furniture of a `.sh3f` catalogue (the `key#N` properties of entry N)."""

    number: int
    id: str
    name: str
    category: str
    model: str
    rotation: np.ndarray | None
    size: tuple[float, float, float] | None
    creator: str
    tags: str = ""

    def words(self) -> set[str]:
        """Lower-case words of its name, its tags and its catalogue category."""
        text = f"{self.name} {self.tags} {self.category}".lower()
        return set(re.findall(r"[a-z0-9]+", text))


def _rotation(text: str | None) -> np.ndarray | None:
    """`modelRotation` (9 numbers, row-major) -> (3, 3), None when absent or malformed."""
    try:
        values = [float(value) for value in (text or "").split()]
    except ValueError:
        return None
    return np.array(values).reshape(3, 3) if len(values) == 9 else None


_SIZE_KEYS = ("width", "height", "depth")  # along x, y (up) and z of a Sweet Home 3D model


def _size(properties: dict[str, str], number: int) -> tuple[float, float, float] | None:
    """(width, height, depth) of entry `number`, None unless all three are positive numbers."""
    try:
        width, height, depth = (float(properties[f"{key}#{number}"]) for key in _SIZE_KEYS)
    except (KeyError, ValueError):
        return None
    size = (width, height, depth)
    return size if all(math.isfinite(v) and v > 0 for v in size) else None


def catalogue_entries(properties: dict[str, str]) -> list[CatalogueEntry]:
    """The furniture of a catalogue, by entry number (entries without a model are left out)."""
    numbers = sorted({int(key.split("#")[1]) for key in properties if re.fullmatch(r"id#\d+", key)})
    entries = []
    for number in numbers:
        model = properties.get(f"model#{number}", "").strip()
        if not model:
            continue
        entries.append(
            CatalogueEntry(
                number=number,
                id=properties[f"id#{number}"],
                name=properties.get(f"name#{number}", ""),
                category=properties.get(f"category#{number}", ""),
                model=model,
                rotation=_rotation(properties.get(f"modelRotation#{number}")),
                size=_size(properties, number),
                creator=properties.get(f"creator#{number}", ""),
                tags=properties.get(f"tags#{number}", ""),
            )
        )
    return entries


def category_words(category: str) -> frozenset[str]:
    """The words that put a catalogue entry in `category` (see CATEGORY_WORDS)."""
    singular = category[:-1] if category.endswith("s") else category
    return CATEGORY_WORDS.get(category, frozenset({category, singular}))


def in_category(entry: CatalogueEntry, category: str) -> bool:
    """Whether a word of the entry's name, tags or catalogue category names `category`."""
    return bool(entry.words() & category_words(category))


# ----------------------------------------------------------------------------------------------
# Finding meshes: OBJ files, .sh3f libraries (zip files) and unpacked libraries (folders)


class FolderArchive:
    """A folder read like a zip file (namelist, read): an unpacked `.sh3f` library."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def namelist(self) -> list[str]:
        files = (p for p in self.folder.rglob("*") if p.is_file())
        return sorted(p.relative_to(self.folder).as_posix() for p in files)

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def close(self) -> None:
        """Nothing to release (a zip file's counterpart)."""


def _open_archive(path: Path) -> zipfile.ZipFile | FolderArchive:
    """A library as an archive; MeshError when a file is not a readable zip."""
    if path.is_dir():
        return FolderArchive(path)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise MeshError("not a zip file (a .sh3f library is a zip of OBJ models)") from None


def _first_obj(names: Sequence[str], folder: str = "") -> str | None:
    """The first OBJ file (sorted) under `folder` among archive names."""
    prefix = folder.rstrip("/").lower() + "/" if folder else ""
    found = sorted(n for n in names if n.lower().startswith(prefix) and n.lower().endswith(".obj"))
    return found[0] if found else None


def _archive_model(archive: zipfile.ZipFile | FolderArchive, model: str) -> tuple[str, ModelFiles]:
    """A catalogue `model` path (an OBJ file, a folder holding one, or a zip holding one) ->
    the OBJ text and the files beside it."""
    path = model.strip().lstrip("/")
    names = {name.lower(): name for name in archive.namelist()}
    if path.lower().endswith(".zip"):
        if path.lower() not in names:
            raise MeshError(f"model {model} is not in the library (missing OBJ)")
        archive = zipfile.ZipFile(io.BytesIO(archive.read(names[path.lower()])))
        names = {name.lower(): name for name in archive.namelist()}
        path = ""
    if path.lower() in names and not path.lower().endswith(".obj"):
        raise MeshError(f"model {model} is not an OBJ file (only OBJ models are read)")
    obj = names.get(path.lower()) if path.lower().endswith(".obj") else _first_obj(names, path)
    if obj is None:
        raise MeshError(f"model {model} is not in the library (missing OBJ)")
    text = archive.read(obj).decode("utf-8", "replace")
    return text, ZipModelFiles(archive, posixpath.dirname(obj))


def _entry_loader(path: Path, entry: CatalogueEntry) -> Callable[[], Mesh]:
    """Reads catalogue entry `entry` of the library at `path`, placed as Sweet Home 3D places
    it, turned to face as ShapeNet models do and turned Z up."""

    def load() -> Mesh:
        try:
            with closing(_open_archive(path)) as archive:
                text, files = _archive_model(archive, entry.model)
                mesh = parse_obj(text, files)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError):
            raise MeshError(f"model {entry.model} cannot be read from the library") from None
        rotation = SH3D_TO_SHAPENET_FRONT
        if entry.rotation is not None:
            rotation = rotation @ entry.rotation
        return place(mesh, rotation, entry.size, y_up=True)

    return load


def library_sources(path: Path, category: str) -> list[MeshSource]:
    """The models of a `.sh3f` library (or an unpacked one) whose name or catalogue category
    names `category`; MeshError when it is not a library."""
    try:
        with closing(_open_archive(path)) as archive:
            text = archive.read(CATALOGUE).decode("latin-1")
    except (KeyError, FileNotFoundError):
        raise MeshError(f"no {CATALOGUE} in it (not a Sweet Home 3D library)") from None
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError):
        raise MeshError(f"its {CATALOGUE} cannot be read") from None
    properties = parse_properties(text)
    library = {
        "library": properties.get("name", path.name),
        "license": properties.get("license", ""),
        "provider": properties.get("provider", ""),
    }
    sources = []
    for entry in catalogue_entries(properties):
        if in_category(entry, category):
            info = {"name": entry.name, "category": entry.category, "creator": entry.creator}
            sources.append(
                MeshSource(
                    label=f"{path.name}#{entry.number} {entry.name}",
                    key=f"sh3f/{path.name}/{entry.id}",
                    load=_entry_loader(path, entry),
                    info={**info, **library, "model": entry.model},
                )
            )
    return sources


def obj_source(path: Path, label: str, y_up: bool = True) -> MeshSource:
    """A loose OBJ file (its MTL files and textures beside it), Y up unless `y_up` is False."""

    def load() -> Mesh:
        try:
            text = path.read_text("utf-8", "replace")
        except OSError as error:
            raise MeshError(f"cannot read it ({error.strerror})") from None
        return place(parse_obj(text, FolderModelFiles(path.parent)), y_up=y_up)

    return MeshSource(label=label, key=f"obj/{label}", load=load, info={"name": path.stem})


def find_sources(
    src: Path, category: str, y_up: bool = True
) -> tuple[list[MeshSource], list[Skipped]]:
    """The meshes under `src`: an OBJ file, a `.sh3f` library, or a folder searched for both
    (a folder holding PluginFurnitureCatalog.properties is an unpacked library). Every loose
    OBJ is taken; library models only when they are in `category`. Libraries that cannot be
    read come back as skipped."""
    src = Path(src)
    if not src.exists():
        raise TransInrError(f"{src} not found; give an OBJ file, a .sh3f library or a folder")
    if src.is_file() and src.suffix.lower() not in (".obj", ".sh3f"):
        raise TransInrError(f"{src} is not an OBJ file or a .sh3f library; give one, or a folder")
    sources: list[MeshSource] = []
    skipped: list[Skipped] = []
    for path in _mesh_files(src):
        label = path.name if path == src else path.relative_to(src).as_posix()
        if path.suffix.lower() == ".obj":
            sources.append(obj_source(path, label, y_up))
            continue
        try:
            sources.extend(library_sources(path, category))
        except MeshError as error:
            skipped.append(Skipped(label, str(error)))
    return sources, skipped


def _mesh_files(src: Path) -> list[Path]:
    """OBJ files, .sh3f files and unpacked library folders under `src`, sorted; files inside
    an unpacked library are its own."""
    if src.is_file():
        return [src]
    libraries = sorted(p.parent for p in src.rglob(CATALOGUE))
    found = list(libraries)
    for path in sorted(src.rglob("*")):
        inside = any(library in path.parents for library in libraries)
        if path.is_file() and path.suffix.lower() in (".obj", ".sh3f") and not inside:
            found.append(path)
    return sorted(found)


# ----------------------------------------------------------------------------------------------
# Rasterizer


@dataclass
class Surface:
    """A mesh ready to rasterise: per triangle its corners (T, 3, 3) float64, unit normal
    (T, 3), flat colour (T, 3) in [0, 1], texture coordinates (T, 3, 2) and texture index (T,)
    (-1: flat colour) into textures, each uint8 RGB (H, W, 3)."""

    corners: torch.Tensor
    normals: torch.Tensor
    colours: torch.Tensor
    uvs: torch.Tensor
    texture_index: torch.Tensor
    textures: list[torch.Tensor]


def surface(mesh: Mesh) -> Surface:
    """The mesh's triangles with their normals and colours (degenerate triangles dropped)."""
    corners = torch.from_numpy(mesh.vertices[mesh.faces])  # (T, 3, 3)
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = normals.norm(dim=-1)
    keep = length > 1e-12
    if not keep.any():
        raise MeshError("every face of the mesh has zero area")
    textures, texture_of = [], []
    for material in mesh.materials:
        texture_of.append(len(textures) if material.texture is not None else -1)
        if material.texture is not None:
            textures.append(torch.tensor(material.texture, dtype=torch.uint8))
    colours = torch.tensor([m.colour for m in mesh.materials], dtype=torch.float32)
    has_uvs = torch.from_numpy(mesh.face_uvs[:, 0] >= 0)
    texture_index = torch.tensor(texture_of)[torch.from_numpy(mesh.face_materials)]
    texture_index = torch.where(has_uvs, texture_index, -1)
    uvs = torch.zeros(len(mesh.faces), 3, 2, dtype=torch.float64)
    if len(mesh.uvs):
        uvs = torch.from_numpy(mesh.uvs[mesh.face_uvs.clip(min=0)])
        uvs = torch.where(has_uvs[:, None, None], uvs, 0.0)
    return Surface(
        corners=corners[keep],
        normals=normals[keep] / length[keep, None],
        colours=colours[torch.from_numpy(mesh.face_materials)][keep],
        uvs=uvs[keep],
        texture_index=texture_index[keep],
        textures=textures,
    )


@dataclass
class _Screen:
    """Triangles seen from one camera on a grid of S x S samples: corner depths (T, 3), sample
    box origin (T, 2) and size (T, 2) (x, y), and barycentric coefficients (T, 3, 3):
    weight_i = c[i, 0] * lx + c[i, 1] * ly + c[i, 2] at a sample centre (lx, ly) relative to
    the box origin."""

    depth: torch.Tensor
    origin: torch.Tensor
    size: torch.Tensor
    coefficients: torch.Tensor


def _screen(corners: torch.Tensor, pose: torch.Tensor, samples: int, focal: float) -> _Screen:
    """Project triangle corners (T, 3, 3) with a camera-to-world pose (4, 4) (the models.nerf.rays
    convention: the camera looks down -z, pixel centres at index + 0.5)."""
    rotation, position = pose[:3, :3], pose[:3, 3]
    local = (corners - position) @ rotation  # (T, 3, 3) camera coordinates
    depth = -local[..., 2]
    if not (depth > 1e-3).all():
        raise MeshError("the mesh reaches behind a camera")
    x = local[..., 0] / depth * focal + 0.5 * samples  # (T, 3) continuous sample coordinates
    y = -local[..., 1] / depth * focal + 0.5 * samples
    screen = torch.stack([x, y], -1)  # (T, 3, 2)
    low = torch.ceil(screen.amin(1) - 0.5).clamp(min=0)  # first sample whose centre is inside
    high = torch.floor(screen.amax(1) - 0.5).clamp(max=samples - 1)
    size = (high - low + 1).clamp(min=0)
    local_xy = screen - low[:, None, :]
    a, b = local_xy.roll(-1, 1), local_xy.roll(-2, 1)  # the other two corners of corner i
    edge = b - a
    area = (local_xy[:, 1, 0] - local_xy[:, 0, 0]) * (local_xy[:, 2, 1] - local_xy[:, 0, 1]) - (
        local_xy[:, 1, 1] - local_xy[:, 0, 1]
    ) * (local_xy[:, 2, 0] - local_xy[:, 0, 0])
    coefficients = torch.stack(
        [-edge[..., 1], edge[..., 0], edge[..., 1] * a[..., 0] - edge[..., 0] * a[..., 1]], -1
    )  # (T, 3, 3)
    flat = area.abs() < 1e-9
    coefficients = coefficients / torch.where(flat, 1.0, area)[:, None, None]
    size = torch.where(flat[:, None], 0.0, size)
    return _Screen(depth, low.long(), size.long(), coefficients)


def _chunks(counts: torch.Tensor) -> list[torch.Tensor]:
    """Triangle indices grouped so that each group has about PAIRS_PER_CHUNK samples."""
    active = torch.nonzero(counts > 0)[:, 0]
    if not len(active):
        return []
    group = (torch.cumsum(counts[active], 0) - 1) // PAIRS_PER_CHUNK
    return list(
        torch.split(active, torch.unique_consecutive(group, return_counts=True)[1].tolist())
    )


EMPTY = torch.iinfo(torch.int64).max  # z-buffer key of a sample no triangle covers


def _expand(ids: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each of ids (N,) repeated counts (N,) times, with the rank of each copy: (P,), (P,)."""
    repeated = torch.repeat_interleave(ids, counts)
    first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    return repeated, torch.arange(len(repeated)) - first


def _row_spans(screen: _Screen, chunk: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Samples worth testing for triangles `chunk`: on each row of a triangle's box, the span
    between its edges with one sample of margin. -> triangle, dx, dy (P,) (box offsets)."""
    triangle, dy = _expand(chunk, screen.size[chunk, 1])  # one entry per row: (R,)
    c = screen.coefficients[triangle]  # (R, 3, 3)
    slope = c[..., 0]  # weight_i = slope_i * lx + rest_i along the row
    rest = c[..., 1] * (dy + 0.5)[:, None] + c[..., 2]
    crossing = -rest / torch.where(slope == 0, 1.0, slope)  # lx where weight_i is 0
    low = torch.where(slope > 0, crossing, -math.inf).amax(1)
    high = torch.where(slope < 0, crossing, math.inf).amin(1)
    width = screen.size[triangle, 0]
    first = torch.ceil(low.clamp(min=-2.0) - 0.5) - 1  # lx = dx + 0.5 >= low
    last = torch.floor(torch.minimum(high, width + 2.0) - 0.5) + 1
    first = first.clamp(min=0).long()
    last = torch.minimum(last.long(), width - 1)
    count = (last - first + 1).clamp(min=0)
    count = torch.where(((slope == 0) & (rest < -1e-5)).any(1), 0, count)  # row misses it
    row, rank = _expand(torch.arange(len(triangle)), count)
    return triangle[row], first[row] + rank, dy[row]


def _zbuffer(screen: _Screen, samples: int) -> torch.Tensor:
    """The nearest triangle at every sample: key (S * S,) int64 = depth bits << 32 | triangle,
    EMPTY where none (equal depths: the lower triangle index wins)."""
    keys = torch.full((samples * samples,), EMPTY, dtype=torch.int64)
    inverse_depth = (1.0 / screen.depth).float()  # (T, 3)
    coefficients = screen.coefficients.float()
    for chunk in _chunks(screen.size[:, 0] * screen.size[:, 1]):
        triangle, dx, dy = _row_spans(screen, chunk)
        c = coefficients[triangle]  # (P, 3, 3)
        weights = c[..., 0] * (dx + 0.5)[:, None] + c[..., 1] * (dy + 0.5)[:, None] + c[..., 2]
        inside = (weights >= -1e-5).all(1)
        triangle, weights, dx, dy = triangle[inside], weights[inside], dx[inside], dy[inside]
        depth = 1.0 / (weights * inverse_depth[triangle]).sum(1).clamp(min=1e-6)  # perspective
        key = (depth.view(torch.int32).long() << 32) | triangle
        sample = (screen.origin[triangle, 1] + dy) * samples + screen.origin[triangle, 0] + dx
        keys.scatter_reduce_(0, sample, key, "amin")
    return keys


def _shade(
    shape: Surface,
    screen: _Screen,
    pose: torch.Tensor,
    sample: torch.Tensor,
    triangle: torch.Tensor,
    samples: int,
    focal: float,
) -> torch.Tensor:
    """Colours (K, 3) in [0, 1] of covered samples (K,) showing triangles (K,): material or
    texture colour (perspective-correct texture coordinates, nearest texel, repeating) times
    AMBIENT + HEADLIGHT * |cos| between the face normal and the sample's view ray."""
    sx, sy = sample % samples, sample // samples
    lx = (sx - screen.origin[triangle, 0]).double() + 0.5
    ly = (sy - screen.origin[triangle, 1]).double() + 0.5
    c = screen.coefficients[triangle]  # (K, 3, 3)
    weights = (c[..., 0] * lx[:, None] + c[..., 1] * ly[:, None] + c[..., 2]).clamp(min=0)
    weights = weights / screen.depth[triangle]  # perspective-correct
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-12)  # (K, 3)
    ray = torch.stack(
        [
            (sx.double() + 0.5 - 0.5 * samples) / focal,
            -(sy.double() + 0.5 - 0.5 * samples) / focal,
            -torch.ones(len(sample), dtype=torch.float64),
        ],
        -1,
    )  # (K, 3) camera coordinates, as models.nerf.rays.camera_rays
    normal = shape.normals[triangle] @ pose[:3, :3]  # (K, 3) in camera coordinates
    cosine = ((normal * ray).sum(1) / ray.norm(dim=1)).abs()
    albedo = shape.colours[triangle].clone()
    texture_index = shape.texture_index[triangle]
    for index, texture in enumerate(shape.textures):
        chosen = texture_index == index
        if chosen.any():
            uv = (weights[chosen, :, None] * shape.uvs[triangle[chosen]]).sum(1)  # (k, 2)
            uv = uv - uv.floor()
            height, width = texture.shape[:2]
            column = (uv[:, 0] * width).long().clamp(0, width - 1)
            row = ((1.0 - uv[:, 1]) * height).long().clamp(0, height - 1)
            albedo[chosen] = texture[row, column].float() / 255.0
    return albedo * (AMBIENT + HEADLIGHT * cosine.float())[:, None]


def render_mesh_view(
    shape: Surface,
    pose: torch.Tensor,
    size: int = 128,
    camera_angle_x: float = CAMERA_ANGLE_X,
    supersample: int = SUPERSAMPLE,
) -> np.ndarray:
    """One camera-to-world pose (4, 4) -> uint8 RGBA (size, size, 4): rasterised on a grid of
    s x s samples a pixel (the centres of models.nerf.rays' (s size)^2 grid at focal s f), then each
    pixel's alpha is its covered share and RGB the mean colour of its covered samples (not
    premultiplied); the background is (255, 255, 255, 0)."""
    samples = size * supersample
    focal = focal_from_angle(samples, camera_angle_x)
    pose = pose.double()
    screen = _screen(shape.corners, pose, samples, focal)
    keys = _zbuffer(screen, samples)
    sample = torch.nonzero(keys != EMPTY)[:, 0]
    triangle = keys[sample] & 0xFFFFFFFF
    colour = _shade(shape, screen, pose, sample, triangle, samples, focal)
    rgb = torch.zeros(samples * samples, 3)
    covered = torch.zeros(samples * samples)
    rgb[sample], covered[sample] = colour, 1.0
    s = supersample
    rgb = rgb.reshape(size, s, size, s, 3).sum((1, 3))  # (H, W, 3)
    count = covered.reshape(size, s, size, s).sum((1, 3))  # (H, W)
    rgb = torch.where(count[..., None] > 0, rgb / count.clamp(min=1)[..., None], 1.0)
    rgba = torch.cat([rgb, (count / (s * s))[..., None]], -1)
    return (rgba * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def render_mesh_views(
    mesh: Mesh,
    poses: torch.Tensor,
    size: int = 128,
    camera_angle_x: float = CAMERA_ANGLE_X,
    supersample: int = SUPERSAMPLE,
) -> np.ndarray:
    """A placed mesh seen from camera-to-world poses (V, 4, 4) -> uint8 RGBA (V, H, W, 4);
    see `render_mesh_view`. MeshError when a camera would be inside the mesh's reach."""
    shape = surface(mesh)
    with torch.no_grad():
        views = [
            render_mesh_view(shape, pose, size, camera_angle_x, supersample)
            for pose in poses.reshape(-1, 4, 4)
        ]
    return np.stack(views)


# ----------------------------------------------------------------------------------------------
# Data set writer


def object_id(key: str) -> str:
    """Deterministic 32-hex-digit id of a mesh (like ShapeNet's ids) from its source key."""
    return hashlib.sha1(f"transinr-mesh/{key}".encode()).hexdigest()[:32]


def split_ids(ids: list[str], fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, list]:
    """Deterministic train/val/test split of `ids` by the shares `fractions` (train, val,
    test): the ids ranking first in sorted order go to test, the next to val. A nonzero share
    gets at least one id when there are enough ids to keep one for training; lists sorted."""
    ranked, count = sorted(ids), len(ids)
    _, val_share, test_share = fractions
    test = round(count * test_share)
    val = round(count * val_share)
    if test_share > 0 and count >= 2:
        test = max(test, 1)
    if val_share > 0 and count >= 3:
        val = max(val, 1)
    while count and test + val > count - 1:
        if val >= test and val > 0:
            val -= 1
        else:
            test -= 1
    return {
        "train": sorted(ranked[test + val :]),
        "val": sorted(ranked[test : test + val]),
        "test": sorted(ranked[:test]),
    }


def turn_about_up(mesh: Mesh, degrees: float) -> Mesh:
    """The Z-up mesh turned `degrees` about the up axis (counter-clockwise seen from above)."""
    if degrees % 360 == 0:
        return mesh
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    turn = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    vertices = mesh.vertices @ turn.T
    return replace(mesh, vertices=vertices)


def render_source(
    source: MeshSource,
    seed: int,
    views: int,
    size: int,
    supersample: int = SUPERSAMPLE,
    turn: float = 0.0,
) -> tuple[np.ndarray, torch.Tensor]:
    """A mesh's views: uint8 RGBA (V, H, W, 4) and their poses (V, 4, 4), cameras drawn from
    (seed, object id), the mesh turned `turn` degrees about the up axis; MeshError when the
    mesh cannot be read or rendered."""
    mesh = normalise(turn_about_up(source.load(), turn))
    rng = np.random.default_rng([seed, int(object_id(source.key)[:12], 16)])
    poses = torch.stack(view_poses(rng, views, RADIUS)).to(torch.float32)  # (V, 4, 4)
    return render_mesh_views(mesh, poses, size, CAMERA_ANGLE_X, supersample), poses


def write_mesh_dataset(
    src: Path,
    root: Path,
    category: str,
    seed: int = 0,
    views: int = 50,
    size: int = 128,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    y_up: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_object: Callable[[str], None] | None = None,
    turn: float = 0.0,
) -> MeshDataset:
    """Render the `category` meshes under `src` into `root` in the learnit layout.

    `<root>/<category>/<id>/000.png ... + transforms.json` per mesh (the views in memory first,
    then each file atomically, transforms.json last), then `<root>/<category minus s>_splits.json`
    and `..._sources.json` (id -> where the mesh came from, its creator and licence). Same seed,
    same bytes. Every mesh is turned `turn` degrees about the up axis after it is placed
    (ShapeNet models, and so the meshes here, face +y). Meshes that fail are skipped with a
    reason and leave no files; when none is rendered nothing is written. `on_start(count)` gets
    the number of meshes found and `on_object(label)` is called after each. Nothing is printed.
    """
    if views < 1 or size < 1 or seed < 0:
        raise TransInrError("views and size must be at least 1 and the seed at least 0")
    if not math.isfinite(turn):
        raise TransInrError("the turn must be a finite number of degrees, e.g. 180")
    sources, skipped = find_sources(src, category, y_up)
    if not sources and not skipped:
        raise TransInrError(f"no {category} meshes found in {src}; check SRC and --category")
    if on_start is not None:
        on_start(len(sources))
    root, ids, seconds, seen = Path(root), [], [], {}
    described = {}
    for source in sources:
        started = time.perf_counter()
        identity = object_id(source.key)
        try:
            if identity in seen:
                raise MeshError(f"the same object id as {seen[identity]}")
            images, poses = render_source(source, seed, views, size, turn=turn)
        except MeshError as error:
            skipped.append(Skipped(source.label, str(error)))
        except MemoryError:
            skipped.append(Skipped(source.label, "too large to render in the memory available"))
        else:
            write_views(root / category / identity, images, poses, CAMERA_ANGLE_X)
            seen[identity] = source.label
            ids.append(identity)
            seconds.append(time.perf_counter() - started)
            described[identity] = {"source": source.label, **source.info}
        if on_object is not None:
            on_object(source.label)
    splits = split_ids(ids, fractions)
    splits_path = root / splits_name(category)
    if ids:
        write_atomic(splits_path, json.dumps(splits, indent=1).encode())
        sources_path = splits_path.with_name(splits_path.name.replace("_splits", "_sources"))
        write_atomic(sources_path, json.dumps(described, indent=1, sort_keys=True).encode())
    return MeshDataset(ids, skipped, seconds, splits, splits_path)
