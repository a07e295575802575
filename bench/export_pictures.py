"""The pictures of `transinr export` in the README: both browser viewers and the exported mesh.

    python bench/export_pictures.py

Encodes the bundled examples with the bundled models (assets/examples/astronaut.jpg,
assets/examples/chair), runs `transinr export` on them, takes headless Chromium screenshots
of the two html pages (software WebGL: --use-angle=swiftshader, so no GPU is needed; a fixed
view from the URL fragment, drawn at once) and draws the chair's exported .ply beside
`transinr render` of the same views, with flat shading and the mesh's vertex colours
(a painter's-algorithm rasterizer here, no 3-D library). Writes
experiments/export-image-viewer.png, experiments/export-nerf-viewer.png and
experiments/export-mesh.png, and prints every command it runs. Software WebGL is slow:
about two minutes in all on 2 CPU cores (the face is refined 100 steps after encoding, so
that the viewer has detail to show).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.api import load_inr  # noqa: E402
from models.nerf.rays import look_at_pose  # noqa: E402
from models.tasks.export_mesh import Mesh, read_ply  # noqa: E402

VIEWS = ((30.0, 30.0), (120.0, 20.0), (230.0, 35.0))  # (azimuth, elevation) of the mesh panel
TILE = 256


def run(*command: str) -> None:
    """Run a command from the project root, printed first; stop on failure."""
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def screenshot(page: Path, fragment: str, width: int, height: int, target: Path) -> None:
    """Headless Chromium's picture of page#fragment in a width x height window: the page draws
    a fixed view at once when the window gets its size, and the picture is the next frame.
    (Not --virtual-time-budget: with it a long synchronous draw now and then left Chromium
    idle without ever taking the picture.) Each try gets 5 minutes."""
    browser = shutil.which("chromium") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("chromium is not installed: apt-get install -y chromium")
    for attempt in range(3):
        with tempfile.TemporaryDirectory() as profile:
            command = [
                browser, "--headless", "--no-sandbox", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--disable-gpu-watchdog",
                "--force-device-scale-factor=1", "--hide-scrollbars", f"--user-data-dir={profile}",
                f"--window-size={width},{height}", f"--screenshot={target}",
                f"{page.resolve().as_uri()}#{fragment}",
            ]  # fmt: skip
            print("+", " ".join(command), flush=True)
            try:
                subprocess.run(command, cwd=ROOT, check=True, timeout=300,
                               stderr=subprocess.DEVNULL)  # fmt: skip
                return
            except subprocess.TimeoutExpired:
                print(f"no picture after 5 minutes (try {attempt + 1} of 3)", flush=True)
    sys.exit(f"chromium gave no picture of {page.name}")


def project(vertices: np.ndarray, azimuth: float, elevation: float, radius: float, focal: float):
    """Camera-space depth (V,) and pixel positions (V, 2) in a TILE x TILE view."""
    pose = look_at_pose(azimuth, elevation, radius).double().numpy()
    camera = (vertices - pose[:3, 3]) @ pose[:3, :3]  # world -> camera (rotation transposed)
    depth = -camera[:, 2]
    pixels = np.stack(
        [TILE / 2 + focal * camera[:, 0] / depth, TILE / 2 - focal * camera[:, 1] / depth], axis=1
    )
    return depth, pixels


def draw_mesh(mesh: Mesh, azimuth: float, elevation: float, radius: float, focal: float):
    """Flat-shaded, vertex-coloured triangles far to near on white (2 x supersampled)."""
    scale = 2
    vertices = mesh.vertices.astype(np.float64)
    depth, pixels = project(vertices, azimuth, elevation, radius, focal)
    corners = vertices[mesh.faces]  # (F, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    to_camera = look_at_pose(azimuth, elevation, radius).double().numpy()[:3, 3] - corners.mean(1)
    to_camera /= np.linalg.norm(to_camera, axis=1, keepdims=True)
    shade = 0.35 + 0.65 * np.abs(np.einsum("ij,ij->i", normals, to_camera))
    colours = mesh.colours[mesh.faces].mean(axis=1) * shade[:, None]
    image = Image.new("RGB", (TILE * scale, TILE * scale), "white")
    draw = ImageDraw.Draw(image)
    for face in np.argsort(-depth[mesh.faces].mean(axis=1)):
        points = [tuple(p) for p in pixels[mesh.faces[face]] * scale]
        draw.polygon(points, fill=tuple(int(c) for c in colours[face]))
    return image.resize((TILE, TILE), Image.LANCZOS)


def mesh_panel(chair_inr: Path, chair_ply: Path, folder: Path, target: Path) -> None:
    """Top row: `transinr render` of three views; bottom row: the mesh from the same views."""
    inr = load_inr(chair_inr)
    header = inr.header
    focal = header.focal * TILE / header.view_size
    mesh = read_ply(chair_ply.read_bytes())
    panel = Image.new("RGB", (TILE * len(VIEWS), TILE * 2), "white")
    for column, (azimuth, elevation) in enumerate(VIEWS):
        rendered = folder / f"chair-{column}.png"
        run("transinr", "render", str(chair_inr), "--size", str(TILE), "--azimuth",
            str(azimuth), "--elevation", str(elevation), "-o", str(rendered), "--quiet",
            "--overwrite")  # fmt: skip
        panel.paste(Image.open(rendered).convert("RGB"), (column * TILE, 0))
        drawn = draw_mesh(mesh, azimuth, elevation, header.camera_radius, focal)
        panel.paste(drawn, (column * TILE, TILE))
    panel.save(target, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "experiments")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="transinr-export-") as name:
        folder = Path(name)
        face, chair = folder / "astronaut.inr", folder / "chair.inr"
        run("transinr", "encode", "assets/examples/astronaut.jpg", "-o", str(face), "--quiet",
            "--refine-steps", "100")  # fmt: skip
        run("transinr", "encode", "assets/examples/chair", "-o", str(chair), "--quiet")
        for source in (face, chair):
            run("transinr", "export", str(source), "-o", str(source.with_suffix(".html")))
        run("transinr", "export", str(chair), "-o", str(folder / "chair.ply"))
        whole_picture = "box=-1,-1.4545,1,1.4545"  # square pixels in 480 x 330
        screenshot(face.with_suffix(".html"), whole_picture, 480, 330,
                   args.out / "export-image-viewer.png")  # fmt: skip
        screenshot(chair.with_suffix(".html"), "view=30,25,3.2", 480, 330,
                   args.out / "export-nerf-viewer.png")  # fmt: skip
        mesh_panel(chair, folder / "chair.ply", folder, args.out / "export-mesh.png")
    for picture in ("export-image-viewer", "export-nerf-viewer", "export-mesh"):
        path = args.out / f"{picture}.png"
        print(f"{path}: {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
