"""`transinr export` (models/tasks/export.py, export_viewer.py, export_mesh.py): the HTML viewer
in a real browser against `transinr render`, the ONNX graph in onnxruntime against the torch INR,
marching-cubes meshes of a hand-built sphere NeRF, and hostile input.

The browser tests run Debian's `chromium` headless with SwiftShader (software WebGL2) and skip,
saying why, where it is absent (CI installs it in .ci/run). Every INR here is built by hand or
from a fixed seed: tiny, so that the whole file runs in well under a minute on one core.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from models.core.antialias import render_gains
from models.core.config import INRConfig
from models.core.inr import image_inr as torch_image_inr
from models.core.inr import init_weights, nerf_inr
from models.core.rendering import coordinate_grid, render_image, render_quantized
from models.io.inr_file import InrFile, save_inr
from models.io.inr_header import ImageHeader, NerfHeader
from models.tasks.export_mesh import extract_mesh, obj_bytes, ply_bytes, read_ply, signed_volume
from models.tasks.export_viewer import viewer_data, viewer_template
from transinr_cli.app import app

SPHERE_RADIUS, SPHERE_SHARPNESS = 1.0, 1000.0
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


# --- INRs built for the tests ----------------------------------------------------------------


def image_inr(greyscale: bool = False, activation: str = "relu") -> InrFile:
    """A random image INR (fixed seed) of a 64 x 48 picture padded into the square: frequencies
    up to 48 pi, above the 64 px grid's Nyquist rate, so both anti-aliasing rules act."""
    torch.manual_seed(0)
    fourier = 0 if activation == "sine" else 16
    config = INRConfig(fourier_count=fourier, fourier_max=48.0, depth=3, width=32,
                       activation=activation)  # fmt: skip
    weights = [w[0] for w in init_weights(config)]
    weights[-1] = weights[-1] * 4.0  # more contrast than a fresh initialisation
    header = ImageHeader(
        native_width=64, native_height=48, input_size=64, content_box=(-0.75, -1.0, 0.75, 1.0),
        greyscale=greyscale, source_image="photo.png",
    )  # fmt: skip
    return InrFile(weights, config, "image", header)


def spatial_inr() -> InrFile:
    """`image_inr`'s picture with a random 6 x 6 shift grid over (-1.1, 1.05) (not symmetric, so
    a wrong normalisation shows): a spatial INR as `--method spatial` writes them."""
    inr_file = image_inr()
    torch.manual_seed(1)
    config = dataclasses.replace(inr_file.inr, shift_grid=6, shift_low=-1.1, shift_high=1.05)
    grid = torch.randn(config.shift_grid**2, config.width) * 2.0  # (cells, width)
    return InrFile([*inr_file.weights, grid], config, "image", inr_file.header)


def sphere_inr(radius: float = SPHERE_RADIUS, sharpness: float = SPHERE_SHARPNESS) -> InrFile:
    """A NeRF INR whose density is sharpness * (radius^2 - q(p)) inside, 0 outside, with
    q(p) = sum_d 8/3 (1 - cos p_d) - 1/6 (1 - cos 2 p_d) = |p|^2 + O(p^6) (monotone in each
    |p_d| < pi), and colour sigmoid(3 sin p_d): built from its Fourier features by hand."""
    # frequencies 1, 2, 4, 8; 3 layers of 8
    config = INRConfig(coord_dim=3, fourier_count=4, fourier_max=8.0, fourier_pi=False, depth=3,
                       width=8, out_dim=4, out_bias=0.0)  # fmt: skip
    n = config.fourier_count
    first, hidden, last = torch.zeros(25, 8), torch.zeros(9, 8), torch.zeros(9, 4)
    for d in range(3):
        first[d * n, 0], first[d * n + 1, 0] = 8 / 3, -1 / 6  # cos(p_d), cos(2 p_d)
        first[3 * n + d * n, 1 + d] = 1.0  # sin(p_d)
    first[-1, 0], first[-1, 1:4] = radius**2 - 3 * (8 / 3 - 1 / 6), 2.0
    hidden[range(4), range(4)] = 1.0
    for c in range(3):
        last[1 + c, c], last[-1, c] = 3.0, -6.0
    last[0, 3] = sharpness
    focal = 0.5 * 64 / math.tan(0.5 * 0.6911)
    header = NerfHeader(near=2.0, far=6.0, samples=48, focal=focal, view_size=64,
                        camera_radius=4.0, source_views="sphere")  # fmt: skip
    return InrFile([first, hidden, last], config, "nerf", header)


@pytest.fixture(name="image_file")
def fixture_image_file(tmp_path) -> Path:
    path = tmp_path / "picture.inr"
    save_inr(image_inr(), path)
    return path


@pytest.fixture(name="sphere_file")
def fixture_sphere_file(tmp_path) -> Path:
    path = tmp_path / "sphere.inr"
    save_inr(sphere_inr(), path)
    return path


def run_cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# --- ONNX ------------------------------------------------------------------------------------


def onnx_session(inr_file: InrFile):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed ([export])")
    pytest.importorskip("onnx", reason="onnx is not installed (pip install 'transinr[export]')")
    from models.tasks.export import onnx_model

    options = ort.SessionOptions()
    options.log_severity_level = 3  # the overridable `gains` initializer is intended
    data = onnx_model(inr_file).SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("size", [(64, 48), (40, 30), (160, 120)])
def test_onnx_image_matches_render(size):
    inr_file = image_inr()
    session = onnx_session(inr_file)
    width, height = size
    box = inr_file.header.content_box
    gains = render_gains(inr_file.inr, 64, height, width, box)
    expected = render_image(inr_file.batched(), inr_file.inr, height, width, box, gains=gains)
    feeds = {"coords": coordinate_grid(height, width, box).numpy()}
    if gains is not None:
        feeds["gains"] = torch.stack(gains).numpy()
    (rgb,) = session.run(["rgb"], feeds)
    expected = expected[0].permute(1, 2, 0).reshape(-1, 3).numpy()
    assert np.abs(rgb - expected).max() < 1e-4
    assert expected.std() > 0.05  # a picture, not a flat colour


def test_onnx_greyscale_and_sine_inrs():
    for inr_file in (image_inr(greyscale=True), image_inr(activation="sine")):
        session = onnx_session(inr_file)
        box = inr_file.header.content_box
        coords = coordinate_grid(48, 64, box)
        expected = render_image(inr_file.batched(), inr_file.inr, 48, 64, box)
        expected = expected[0].permute(1, 2, 0).reshape(-1, 3)
        if inr_file.header.greyscale:
            expected = expected.mean(dim=1, keepdim=True).expand(-1, 3)
        (rgb,) = session.run(["rgb"], {"coords": coords.numpy()})
        assert np.abs(rgb - expected.numpy()).max() < 1e-4


def test_onnx_spatial_inr_matches_render_on_and_off_the_pixel_grid():
    inr_file = spatial_inr()
    session = onnx_session(inr_file)
    box, (width, height) = inr_file.header.content_box, (40, 30)  # anti-aliased below native
    gains = render_gains(inr_file.inr, 64, height, width, box)
    expected = render_image(inr_file.batched(), inr_file.inr, height, width, box, gains=gains)
    assert gains is not None
    feeds = {"coords": coordinate_grid(height, width, box).numpy(),
             "gains": torch.stack(gains).numpy()}  # fmt: skip
    (rgb,) = session.run(["rgb"], feeds)
    assert np.abs(rgb - expected[0].permute(1, 2, 0).reshape(-1, 3).numpy()).max() < 1e-5
    # Anywhere: off the pixel grid, on cell centres and edges, beyond the grid (clamped).
    torch.manual_seed(2)
    size = (1.05 + 1.1) / 6
    special = [[-1.1 + size * 0.5, 1.05 - size * 0.5], [-1.1, 1.05], [-1.7, 1.4], [2.5, -3.0]]
    coords = torch.cat([torch.rand(200, 2) * 3.2 - 1.6, torch.tensor(special)])
    (rgb,) = session.run(["rgb"], {"coords": coords.numpy()})
    expected = torch_image_inr(coords[None], inr_file.batched(), inr_file.inr)[0].clamp(0, 1)
    assert np.abs(rgb - expected.numpy()).max() < 1e-5
    flat = [*inr_file.weights[:-1], torch.zeros_like(inr_file.weights[-1])]
    without = torch_image_inr(coords[None], [w[None] for w in flat], inr_file.inr)[0].clamp(0, 1)
    assert (expected - without).abs().mean() > 0.05  # the grid matters to the picture


def test_onnx_nerf_matches_the_inr_and_render_view():
    from models.api import Inr
    from models.nerf.rays import camera_rays, look_at_pose
    from models.nerf.volume_rendering import composite

    inr_file = sphere_inr()
    session = onnx_session(inr_file)
    header, side = inr_file.header, 24
    pose = look_at_pose(40.0, 25.0, 4.0)
    origins, directions = camera_rays(pose, side, side, header.focal * side / header.view_size)
    depths = torch.linspace(header.near, header.far, header.samples)
    points = origins[..., None, :] + directions[..., None, :] * depths[:, None]
    colour, density = session.run(["colour", "density"], {"points": points.reshape(-1, 3).numpy()})
    torch_colour, torch_density = nerf_inr(
        points.reshape(1, -1, 3), inr_file.batched(), inr_file.inr
    )
    assert np.abs(colour - torch_colour[0].numpy()).max() < 1e-4
    assert np.abs(density - torch_density[0].numpy()).max() < 1e-4 * SPHERE_SHARPNESS
    rgb, _ = composite(
        torch.from_numpy(colour).view(side, side, -1, 3),
        torch.from_numpy(density).view(side, side, -1),
        depths.expand(side, side, -1),
    )
    expected = Inr(inr_file).render_view(pose, size=side, device="cpu")
    assert (rgb.clamp(0, 1) - expected).abs().max() < 1e-4
    assert expected.min() < 0.5  # the sphere is in view


def test_cli_exports_onnx(tmp_path, image_file):
    pytest.importorskip("onnx", reason="onnx is not installed (pip install 'transinr[export]')")
    target = tmp_path / "out" / "picture.onnx"
    result = run_cli("export", image_file, "-o", target, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["format"] == "onnx" and summary["bytes"] == target.stat().st_size
    import onnx

    model = onnx.load(target)
    assert [i.name for i in model.graph.input] == ["coords", "gains"]
    metadata = {p.key: p.value for p in model.metadata_props}
    assert json.loads(metadata["transinr.header"])["native_width"] == 64


# --- meshes ----------------------------------------------------------------------------------


def needs_skimage() -> None:
    pytest.importorskip("skimage", reason="scikit-image is not installed ([export])")


def edge_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How often each undirected and each directed edge occurs."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    undirected = np.sort(directed, axis=1)
    return np.unique(undirected, axis=0, return_counts=True)[1], np.unique(
        directed, axis=0, return_counts=True
    )[1]


def test_mesh_of_a_sphere_is_closed_round_and_coloured():
    needs_skimage()
    inr_file = sphere_inr()
    threshold, resolution, extent = 10.0, 64, 1.5
    mesh = extract_mesh(inr_file, resolution, threshold, extent)
    undirected, directed = edge_counts(mesh.faces)
    assert set(undirected.tolist()) == {2}  # closed: every edge in two faces
    assert set(directed.tolist()) == {1}  # consistently oriented
    expected = math.sqrt(SPHERE_RADIUS**2 - threshold / SPHERE_SHARPNESS)
    step = 2 * extent / (resolution - 1)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radii - expected).max() < step
    assert abs(np.median(radii) - expected) < 0.2 * step
    volume = signed_volume(mesh.vertices, mesh.faces)  # positive: normals point out
    assert volume == pytest.approx(4 / 3 * math.pi * expected**3, rel=0.05)
    colour, _ = nerf_inr(torch.from_numpy(mesh.vertices)[None], inr_file.batched(), inr_file.inr)
    assert np.abs(mesh.colours - colour[0].numpy() * 255).max() <= 0.5 + 1e-3


def test_ply_and_obj_files(tmp_path, sphere_file):
    needs_skimage()
    ply, obj = tmp_path / "sphere.ply", tmp_path / "sphere.obj"
    for target in (ply, obj):
        result = run_cli("export", sphere_file, "-o", target, "--resolution", "24", "--quiet",
                         "--json")  # fmt: skip
        assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    mesh = read_ply(ply.read_bytes())
    assert (len(mesh.vertices), len(mesh.faces)) == (summary["vertices"], summary["faces"])
    assert ply.read_bytes() == ply_bytes(mesh)
    lines = obj.read_text().splitlines()
    assert sum(line.startswith("v ") for line in lines) == len(mesh.vertices)
    assert sum(line.startswith("f ") for line in lines) == len(mesh.faces)
    assert obj.read_bytes() == obj_bytes(mesh)


def test_mesh_refusals(tmp_path, monkeypatch, image_file, sphere_file):
    needs_skimage()
    monkeypatch.chdir(tmp_path)
    cases = [
        ((image_file, "-f", "ply"), "a mesh needs a NeRF INR"),
        ((sphere_file, "-f", "obj", "--threshold", "1e6"), "no density reaches the threshold"),
        ((sphere_file, "-f", "ply", "--resolution", "4"), "--resolution 4 is out of range"),
        ((sphere_file, "-f", "ply", "--threshold", "-1"), "is not a density"),
        ((sphere_file, "-f", "html", "--resolution", "64"), "are for mesh exports"),
        ((sphere_file, "-f", "onnx", "--dtype", "float16"), "--dtype is for --format html"),
        ((sphere_file, "-o", tmp_path / "x.png"), "give --format"),
        ((sphere_file, "-f", "ply", "-o", tmp_path / "x.obj"), "name the output x.ply"),
    ]
    for args, needle in cases:
        result = run_cli("export", *args, "--quiet")
        assert result.exit_code == 1, (args, result.output)
        assert needle in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picture.inr", "sphere.inr"]


# --- hostile files and the HTML page ---------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"not an inr at all", b"\x89PNG\r\n\x1a\n"])
def test_corrupt_files_are_refused(tmp_path, content):
    bad = tmp_path / "bad.inr"
    bad.write_bytes(content)
    for fmt in ("html", "onnx", "ply"):
        result = run_cli("export", bad, "-f", fmt, "-o", tmp_path / f"out.{fmt}")
        assert result.exit_code == 1
        assert result.output.startswith("error: ") and len(result.output.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.inr"]


def test_truncated_inr_is_refused(tmp_path, image_file):
    truncated = tmp_path / "cut.inr"
    truncated.write_bytes(image_file.read_bytes()[:-100])
    result = run_cli("export", truncated, "-f", "html", "-o", tmp_path / "cut.html")
    assert result.exit_code == 1 and result.output.startswith("error: ")
    assert not (tmp_path / "cut.html").exists()


def embedded_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="inr-data">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_html_escapes_every_string_from_the_file(tmp_path):
    hostile = '</script><script>alert(1)</script><!-- & "quotes" \u2028'
    inr_file = image_inr()
    inr_file.header.source_image = hostile
    inr_file.header.source_model = "<img src=x onerror=alert(2)>"
    path = tmp_path / "x<script>.inr"
    save_inr(inr_file, path)
    result = run_cli("export", path, "-o", tmp_path / "page.html", "--quiet")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert page.lower().count("</script") == viewer_template().lower().count("</script")
    assert "<script>alert" not in page and "<img" not in page and "<!-- &" not in page
    assert page.isascii()
    data = embedded_data(page)
    assert data["header"]["source"] == hostile and data["name"] == "x<script>.inr"
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page


def test_html_of_a_1024_px_image_inr_is_under_2_mb(tmp_path):
    torch.manual_seed(0)
    config = INRConfig()  # the paper's image INR: 64 frequencies, 5 layers of 256
    header = ImageHeader(native_width=1024, native_height=1024)
    path = tmp_path / "big.inr"
    save_inr(InrFile([w[0] for w in init_weights(config)], config, "image", header), path)
    sizes = {}
    for dtype in ("float32", "float16"):
        target = tmp_path / f"big-{dtype}.html"
        result = run_cli("export", path, "-o", target, "--dtype", dtype, "--quiet")
        assert result.exit_code == 0, result.output
        sizes[dtype] = target.stat().st_size
    assert sizes["float32"] < 2_000_000
    assert sizes["float16"] < 0.6 * sizes["float32"]


def texture_texels(data: dict) -> np.ndarray:
    """The page's weight texture as texels (T, 4) float32, decoded from its base64."""
    dtype = np.float16 if data["texture"]["dtype"] == "float16" else np.float32
    raw = np.frombuffer(base64.b64decode(data["weights"]), dtype=np.dtype(dtype).newbyteorder("<"))
    return raw.astype(np.float32).reshape(-1, 4)


def test_html_texture_holds_the_shift_grid_where_the_layout_says():
    inr_file = spatial_inr()
    grid = inr_file.weights[-1].numpy()  # (cells, width), row-major cells
    assert viewer_data(image_inr(), "plain")["shift_grid"] is None
    for dtype, tolerance in (("float32", 0.0), ("float16", 1e-3)):
        data = viewer_data(inr_file, "spatial", dtype)
        layout, texels = data["shift_grid"], texture_texels(data)
        assert (layout["cells"], layout["low"], layout["high"]) == (6, -1.1, 1.05)
        assert layout["texels_per_cell"] == 32 // 4
        start, count = layout["offset"], 36 * layout["texels_per_cell"]
        stored = texels[start : start + count].reshape(36, 32)
        np.testing.assert_allclose(stored, grid, rtol=tolerance, atol=0)
        assert not texels[start + count :].any()  # after the grid: only the texture's padding
        last_bias = texels[start - 1]  # the last layer's biases (3 outputs, one texel) before it
        np.testing.assert_allclose(last_bias[:3], inr_file.weights[-2][-1].numpy(), rtol=tolerance)
        assert "corner" in data["shader"] and str(start) in data["shader"]


def test_export_help_does_not_import_torch():
    probe = (
        "import sys\nfrom typer.testing import CliRunner\nfrom transinr_cli.app import app\n"
        "result = CliRunner().invoke(app, ['export', '--help'])\n"
        "assert result.exit_code == 0, result.output\nprint('torch' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               timeout=120)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["False"]


# --- in a real browser -----------------------------------------------------------------------


def find_browser() -> str | None:
    """TRANSINR_CHROMIUM, or a Chromium or Chrome on the PATH."""
    named = os.environ.get("TRANSINR_CHROMIUM")
    if named:
        return shutil.which(named)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


@pytest.fixture(name="browser")
def fixture_browser() -> str:
    found = find_browser()
    if found is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); browser tests skip")
    return found


def screenshot(
    browser: str, page: Path, fragment: str, size: tuple[int, int], folder: Path
) -> np.ndarray:
    """A headless Chromium screenshot (software WebGL2) of page#fragment at size (W, H): the
    first frame after the window gets its size (headless Chromium gives it late, after the
    load event), which the page draws at once for a fixed view or with sync=1. Not under
    --virtual-time-budget: there a page drawn before the window had its size, or a long
    synchronous draw, could leave the browser waiting 20 s or for ever. These pages take about
    2 s; a browser that gives no picture in 90 s is tried once more."""
    target = folder / f"shot-{len(list(folder.glob('shot-*')))}.png"
    for attempt in range(2):
        command = [
            browser, "--headless", "--no-sandbox", "--use-angle=swiftshader",
            "--enable-unsafe-swiftshader", "--disable-gpu-watchdog", "--hide-scrollbars",
            "--force-device-scale-factor=1", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={folder / f'profile-{target.stem}-{attempt}'}",
            f"--window-size={size[0]},{size[1]}", f"--screenshot={target}",
            f"{page.resolve().as_uri()}#{fragment}",
        ]  # fmt: skip
        try:
            completed = subprocess.run(command, capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired:
            continue
        assert target.is_file(), completed.stderr[-2000:]
        return png(target)
    pytest.fail(f"chromium gave no picture of {page.name} in two tries of 90 s")


def test_browser_image_viewer_matches_render(tmp_path, browser, image_file):
    page = tmp_path / "picture.html"
    assert run_cli("export", image_file, "-o", page, "--quiet").exit_code == 0
    box = "-0.75,-1,0.75,1"  # the content box: what `render` draws
    for width, height in ((64, 48), (40, 30)):  # native, and anti-aliased below it
        shot = screenshot(browser, page, f"box={box}&ui=0", (width, height), tmp_path)
        reference = tmp_path / f"render-{width}.png"
        result = run_cli("render", image_file, "--width", width, "--height", height, "-o",
                         reference, "--quiet")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert psnr(shot, png(reference)) >= 30, (width, psnr(shot, png(reference)))


def test_browser_spatial_image_viewer_matches_render(tmp_path, browser):
    inr_file = spatial_inr()
    path, page = tmp_path / "spatial.inr", tmp_path / "spatial.html"
    save_inr(inr_file, path)
    assert run_cli("export", path, "-o", page, "--quiet").exit_code == 0
    box = "-0.75,-1,0.75,1"  # the content box; x beyond the outermost cell centres (clamped)
    for width, height in ((64, 48), (40, 30)):  # native, and anti-aliased below it
        shot = screenshot(browser, page, f"box={box}&ui=0", (width, height), tmp_path)
        reference = tmp_path / f"render-{width}.png"
        result = run_cli("render", path, "--width", width, "--height", height, "-o", reference,
                         "--quiet")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert psnr(shot, png(reference)) >= 30, (width, psnr(shot, png(reference)))
    flat = [*inr_file.batched()[:-1], torch.zeros_like(inr_file.batched()[-1])]
    box_numbers = inr_file.header.content_box
    without = render_quantized(flat, inr_file.inr, height, width, box_numbers)
    assert psnr(shot, without) < psnr(shot, png(reference)) - 10  # the page draws the grid


def test_browser_image_viewer_zoomed_in_drops_frequencies_above_nyquist(tmp_path, browser):
    inr_file = image_inr()
    path, page = tmp_path / "zoom.inr", tmp_path / "zoom.html"
    save_inr(inr_file, path)
    assert run_cli("export", path, "-o", page, "--quiet").exit_code == 0
    box, (width, height) = (-0.3, -0.5, 0.1, 0.2), (56, 40)  # about 4 x the native size
    shot = screenshot(browser, page, "box=" + ",".join(map(str, box)) + "&ui=0", (56, 40), tmp_path)
    gains = render_gains(inr_file.inr, 64, height, width, box)
    assert gains is not None and float(gains[0].min()) == 0.0
    reference = render_quantized(inr_file.batched(), inr_file.inr, height, width, box, gains=gains)
    assert psnr(shot, reference) >= 30
    raw = render_quantized(inr_file.batched(), inr_file.inr, height, width, box)
    assert psnr(shot, reference) > psnr(shot, raw) + 3  # the filter is what the page draws


def test_browser_nerf_viewer_matches_render(tmp_path, browser, sphere_file):
    page = tmp_path / "sphere.html"
    assert run_cli("export", sphere_file, "-o", page, "--quiet").exit_code == 0
    shot = screenshot(browser, page, "view=40,25,4&ui=0", (64, 64), tmp_path)
    reference = tmp_path / "render.png"
    result = run_cli("render", sphere_file, "--size", 64, "--azimuth", 40, "--elevation", 25,
                     "-o", reference, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert psnr(shot, png(reference)) >= 25
    assert (png(reference) < 128).any()  # the sphere is in the picture


DRAG_SCRIPT = """<script>
// A 50-pixel drag to the right, in the same task as the first view's drawing (sync=1 draws
// at once), so the picture taken is the dragged view's.
new MutationObserver((changes, observer) => {
  if (document.title !== "transinr viewer: ready") return;
  observer.disconnect();
  const canvas = document.getElementById("view");
  const at = (type, x) => canvas.dispatchEvent(new PointerEvent(type,
    {clientX: x, clientY: 20, pointerId: 1, bubbles: true}));
  at("pointerdown", 10); at("pointermove", 60); at("pointerup", 60);
}).observe(document.querySelector("title"), {childList: true});
</script></body>"""


def test_browser_nerf_viewer_orbits_when_dragged(tmp_path, browser, sphere_file):
    page = tmp_path / "drag.html"
    assert run_cli("export", sphere_file, "-o", page, "--quiet").exit_code == 0
    page.write_text(page.read_text().replace("</body>", DRAG_SCRIPT))
    shot = screenshot(browser, page, "sync=1&ui=0", (48, 48), tmp_path)
    reference = tmp_path / "render.png"
    azimuth = 30 - 50 * 0.4  # the page turns 0.4 degrees a pixel dragged
    result = run_cli("render", sphere_file, "--size", 48, "--azimuth", azimuth, "-o", reference,
                     "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert psnr(shot, png(reference)) >= 25
