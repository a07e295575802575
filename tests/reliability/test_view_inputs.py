"""Hostile and odd posed-view inputs (issue 18): hand-made views folders, data roots, option
values and forged NeRF `.inr` files, each through the command line as a user would type it.

Every case must end with one `error:` line (exit 1, or 2 for a usage error), no output file,
no traceback, little memory (the peak resident memory of the command stays under
MEMORY_LIMIT) and no hang (a watchdog aborts a test running over WATCHDOG_S). The valid
neighbours of the refused cases (a symlink with --follow-links, large views, JPEG views, views
of different sizes in eval) work.
"""

from __future__ import annotations

import faulthandler
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reliability_support import assert_fails, assert_ok, invoke, png_claiming
from test_fuzz_files import MEMORY

from models.core.config import INRConfig
from models.core.inr import init_weights
from models.core.metalearner import TransInr
from models.core.presets import preset_config
from models.io.checkpoint import save_checkpoint
from models.io.inr_file import InrFile, load_inr, save_inr
from models.io.inr_header import NerfHeader
from models.nerf.rays import look_at_pose

MEMORY_LIMIT = 500 << 20  # bytes a refused case may grow the process by (the goal: < 2 GB)
WATCHDOG_S = 240
ANGLE = 0.6911112070083618
BIG = 10**20


@pytest.fixture(autouse=True)
def guarded(tmp_path, monkeypatch):
    """Each test in its own folder, with a hang watchdog."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRANSINR_MAX_PIXELS", raising=False)
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def nerf_model(tmp_path_factory) -> Path:
    """An untrained tiny NeRF meta-learner (read-only for tests)."""
    torch.manual_seed(0)
    config = preset_config("tiny", "nerf")
    path = tmp_path_factory.mktemp("nerf-model") / "tiny-nerf.safetensors"
    save_checkpoint(path, TransInr(config), config, {"step": 0})
    return path


@pytest.fixture(scope="module")
def nerf_inr(tmp_path_factory) -> Path:
    """A NeRF .inr file of the tiny architecture (random weights, 4 samples a ray)."""
    return write_nerf_inr(tmp_path_factory.mktemp("nerf-inr") / "chair.inr")


def write_nerf_inr(path: Path, inr: INRConfig | None = None, **header) -> Path:
    inr = inr or preset_config("tiny", "nerf").inr
    values = {"near": 2.0, "far": 6.0, "focal": 40.0, "samples": 4, "view_size": 32,
              "camera_radius": 4.0, "support_views": [0], **header}  # fmt: skip
    torch.manual_seed(0)
    weights = [w[0] for w in init_weights(inr)]
    save_inr(InrFile(weights, inr, "nerf", NerfHeader(**values)), path)
    return path


# --- hand-made views folders ----------------------------------------------------------------


def pose(azimuth: float = 0.0, elevation: float = 20.0, radius: float = 4.0) -> list:
    return look_at_pose(azimuth, elevation, radius).double().tolist()


def view_array(side: int, shade: int = 90) -> np.ndarray:
    rgba = np.zeros((side, side, 4), dtype=np.uint8)
    rgba[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = (shade, 60, 30, 255)
    return rgba


def make_views(folder: Path, count: int = 3, side: int = 16, suffix: str = ".png") -> Path:
    """A learnit object folder of `count` square RGBA views looking at the origin."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for index in range(count):
        image = Image.fromarray(view_array(side, 60 + 7 * index), "RGBA")
        name = f"{index:03d}{'' if suffix == '.png' else suffix}"
        if suffix == ".png":
            image.save(folder / f"{index:03d}.png")
        else:
            image.convert("RGB").save(folder / name)
        frames.append({"file_path": f"./rgb/{name}", "transform_matrix": pose(100.0 * index)})
    transforms = {"camera_angle_x": ANGLE, "frames": frames}
    (folder / "transforms.json").write_text(json.dumps(transforms))
    return folder


class Edit:
    """A change of a views folder's transforms.json (the parsed JSON, edited in place)."""

    def __init__(self, change):
        self.change = change

    def __call__(self, folder: Path) -> None:
        path = folder / "transforms.json"
        data = json.loads(path.read_text())
        self.change(data)
        path.write_text(json.dumps(data))


def frame(key: str, value, index: int = 1) -> Edit:
    return Edit(lambda data: data["frames"][index].__setitem__(key, value))


def raw(data: str | bytes):
    def write(folder: Path) -> None:
        text = data.encode() if isinstance(data, str) else data
        (folder / "transforms.json").write_bytes(text)

    return write


def replace_image(index: int, data: bytes):
    def write(folder: Path) -> None:
        (folder / f"{index:03d}.png").write_bytes(data)

    return write


def link_image_outside(folder: Path) -> None:
    outside = folder.parent / "outside.png"
    Image.fromarray(view_array(16), "RGBA").save(outside)
    (folder / "001.png").unlink()
    (folder / "001.png").symlink_to(outside.resolve())


def link_transforms_outside(folder: Path) -> None:
    outside = folder.parent / "elsewhere.json"
    outside.write_text((folder / "transforms.json").read_text())
    (folder / "transforms.json").unlink()
    (folder / "transforms.json").symlink_to(outside.resolve())


DIGITS = "9" * 400  # parses (under Python's 4300-digit limit), but is no float
ANGLE_400_DIGITS = f'{{"camera_angle_x": {DIGITS}, "frames": []}}'
MATRIX_400_DIGITS = (
    f'{{"camera_angle_x": 0.7, "frames": [{{"file_path": "a", "transform_matrix": [[{DIGITS}]]}}]}}'
)
IDENTITY = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]
FAR_AWAY = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 1e6], [0, 0, 0, 1.0]]
SCALED = [[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 4.0], [0, 0, 0, 1.0]]
LOOKING_AWAY = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, -4.0], [0, 0, 0, 1.0]]

# (id, a change of the folder (a function of it) or None, --views, needles)
FOLDER_CASES = [
    ("deep-json", raw("[" * 50_000 + "]" * 50_000), None, ("transforms.json", "malformed")),
    ("giant-int", raw('{"camera_angle_x": ' + "1" * 5000 + "}"), None, ("malformed",)),
    ("an-array", raw("[1, 2, 3]"), None, ("malformed", "not an object")),
    ("angle-400-digits", raw(ANGLE_400_DIGITS), None, ("camera_angle_x",)),
    ("matrix-400-digits", raw(MATRIX_400_DIGITS), None, ("4x4",)),
    ("not-utf8", raw(b"\xff\xfe{"), None, ("malformed",)),
    ("frames-object", Edit(lambda d: d.update(frames={"0": 1})), None, ("malformed", "frames")),
    ("frame-a-list", Edit(lambda d: d["frames"].__setitem__(1, [1])), None, ("frame 1",)),
    ("no-matrix", Edit(lambda d: d["frames"][1].pop("transform_matrix")), None, ("matrix",)),
    ("path-a-number", frame("file_path", 7), None, ("malformed", "file_path")),
    ("matrix-of-text", frame("transform_matrix", [["1", 0, 0, 0]] * 4), None, ("frame 1", "4x4")),
    ("matrix-3x3", frame("transform_matrix", [[1, 0, 0]] * 3), None, ("frame 1", "4x4")),
    ("matrix-nan", frame("transform_matrix", [[float("nan")] * 4] * 4), None, ("finite",)),
    ("matrix-scaled", frame("transform_matrix", SCALED), None, ("rigid",)),
    ("camera-at-origin", frame("transform_matrix", IDENTITY), None, ("frame 1", "0 from")),
    ("camera-1e6-away", frame("transform_matrix", FAR_AWAY), None, ("frame 1", "1e+06")),
    ("camera-looks-away", frame("transform_matrix", LOOKING_AWAY), None, ("does not see",)),
    ("fov-1e-300", Edit(lambda d: d.update(camera_angle_x=1e-300)), None, ("camera_angle_x",)),
    ("fov-nan", Edit(lambda d: d.update(camera_angle_x=float("nan"))), None, ("camera_angle",)),
    ("fov-true", Edit(lambda d: d.update(camera_angle_x=True)), None, ("camera_angle_x",)),
    ("fov-4", Edit(lambda d: d.update(camera_angle_x=4.0)), None, ("(0, pi)",)),
    ("too-many-frames", Edit(lambda d: d.update(frames=d["frames"] * 3400)), None, ("10,000",)),
    ("path-absolute", frame("file_path", "/etc/passwd"), "0,1", ("absolute",)),
    ("path-dotdot", frame("file_path", "../../etc/passwd"), "0,1", ("'..'",)),
    ("path-escape-code", frame("file_path", "./rgb/\x1b[31mred"), "0,1", ("\\u001b",)),
    ("path-nul", frame("file_path", "a\x00b"), "0,1", ("control",)),
    ("path-bidi", frame("file_path", "a\u202eb"), "0,1", ("\\u202e",)),
    ("path-surrogate", frame("file_path", "a\ud800b"), "0,1", ("\\ud800",)),
    ("path-too-long", frame("file_path", "./" + "a" * 300), "0,1", ("255 bytes",)),
    ("path-empty", frame("file_path", ""), "0,1", ("names no file",)),
    ("view-index-huge", None, str(BIG), (f"view {BIG}", "does not exist")),
    ("view-index-negative", None, "-1", ("view -1",)),
    ("image-symlink-out", link_image_outside, "0,1", ("outside", "--follow-links")),
    ("transforms-symlink-out", link_transforms_outside, None, ("outside", "--follow-links")),
    ("image-1x100000000", replace_image(1, png_claiming(1, 100_000_000)), "0,1", ("square",)),
    ("image-bomb", replace_image(1, png_claiming(30_000, 30_000)), "0,1", ("--max-pixels",)),
    ("image-text", replace_image(1, b"not a png"), "0,1", ("not an image",)),
    ("image-truncated", replace_image(1, png_claiming(16, 16)[:40]), "0,1", ("001.png",)),
    ("image-missing", lambda f: (f / "001.png").unlink(), "0,1", ("001.png", "not found")),
]


def build(folder: Path, change) -> Path:
    make_views(folder)
    if change is not None:
        change(folder)
    return folder


def assert_refused(result, tmp_path: Path, *needles: str, code: int = 1) -> None:
    """One error line naming the needles; nothing written; little memory."""
    assert_fails(result, *needles, code=code)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert MEMORY.grown() < MEMORY_LIMIT, f"the command used {MEMORY.grown() >> 20} MB"


@pytest.mark.parametrize(("change", "views", "needles"), [c[1:] for c in FOLDER_CASES],
                         ids=[c[0] for c in FOLDER_CASES])  # fmt: skip
def test_hostile_views_folder_through_encode(tmp_path, nerf_model, change, views, needles):
    folder = build(tmp_path / "object", change)
    options = ["--views", views] if views is not None else []
    MEMORY.start()
    result = invoke("encode", folder, *options, "--model", nerf_model, "-o", "out/x.inr", "-q")
    assert_refused(result, tmp_path, *needles)


@pytest.mark.parametrize("case", ["path-dotdot", "camera-at-origin", "image-symlink-out",
                                  "deep-json"])  # fmt: skip
def test_hostile_views_folder_through_refine(tmp_path, nerf_inr, case):
    _, change, views, needles = next(c for c in FOLDER_CASES if c[0] == case)
    folder = build(tmp_path / "object", change)
    MEMORY.start()
    result = invoke("refine", nerf_inr, "--views", folder, "--view-ids", views or "0",
                    "--steps", 1, "-o", "out/x.inr", "-q")  # fmt: skip
    assert_refused(result, tmp_path, *needles)


def test_strings_from_files_never_reach_the_terminal_raw(tmp_path, nerf_model):
    folder = build(tmp_path / "object", frame("file_path", "\x1b]0;owned\x07\n\r"))
    result = invoke("encode", folder, "--views", "0,1", "--model", nerf_model, "-o", "out/x.inr")
    line = assert_fails(result)
    assert not any(char in line for char in "\x1b\x07\r")


def test_max_pixels_applies_to_views(tmp_path, nerf_model):
    folder = make_views(tmp_path / "object")
    result = invoke("encode", folder, "--max-pixels", 100, "--model", nerf_model, "-o", "out/x.inr")
    assert_refused(result, tmp_path, "16x16", "over the limit of 100", "--max-pixels")
    result = invoke("refine", write_nerf_inr(tmp_path / "c.inr"), "--views", folder,
                    "--max-pixels", 100, "-o", "out/x.inr")  # fmt: skip
    assert_refused(result, tmp_path, "over the limit of 100")


def test_the_valid_neighbours_work(tmp_path, nerf_model):
    folder = build(tmp_path / "object", link_image_outside)
    assert_ok(invoke("encode", folder, "--views", "0,1", "--follow-links", "--model", nerf_model,
                     "-o", "ok/linked.inr", "-q"))  # fmt: skip
    jpeg = make_views(tmp_path / "jpeg", count=2, side=1200, suffix=".jpg")
    MEMORY.start()
    assert_ok(invoke("encode", jpeg, "--views", "0,1", "--model", nerf_model, "-o", "ok/j.inr"))
    assert MEMORY.grown() < MEMORY_LIMIT
    header = load_inr(tmp_path / "ok" / "j.inr").header
    assert header.view_size == 512  # read at MAX_VIEW_SIDE, decoded reduced
    assert header.focal == pytest.approx(0.5 * 512 / np.tan(0.5 * ANGLE), rel=1e-6)


# --- data roots: split files and object folders --------------------------------------------


def make_root(
    root: Path, ids: list | None = None, views: int = 3, text: str | None = None, test=None
) -> Path:
    """A learnit data root of chairs a, b, c (16 px views) and a split file listing `ids`
    (default all three) in train and test (or `test`)."""
    for name in ("a", "b", "c"):
        make_views(root / "chairs" / name, count=views)
    names = ["a", "b", "c"] if ids is None else ids
    splits = {"train": names, "val": [], "test": names if test is None else test}
    (root / "chair_splits.json").write_text(json.dumps(splits) if text is None else text)
    return root


def link_object_outside(root: Path) -> Path:
    shutil.rmtree(root / "chairs" / "b")
    make_views(root.parent / "elsewhere")
    (root / "chairs" / "b").symlink_to((root.parent / "elsewhere").resolve())
    return root


ROOT_CASES = [
    ("id-dotdot", {"ids": ["a", "../../.."]}, (), ("not a plain folder name",)),
    ("id-absolute", {"ids": ["a", "/etc"]}, (), ("/etc",)),
    ("id-with-slash", {"ids": ["a", "b/../../c"]}, (), ("not a plain folder name",)),
    ("id-a-number", {"ids": ["a", 7]}, (), ("not a folder name",)),
    ("id-escape-code", {"ids": ["a", "\x1b]0;owned\x07"]}, (), ("\\u001b",)),
    ("id-empty", {"ids": ["a", ""]}, (), ("not a plain folder name",)),
    ("split-deep", {"text": "[" * 50_000 + "]" * 50_000}, (), ("chair_splits.json", "malformed")),
    ("split-an-array", {"text": "[1]"}, (), ("no list of object ids",)),
    ("split-a-string", {"text": '{"test": "abc"}'}, (), ("'test'",)),
    ("split-giant-int", {"text": '{"test": [' + "9" * 5000 + "]}"}, (), ("malformed",)),
    ("more-support-than-views", {}, ("--support-views", 3), ("3 views", "--support-views")),
    ("refine-lr-nan", {}, ("--refine-lr", "nan", "--refine-steps", 1), ("--refine-lr nan",)),
    ("refine-lr-negative", {}, ("--refine-lr", -1, "--refine-steps", 1), ("--refine-lr -1",)),
    ("object-symlink-out", {"link": True}, (), ("outside", "--follow-links")),
]


@pytest.mark.parametrize(("setup", "options", "needles"), [c[1:] for c in ROOT_CASES],
                         ids=[c[0] for c in ROOT_CASES])  # fmt: skip
def test_hostile_data_root_through_eval(tmp_path, nerf_model, setup, options, needles):
    setup = dict(setup)
    root = make_root(tmp_path / "data", setup.get("ids"), text=setup.get("text"))
    if setup.get("link"):
        link_object_outside(root)
    MEMORY.start()
    result = invoke("eval", "--task", "nerf", "--model", nerf_model, "--data", root, *options,
                    "--quiet")  # fmt: skip
    assert_refused(result, tmp_path, *needles)


def test_eval_follows_links_when_asked_and_takes_mixed_sizes(tmp_path, nerf_model):
    root = link_object_outside(make_root(tmp_path / "data"))
    shutil.rmtree(root / "chairs" / "c")
    make_views(root / "chairs" / "c", side=24)  # another size: objects are scored one by one
    result = invoke("eval", "--task", "nerf", "--model", nerf_model, "--data", root,
                    "--follow-links", "--json", "--quiet")  # fmt: skip
    assert json.loads(assert_ok(result).stdout)["objects"] == 3


def train(root: Path, *options):
    return invoke("train", "--task", "nerf", "--preset", "tiny", "--data", root, "--steps", 1,
                  "--out", "out/run", "--device", "cpu", "--quiet", *options)  # fmt: skip


@pytest.mark.parametrize("workers", [0, 1])
def test_a_broken_view_in_a_loader_worker_is_one_line(tmp_path, workers):
    # Object a (read in this process to learn the view size, and the only validation object)
    # is whole; b and c, read by the loader (in a worker with --workers 1), are not.
    root = make_root(tmp_path / "data", views=25, test=["a"])
    for name in ("b", "c"):
        (root / "chairs" / name / "003.png").write_text("not a png")
    MEMORY.start()
    result = train(root, "--workers", workers)
    assert_refused(result, tmp_path, "003.png", "not an image")


@pytest.mark.parametrize(
    ("options", "needles", "code"),
    [
        (("--lr", "nan"), ("--lr nan",), 1),
        (("--lr", "-1"), ("--lr -1",), 1),
        (("--epochs", "inf"), ("--epochs inf",), 1),
        (("--minutes", "nan"), ("--minutes",), 2),
        (("--rays-per-object", 1 << 20, "--batch-size", 4096), ("--rays-per-object",), 1),
        (("--seed", BIG), ("--seed",), 2),
        (("--steps", -1), ("--steps",), 2),
    ],
    ids=["lr-nan", "lr-negative", "epochs-inf", "minutes-nan", "rays-beyond-memory",
         "seed-huge", "steps-negative"],
)  # fmt: skip
def test_hostile_train_options(tmp_path, options, needles, code):
    root = make_root(tmp_path / "data", views=25)
    MEMORY.start()
    assert_refused(train(root, "--workers", 0, *options), tmp_path, *needles, code=code)


def test_train_objects_need_the_training_views_and_one_size(tmp_path):
    root = make_root(tmp_path / "data", views=5)
    assert_refused(train(root, "--workers", 0), tmp_path, "5 views", "0-24")
    root = make_root(tmp_path / "data2", views=25)
    shutil.rmtree(root / "chairs" / "b")
    make_views(root / "chairs" / "b", count=25, side=24)
    assert_refused(train(root, "--workers", 0), tmp_path, "24x24", "16x16", "one size")


# --- option values of refine and render; forged NeRF files ---------------------------------


@pytest.mark.parametrize(
    ("options", "needles", "code"),
    [
        (("--rays", 10_000_000), ("--rays 10000000", "GB"), 1),
        (("--rays", 0), ("--rays",), 2),
        (("--lr", "nan"), ("--lr nan",), 1),
        (("--lr", "-1e-3"), ("--lr -0.001",), 1),
        (("--steps", 0), ("--steps",), 2),
        (("--view-ids", "0,0"), ("distinct",), 1),
    ],
    ids=["rays-beyond-memory", "rays-zero", "lr-nan", "lr-negative", "steps-zero", "ids-twice"],
)
def test_hostile_refine_options(tmp_path, nerf_inr, options, needles, code):
    folder = make_views(tmp_path / "object")
    MEMORY.start()
    result = invoke("refine", nerf_inr, "--views", folder, *options, "-o", "out/x.inr", "-q")
    assert_refused(result, tmp_path, *needles, code=code)


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        (("--azimuth", "nan"), ("--azimuth nan",)),
        (("--azimuth", "inf"), ("--azimuth inf",)),
        (("--elevation", "-inf"), ("--elevation -inf",)),
        (("--elevation", "100"), ("--elevation 100", "-90 to 90")),
        (("--radius", "nan"), ("--radius nan",)),
        (("--radius", "inf"), ("--radius inf",)),
        (("--radius", "0"), ("--radius 0",)),
        (("--size", 16384), ("--size 16384", "4096")),
        (("--orbit", 3600, "--size", 512, "-o", "out/o.gif"), ("3600 frames", "GB")),
    ],
    ids=["azimuth-nan", "azimuth-inf", "elevation-inf", "elevation-100", "radius-nan",
         "radius-inf", "radius-0", "size-16384", "orbit-beyond-memory"],
)  # fmt: skip
def test_hostile_render_options(tmp_path, nerf_inr, options, needles):
    MEMORY.start()
    target = [] if "-o" in options else ["-o", "out/x.png"]
    result = invoke("render", nerf_inr, *options, *target, "-q")
    assert_refused(result, tmp_path, *needles)


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("[" * 50_000 + "]" * 50_000, ("pose",)),
        (json.dumps([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1e30], [0, 0, 0, 1]]), ("1e+30",)),
        (json.dumps(IDENTITY), ("at it",)),
    ],
    ids=["deep-json", "camera-1e30-away", "camera-at-origin"],
)
def test_hostile_pose_files(tmp_path, nerf_inr, content, needles):
    (tmp_path / "pose.json").write_text(content)
    result = invoke("render", nerf_inr, "--pose", "pose.json", "-o", "out/x.png", "-q")
    assert_refused(result, tmp_path, "pose.json", *needles)


@pytest.mark.parametrize(
    ("inr", "header", "needles"),
    [
        (None, {"view_size": 16384}, ("view_size", "4096")),
        (None, {"native_width": 16384}, ("native_width",)),
        (INRConfig(coord_dim=3, fourier_count=8, fourier_max=256.0, fourier_pi=False, depth=2,
                   width=8192, out_dim=4, out_bias=0.0), {}, ("width 8192",)),
        (INRConfig(coord_dim=3, fourier_count=8, fourier_max=256.0, fourier_pi=False, depth=6,
                   width=2048, out_dim=4, out_bias=0.0), {}, ("parameters",)),
    ],
    ids=["view-size-16384", "native-16384", "width-8192", "too-many-parameters"],
)  # fmt: skip
def test_forged_nerf_files_that_would_demand_gigabytes(tmp_path, inr, header, needles):
    path = write_nerf_inr(tmp_path / "forged.inr", inr, **header)
    MEMORY.start()
    assert_refused(invoke("render", path, "-o", "out/x.png", "-q"), tmp_path, *needles)


def test_a_render_beyond_the_memory_budget_is_refused(tmp_path, small_inr):
    MEMORY.start()
    result = invoke("render", small_inr, "--size", 16384, "--bit-depth", 16, "-o", "out/x.png")
    assert_refused(result, tmp_path, "16384x16384", "GB")


def test_info_escapes_strings_from_the_file(tmp_path):
    path = write_nerf_inr(
        tmp_path / "x.inr", source_views="\x1b[31m[bold]red\x07", source_model="[b]"
    )
    result = assert_ok(invoke("info", path))
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b[31m[bold]red\\x07" in result.output and "[b]" in result.output
