"""The pictures of `transinr export` in the README: both browser viewers and the exported mesh.

    python bench/export_pictures.py

Encodes the bundled examples with the bundled models (assets/examples/astronaut.jpg,
assets/examples/chair) and exports them, through the Python API (models/api.py: encode,
export, render_view), takes headless Chromium screenshots of the two html pages (software
WebGL: --use-angle=swiftshader, so no GPU is needed; a fixed view from the URL fragment, drawn
at once) and draws the chair's exported .ply beside renders of the same views, with flat
shading and the mesh's vertex colours (a painter's-algorithm rasterizer here, no 3-D library).
Writes experiments/export-image-viewer.png, experiments/export-nerf-viewer.png and
experiments/export-mesh.png, and prints, for every step, the `transinr` command that does the
same (and the Chromium command it runs). Software WebGL is slow:
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

from models import api  # noqa: E402
from models.nerf.rays import look_at_pose  # noqa: E402
from models.tasks.export_mesh import Mesh, read_ply  # noqa: E402

VIEWS = ((30.0, 30.0), (120.0, 20.0), (230.0, 35.0))  # (azimuth, elevation) of the mesh panel
TILE = 256


def show(*command: object) -> None:
    """Print the `transinr` command line that does what the next API call does."""
    print("+ transinr", " ".join(str(part) for part in command), flush=True)


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


def mesh_panel(chair: api.Inr, chair_inr: Path, chair_ply: Path, target: Path) -> None:
    """Top row: renders of three views (as `transinr render`); bottom row: the mesh from the
    same views."""
    header = chair.header
    focal = header.focal * TILE / header.view_size
    mesh = read_ply(chair_ply.read_bytes())
    panel = Image.new("RGB", (TILE * len(VIEWS), TILE * 2), "white")
    for column, (azimuth, elevation) in enumerate(VIEWS):
        show("render", chair_inr, "--size", TILE, "--azimuth", azimuth, "--elevation", elevation,
             "-o", f"chair-{column}.png", "--quiet", "--overwrite")  # fmt: skip
        view = chair.render_view(azimuth=azimuth, elevation=elevation, size=TILE)
        pixels = (view.numpy() * 255.0).round().astype(np.uint8)
        panel.paste(Image.fromarray(pixels), (column * TILE, 0))
        drawn = draw_mesh(mesh, azimuth, elevation, header.camera_radius, focal)
        panel.paste(drawn, (column * TILE, TILE))
    panel.save(target, optimize=True)


def encode_and_export(folder: Path) -> api.Inr:
    """The astronaut (refined 100 steps) and the chair encoded by the bundled models, exported
    as viewers (and the chair as a mesh) into `folder`; returns the chair's INR."""
    face_path, chair_path = folder / "astronaut.inr", folder / "chair.inr"
    show("encode", "assets/examples/astronaut.jpg", "-o", face_path, "--quiet",
         "--refine-steps", 100)  # fmt: skip
    face = api.encode(api.load_model(task="image"), ROOT / "assets/examples/astronaut.jpg",
                      refine_steps=100)  # fmt: skip
    face.save(face_path)
    show("encode", "assets/examples/chair", "-o", chair_path, "--quiet")
    chair = api.encode(api.load_model(task="nerf"), ROOT / "assets/examples/chair")
    chair.save(chair_path)
    for inr, path in ((face, face_path), (chair, chair_path)):
        show("export", path, "-o", path.with_suffix(".html"))
        api.export(inr, path.with_suffix(".html"), name=path.name)
    show("export", chair_path, "-o", folder / "chair.ply")
    api.export(chair, folder / "chair.ply")
    return chair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "experiments")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="transinr-export-") as name:
        folder = Path(name)
        chair = encode_and_export(folder)
        face_page, chair_page = folder / "astronaut.html", folder / "chair.html"
        whole_picture = "box=-1,-1.4545,1,1.4545"  # square pixels in 480 x 330
        screenshot(face_page, whole_picture, 480, 330, args.out / "export-image-viewer.png")
        screenshot(chair_page, "view=30,25,3.2", 480, 330, args.out / "export-nerf-viewer.png")
        mesh_panel(chair, folder / "chair.inr", folder / "chair.ply", args.out / "export-mesh.png")
    for picture in ("export-image-viewer", "export-nerf-viewer", "export-mesh"):
        path = args.out / f"{picture}.png"
        print(f"{path}: {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
