"""Meshes from NeRF INRs (`transinr export --format ply / obj`): marching cubes on a density
grid, with vertex colours from the INR's colour at each vertex, as `ns-export` writes them.

The grid spans a cube around the object: the header's scene bounds (a sphere: the cube holds
it), else the region every camera sees between near and far, or `extent` (half the cube's
side) when given. The density is sampled at `resolution`^3 points including the cube's faces;
the grid is padded with zero density, so the surface is closed where the object meets the
cube. Marching cubes is scikit-image's (Lewiner et al. 2003). Faces are ordered
counter-clockwise seen from outside (normals point out of the object). Coordinates are the
INR's world coordinates (Z up for the learnit cameras).

The default threshold is the density at which one of the file's own sample intervals,
(far - near) / (samples - 1), is a quarter opaque: ln(4/3) / interval (2.2 for 32 samples from
2 to 6, 9.1 for the paper's 128). On the bundled chair model's example (densities up to 10)
half opacity, 5.4, lost the legs and tore the seat; 2 to 3 gave the whole chair.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from models.core.inr import nerf_inr
from models.errors import TransInrError
from models.io.inr_file import InrFile

MIN_RESOLUTION, MAX_RESOLUTION = 8, 512
DEFAULT_RESOLUTION = 128
CHUNK_POINTS = 1 << 15  # points through the INR at once


@dataclass
class Mesh:
    """A triangle mesh with one colour a vertex."""

    vertices: np.ndarray  # (V, 3) float32, world coordinates
    faces: np.ndarray  # (F, 3) int64 vertex indices, counter-clockwise seen from outside
    colours: np.ndarray  # (V, 3) uint8 RGB


DEFAULT_OPACITY = 0.25  # of one sample interval, at the default threshold


def default_threshold(inr_file: InrFile) -> float:
    """The density that makes one of the file's sample intervals a quarter opaque."""
    header = inr_file.header
    interval = (header.far - header.near) / max(header.samples - 1, 1)
    return -math.log(1.0 - DEFAULT_OPACITY) / interval


def scene_cube(inr_file: InrFile, extent: float | None = None) -> tuple[np.ndarray, float]:
    """(centre (3,), half side) of the cube to mesh: `extent` about the scene centre if given,
    else the header's scene bounds, else what every camera sees between near and far."""
    header = inr_file.header
    centre = np.array(header.scene_bounds.centre, dtype=np.float64)
    if extent is not None:
        if not (math.isfinite(extent) and 0 < extent <= 1e4):
            raise TransInrError(f"--extent {extent} is not a size; give a positive half side")
        return centre, float(extent)
    if header.scene_bounds.radius > 0:
        return centre, float(header.scene_bounds.radius)
    seen = min(header.camera_radius - header.near, header.far - header.camera_radius)
    return centre, float(seen if seen > 0 else header.camera_radius / 2)


def evaluate_points(
    inr_file: InrFile, points: np.ndarray, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(colour (N, 3) in [0, 1], density (N,)) of the NeRF INR at world points (N, 3)."""
    weights = inr_file.batched(device)
    colours, densities = [], []
    with torch.inference_mode():
        for first in range(0, len(points), CHUNK_POINTS):
            chunk = torch.as_tensor(points[first : first + CHUNK_POINTS], dtype=torch.float32)
            colour, density = nerf_inr(chunk.to(device)[None], weights, inr_file.inr)
            colours.append(colour[0].float().cpu().numpy())
            densities.append(density[0].float().cpu().numpy())
    if not colours:
        return np.zeros((0, 3), np.float32), np.zeros(0, np.float32)
    return np.concatenate(colours), np.concatenate(densities)


def density_grid(
    inr_file: InrFile,
    centre: np.ndarray,
    half: float,
    resolution: int,
    device: torch.device | str = "cpu",
    on_slices: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Density at resolution^3 points spanning the cube, (x, y, z) indexed: (R, R, R) float32."""
    axes = [np.linspace(c - half, c + half, resolution, dtype=np.float32) for c in centre]
    grid = np.empty((resolution,) * 3, dtype=np.float32)
    y, z = np.meshgrid(axes[1], axes[2], indexing="ij")
    plane = np.stack([np.zeros_like(y), y, z], axis=-1).reshape(-1, 3)
    for index, x in enumerate(axes[0]):
        plane[:, 0] = x
        grid[index] = evaluate_points(inr_file, plane, device)[1].reshape(resolution, resolution)
        if on_slices is not None:
            on_slices(1)
    return grid


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """The volume a closed mesh encloses, positive when its faces turn counter-clockwise
    seen from outside."""
    a, b, c = (vertices[faces[:, i]].astype(np.float64) for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def surface(
    grid: np.ndarray, threshold: float, centre: np.ndarray, half: float
) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on the zero-padded grid: (vertices (V, 3) world, faces (F, 3))."""
    from skimage.measure import marching_cubes

    peak = float(grid.max()) if grid.size else 0.0
    if not peak > threshold:
        raise TransInrError(
            f"no density reaches the threshold {threshold:.4g} in the cube (the highest is "
            f"{peak:.4g}); lower --threshold or widen --extent"
        )
    padded = np.pad(grid, 1, constant_values=0.0)
    vertices, faces, _, _ = marching_cubes(padded, level=threshold)
    step = 2.0 * half / (grid.shape[0] - 1)
    vertices = (centre - half) + (vertices.astype(np.float64) - 1.0) * step
    faces = faces.astype(np.int64)
    if signed_volume(vertices, faces) < 0:  # make the normals point out of the object
        faces = faces[:, ::-1].copy()
    return vertices.astype(np.float32), faces


def extract_mesh(
    inr_file: InrFile,
    resolution: int = DEFAULT_RESOLUTION,
    threshold: float | None = None,
    extent: float | None = None,
    device: torch.device | str = "cpu",
    on_slices: Callable[[int], None] | None = None,
) -> Mesh:
    """The NeRF INR's surface at density `threshold` (default: `default_threshold`), from a
    resolution^3 grid over the scene cube, with the INR's colour at each vertex."""
    threshold = check_mesh_options(inr_file, resolution, threshold, extent)
    centre, half = scene_cube(inr_file, extent)
    grid = density_grid(inr_file, centre, half, resolution, device, on_slices)
    vertices, faces = surface(grid, threshold, centre, half)
    colours, _ = evaluate_points(inr_file, vertices, device)
    return Mesh(vertices, faces, np.round(np.clip(colours, 0, 1) * 255).astype(np.uint8))


def check_mesh_options(
    inr_file: InrFile, resolution: int, threshold: float | None, extent: float | None
) -> float:
    """Refuse what cannot be meshed before any work; the threshold to use."""
    if inr_file.task != "nerf":
        raise TransInrError("a mesh needs a NeRF INR; export an image INR as html or onnx")
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise TransInrError(
            f"--resolution {resolution} is out of range; use {MIN_RESOLUTION} to {MAX_RESOLUTION}"
        )
    threshold = default_threshold(inr_file) if threshold is None else threshold
    if not (math.isfinite(threshold) and threshold > 0):
        raise TransInrError(f"--threshold {threshold} is not a density; give a positive number")
    scene_cube(inr_file, extent)
    require_skimage()
    return threshold


def require_skimage() -> None:
    """A one-line error naming the install when scikit-image is missing."""
    import importlib.util

    if importlib.util.find_spec("skimage") is None:
        raise TransInrError(
            "mesh export needs scikit-image: pip install 'transinr[export]' (or scikit-image)"
        )


def ply_bytes(mesh: Mesh) -> bytes:
    """Binary little-endian PLY: float x y z and uchar red green blue per vertex, and
    triangles as uchar-counted int lists, the layout MeshLab, Blender and Open3D read."""
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment made by transinr export\n"
        f"element vertex {len(mesh.vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(mesh.faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    vertex_type = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
    vertices = np.empty(len(mesh.vertices), dtype=vertex_type)
    vertices["xyz"], vertices["rgb"] = mesh.vertices, mesh.colours
    face_type = np.dtype([("count", "u1"), ("indices", "<i4", 3)])
    faces = np.empty(len(mesh.faces), dtype=face_type)
    faces["count"], faces["indices"] = 3, mesh.faces
    return header.encode("ascii") + vertices.tobytes() + faces.tobytes()


def obj_bytes(mesh: Mesh) -> bytes:
    """Wavefront OBJ: `v x y z r g b` (colours in [0, 1], the vertex-colour extension MeshLab
    and Blender read) and `f a b c` with 1-based indices."""
    colours = mesh.colours.astype(np.float64) / 255.0
    rows = np.concatenate([mesh.vertices.astype(np.float64), colours], axis=1)
    lines = ["# made by transinr export"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f} {r:.4f} {g:.4f} {b:.4f}" for x, y, z, r, g, b in rows]
    lines += [f"f {a} {b} {c}" for a, b, c in (mesh.faces + 1).tolist()]
    return ("\n".join(lines) + "\n").encode("ascii")


def read_ply(data: bytes) -> Mesh:
    """A mesh from the bytes `ply_bytes` writes (tests, bench/export_pictures.py)."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").split("\n")
    counts = {
        line.split()[1]: int(line.split()[2]) for line in header if line.startswith("element")
    }
    vertex_type = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
    vertices = np.frombuffer(data, vertex_type, counts["vertex"], offset=end)
    face_type = np.dtype([("count", "u1"), ("indices", "<i4", 3)])
    offset = end + vertex_type.itemsize * counts["vertex"]
    faces = np.frombuffer(data, face_type, counts["face"], offset=offset)
    if len(data) != offset + face_type.itemsize * counts["face"] or np.any(faces["count"] != 3):
        raise TransInrError("not a triangle PLY file written by transinr export")
    return Mesh(vertices["xyz"].copy(), faces["indices"].astype(np.int64), vertices["rgb"].copy())
