"""`transinr data mesh` renders, and how their look compares with real ShapeNet renders.

    transinr data mesh /tmp/sh3d/usr/share/sweethome3d/furniture --category chairs -o /tmp/meshdata
    transinr data mesh /tmp/sh3d/usr/share/sweethome3d/furniture --category lamps -o /tmp/meshdata
    python bench/mesh_look.py --meshes /tmp/meshdata      # experiments/mesh-renders.png
    python bench/mesh_look.py --meshes /tmp/meshdata --with-real --out /tmp/side-by-side.png

With --with-real, a top row of views of ../shared/data/shapenet-real (benches, cups, vases), for
a local look only (ShapeNet renders are not copied into the project); then views of the
rendered meshes (chairs, lamps), each the first view of its object with a camera elevation of
15-45 degrees, objects taken in id order. Prints figures that should agree between the two:
alpha levels, the silhouette's longest side, and the shading: the brightness of pixels relative
to the brightest of their colour (headlight: 1 facing the camera, 0.5 at grazing angles).
With --fit-light it also fits the real renders' shading on the vases (surfaces of revolution,
so every pixel's normal is known from the silhouettes): brightness = a + b |cos| between the
normal and the view ray; `models.data.meshes` uses a = b = 0.5.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.nerf.rays import camera_rays  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "shapenet-real"
TILE = 128


def elevation(pose: list[list[float]]) -> float:
    """Camera elevation in degrees of a camera-to-world matrix (Z up)."""
    x, y, z = (row[3] for row in pose[:3])
    return math.degrees(math.asin(z / math.sqrt(x * x + y * y + z * z)))


def pick_view(folder: Path) -> np.ndarray:
    """uint8 RGBA (H, W, 4) of the object's first view with elevation 15-45 degrees."""
    frames = json.loads((folder / "transforms.json").read_text())["frames"]
    index = next(
        (i for i, f in enumerate(frames) if 15 <= elevation(f["transform_matrix"]) <= 45), 0
    )
    return np.asarray(Image.open(folder / f"{index:03d}.png").convert("RGBA"))


def objects(root: Path, categories: list[str], each: int) -> list[Path]:
    """The first `each` object folders (id order) of every category found under `root`."""
    found = []
    for category in categories:
        folder = root / category
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if (p / "transforms.json").is_file())[:each]
    return found


def on_white(rgba: np.ndarray) -> Image.Image:
    """RGBA (H, W, 4) composited on white -> an RGB image."""
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def shade_ratios(rgba: np.ndarray) -> np.ndarray:
    """Brightness of fully covered pixels relative to the brightest (95th percentile) pixel of
    the same chromaticity in the view: with flat materials (colour = Kd x shade) this is the
    shading alone. Chromaticity bins of 0.02 with at least 30 pixels, dark pixels left out."""
    rgb = rgba[rgba[..., 3] == 255][:, :3].astype(np.float32)
    total = rgb.sum(1)
    rgb, total = rgb[total > 60], total[total > 60]
    bins = np.floor(rgb[:, :2] / total[:, None] / 0.02).astype(int)
    keys = bins[:, 0] * 100 + bins[:, 1]
    ratios = []
    for key in np.unique(keys):
        members = total[keys == key]
        if len(members) >= 30:
            ratios.append(members / np.percentile(members, 95))
    return np.concatenate(ratios) if ratios else np.zeros(0)


def figures(views: list[np.ndarray]) -> dict[str, float]:
    """Look figures of a set of RGBA views: alpha levels used, the longest side of the
    silhouette in pixels, and percentiles of the shading (see shade_ratios)."""
    levels = set()
    sides, shades = [], []
    for rgba in views:
        alpha = rgba[..., 3]
        levels |= set(np.unique(alpha).tolist())
        rows, cols = np.nonzero(alpha > 0)
        sides.append(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)
        shades.append(shade_ratios(rgba))
    shade = np.concatenate(shades).clip(max=1.0)
    return {
        "alpha_levels": len(levels),
        "longest_side_px": round(float(np.mean(sides)), 1),
        "shade_p10": round(float(np.percentile(shade, 10)), 3),
        "shade_p50": round(float(np.percentile(shade, 50)), 3),
    }


def _rays(frame: dict, focal: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre rays of a frame, models.nerf.rays' own: origins, directions (128, 128, 3)."""
    pose = torch.tensor(frame["transform_matrix"], dtype=torch.float64)
    origins, directions = camera_rays(pose, TILE, TILE, focal)
    return origins.numpy(), directions.numpy()


def revolution_profile(folder: Path, frames: list, focal: float) -> Callable:
    """Radius r(z) of an object turned about the Z axis, from the silhouette edges of its six
    lowest views: an edge ray's closest approach to the axis gives (z, r)."""
    heights, radii = [], []
    lowest = sorted(frames, key=lambda f: elevation(f["transform_matrix"]))[:6]
    for frame in lowest:
        origins, directions = _rays(frame, focal)
        name = Path(frame["file_path"]).name + ".png"
        alpha = np.asarray(Image.open(folder / name))[..., 3]
        for row in np.nonzero((alpha > 127).any(1))[0]:
            cols = np.nonzero(alpha[row] > 127)[0]
            for col in (cols.min(), cols.max()):
                o, d = origins[row, col], directions[row, col]
                t = -(o[:2] @ d[:2]) / (d[:2] @ d[:2])
                heights.append(o[2] + t * d[2])
                radii.append(np.hypot(*(o[:2] + t * d[:2])))
    grid = np.linspace(-1.2, 1.2, 241)
    heights, radii = np.asarray(heights), np.asarray(radii)
    profile = np.zeros_like(grid)  # (G,) median radius of the edge points near each height
    for index, z in enumerate(grid):
        near = np.abs(heights - z) < 0.01
        if near.any():
            profile[index] = np.median(radii[near])
    return lambda z: np.interp(z, grid, profile, left=0, right=0)


def headlight_fit(folder: Path) -> tuple[float, float, float]:
    """Fit brightness / its 99.5th percentile = a + b |cos(normal, view ray)| on every second
    view of a real object turned about the Z axis (a vase), normals from its profile r(z):
    returns (a, b, rms). Plain-coloured vases fit with a small rms."""
    transforms = json.loads((folder / "transforms.json").read_text())
    focal = 0.5 * TILE / math.tan(0.5 * transforms["camera_angle_x"])
    radius = revolution_profile(folder, transforms["frames"], focal)
    cosines, values = [], []
    for frame in transforms["frames"][::2]:
        origins, directions = _rays(frame, focal)
        rgba = np.asarray(Image.open(folder / (Path(frame["file_path"]).name + ".png")))
        full = rgba[..., 3] == 255
        o, d = origins[full], directions[full]
        hit = np.full(len(o), np.nan)
        for t in np.linspace(2.0, 6.0, 1200):  # first t inside the solid of revolution
            point = o + t * d
            inside = np.hypot(point[:, 0], point[:, 1]) <= radius(point[:, 2])
            hit[inside & np.isnan(hit)] = t
        found = ~np.isnan(hit)
        point = o[found] + hit[found, None] * d[found]
        rho = np.hypot(point[:, 0], point[:, 1])
        slope = (radius(point[:, 2] + 0.01) - radius(point[:, 2] - 0.01)) / 0.02
        normal = np.stack([point[:, 0] / rho, point[:, 1] / rho, -slope], 1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        ray = d[found] / np.linalg.norm(d[found], axis=1, keepdims=True)
        middle = np.abs(point[:, 2]) < 0.8  # not the rim or the base
        cosines.append(np.abs((normal * ray).sum(1))[middle])
        values.append(rgba[full][found][middle, :3].astype(np.float64).sum(1))
    cosine, value = np.concatenate(cosines), np.concatenate(values)
    value = value / np.percentile(value, 99.5)
    design = np.stack([np.ones_like(cosine), cosine], 1)
    (a, b), *_ = np.linalg.lstsq(design, value, rcond=None)
    return float(a), float(b), float(np.sqrt(np.mean((design @ [a, b] - value) ** 2)))


def sheet(rows: list[tuple[str, list[np.ndarray]]], columns: int) -> Image.Image:
    """Labelled rows of views on white, `columns` tiles a row."""
    label = 16
    picture = Image.new("RGB", (columns * TILE, len(rows) * (TILE + label)), "white")
    draw = ImageDraw.Draw(picture)
    for r, (title, views) in enumerate(rows):
        top = r * (TILE + label)
        draw.text((4, top + 2), title, fill=(0, 0, 0))
        for c, rgba in enumerate(views[:columns]):
            picture.paste(on_white(rgba), (c * TILE, top + label))
    return picture


def credits(root: Path, folders: list[Path]) -> list[str]:
    """'name (creator, library, licence)' of each shown mesh, from the sources files."""
    lines = []
    for folder in folders:
        category = folder.parent.name
        singular = category[:-1] if category.endswith("s") else category
        sources = json.loads((root / f"{singular}_sources.json").read_text())
        info = sources.get(folder.name, {})
        lines.append(
            f"{folder.name[:8]} {info.get('name')} ({info.get('creator')}, "
            f"{info.get('library')}, {info.get('license')})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--meshes", type=Path, required=True, help="data mesh output root")
    parser.add_argument("--real", type=Path, default=REAL)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "mesh-renders.png")
    parser.add_argument(
        "--with-real",
        action="store_true",
        help="put shapenet-real views above ours (for a local look: ShapeNet renders must not "
        "be copied into the project, so the committed picture is made without them)",
    )
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument(
        "--fit-light", action="store_true", help="also fit the real vases' shading (minutes)"
    )
    args = parser.parse_args()
    real = [pick_view(p) for p in objects(args.real, ["benchs", "cups", "vases"], 3)]
    ours_chairs = [pick_view(p) for p in objects(args.meshes, ["chairs"], 24)]
    ours_lamps = [pick_view(p) for p in objects(args.meshes, ["lamps"], 24)]
    half = args.columns // 2
    rows = [
        ("shapenet-real (benches, cups, vases)", real[:3] + real[3:5] + real[6:9]),
        ("transinr data mesh: Sweet Home 3D chairs", ours_chairs[: args.columns]),
        ("transinr data mesh: Sweet Home 3D chairs and lamps", ours_chairs[-half:] + ours_lamps),
    ]
    rows = rows if args.with_real else rows[1:]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet(rows, args.columns).save(args.out, optimize=True)
    shown = objects(args.meshes, ["chairs"], 24)
    shown = shown[: args.columns] + shown[-half:] + objects(args.meshes, ["lamps"], 24)[:half]
    for line in credits(args.meshes, shown):
        print(line)
    every_real = [pick_view(p) for p in objects(args.real, ["benchs", "cups", "vases"], 10)]
    print(json.dumps({"shapenet-real": figures(every_real)}))
    print(json.dumps({"data mesh": figures(ours_chairs + ours_lamps)}))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    if args.fit_light:
        for folder in objects(args.real, ["vases"], 10):
            a, b, rms = headlight_fit(folder)
            print(f"{folder.name}: brightness = {a:.3f} + {b:.3f} |cos|, rms {rms:.3f}")


if __name__ == "__main__":
    main()
