"""The `transinr` command line for view synthesis, end to end on a tiny NeRF model, and its
handling of bad input: exit 1 (2 for usage errors), one `error:` line naming the problem, no
traceback, and no output file left behind."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from nerf_support import (
    assert_fails,
    assert_ok,
    fixture_chair,  # noqa: F401 (a fixture)
    fixture_image_checkpoint,  # noqa: F401 (a fixture)
    fixture_nerf_data,  # noqa: F401 (a fixture)
    fixture_nerf_run,  # noqa: F401 (a fixture)
    invoke,
    json_of,
    listing,
    rigid_pose,
    write_views,
)
from PIL import Image

from models.core.config import RaySampling
from models.core.inr import init_weights
from models.core.presets import preset_config
from models.data.synth import CAMERA_ANGLE_X
from models.io.checkpoint import load_checkpoint
from models.io.inr_file import InrFile, load_inr, save_inr
from models.io.inr_header import ImageHeader
from models.nerf.rays import focal_from_angle, look_at_pose
from models.nerf.volume_rendering import render_view


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Work in tmp_path, with the data cache there too: nothing touches ~/.cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRANSINR_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-nerf")


@pytest.fixture(scope="module")
def cli_run(workspace, nerf_data) -> Path:
    """A tiny NeRF meta-learner trained by `transinr train --task nerf`."""
    run = workspace / "run"
    result = invoke(
        "train", "--task", "nerf", "--category", "chairs", "--data", nerf_data,
        "--preset", "tiny", "--steps", 3, "--val-every", 3, "--workers", 0, "--device", "cpu",
        "--out", run, "--quiet",
    )  # fmt: skip
    assert_ok(result)
    assert "trained 3 steps" in result.stdout
    return run


@pytest.fixture(scope="module")
def encoded(workspace, cli_run, chair) -> Path:
    """Views 0 and 3 of the test chair encoded into x.inr."""
    target = workspace / "x.inr"
    assert_ok(invoke("encode", chair, "--views", "0,3", "-o", target, "--model", cli_run, "-q"))
    return target


@pytest.fixture
def x_inr(encoded, tmp_path) -> Path:
    """A private copy of the encoded NeRF .inr file."""
    return Path(shutil.copy(encoded, tmp_path / "x.inr"))


@pytest.fixture
def image_inr(tmp_path) -> Path:
    config = preset_config("tiny").inr
    path = tmp_path / "face.inr"
    torch.manual_seed(0)
    save_inr(
        InrFile(
            [w[0] for w in init_weights(config)],
            config,
            "image",
            ImageHeader(native_width=8, native_height=8),
        ),
        path,
    )
    return path


@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def assert_empty(folder: Path):
    assert listing(folder) == set(), f"left behind: {listing(folder)}"


def png_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image)


# --- the happy path -------------------------------------------------------------------------


def test_dry_run_of_the_paper_nerf_model():
    result = assert_ok(invoke("train", "--task", "nerf", "--preset", "chairs", "--dry-run"))
    assert "44,463,484" in result.stdout
    assert "256 data per view + 164 weight" in result.stdout


def test_dry_run_json_of_the_tiny_nerf_model():
    details = json_of(invoke("train", "--task", "nerf", "--preset", "tiny", "--dry-run", "--json"))
    assert details["task"] == "nerf" and details["preset"] == "tiny"
    assert details["config"]["max_views"] == 4 and details["config"]["channels"] == 9


@pytest.mark.parametrize(
    ("category", "objects", "splits"),
    [("chairs", 3, "chair_splits.json"), ("cars", 2, "car_splits.json"),
     ("lamps", 2, "lamp_splits.json")],
)  # fmt: skip
def test_data_synth_writes_the_learnit_layout(tmp_path, category, objects, splits):
    root = tmp_path / "synthetic"
    details = json_of(
        invoke("data", "synth", "--category", category, "--objects", objects, "-o", root,
               "--quiet", "--json")
    )  # fmt: skip
    assert details["objects"] == objects and details["category"] == category
    assert details["objects_per_second"] > 0
    assert details["splits"] == str(root / splits)
    split = json.loads((root / splits).read_text())
    ids = split["train"] + split["test"]
    assert len(ids) == objects and len(split["test"]) >= 1
    assert sorted(p.name for p in (root / category).iterdir()) == sorted(ids)
    folder = root / category / ids[0]
    transforms = json.loads((folder / "transforms.json").read_text())
    assert transforms["camera_angle_x"] == pytest.approx(CAMERA_ANGLE_X)
    assert len(transforms["frames"]) == 50
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs == [f"{i:03d}.png" for i in range(50)]
    with Image.open(folder / "000.png") as image:
        assert image.mode == "RGBA" and image.size == (128, 128)


def test_train_writes_a_nerf_run(cli_run, nerf_data):
    checkpoint = load_checkpoint(cli_run / "last.safetensors")
    assert checkpoint.config.task == "nerf" and checkpoint.config.preset == "tiny"
    assert checkpoint.train_state["step"] == 3
    assert checkpoint.train_state["train_config"]["category"] == "chairs"
    assert checkpoint.train_state["train_config"]["data"] == str(nerf_data)
    assert (cli_run / "best.safetensors").is_file()
    assert checkpoint.train_state["history"][0]["step"] == 3  # validated at step 3


def test_info_of_an_encoded_nerf(encoded, chair):
    details = json_of(invoke("info", encoded, "--json"))
    assert details["task"] == "nerf" and details["format"] == "transinr.inr"
    assert (details["near"], details["far"]) == (2.0, 6.0)
    assert details["support_views"] == [0, 3]
    assert details["focal"] == pytest.approx(focal_from_angle(128, CAMERA_ANGLE_X))
    assert details["camera_radius"] == pytest.approx(4.0, rel=1e-4)
    assert details["parameters"] == preset_config("tiny", "nerf").inr.parameter_count()
    assert details["source_views"] == str(chair)


def test_encode_given_the_transforms_json_path(tmp_path, cli_run, chair, encoded):
    details = json_of(
        invoke("encode", chair / "transforms.json", "--views", "0,3", "--model", cli_run,
               "-o", tmp_path / "y.inr", "--json")
    )  # fmt: skip
    assert details["task"] == "nerf"
    (entry,) = details["results"]
    assert entry["views"] == str(chair / "transforms.json") and entry["inr"] == str(
        tmp_path / "y.inr"
    )
    same, first = load_inr(tmp_path / "y.inr"), load_inr(encoded)
    assert all(torch.equal(a, b) for a, b in zip(same.weights, first.weights, strict=True))
    assert entry["psnr"] == pytest.approx(first.header.encode_psnr, abs=1e-3)


def test_encode_default_view_and_default_name(tmp_path, cli_run, chair):
    assert_ok(invoke("encode", chair, "--model", cli_run, "-q"))
    written = tmp_path / f"{chair.name}.inr"
    assert load_inr(written).header.support_views == [0]


def test_render_one_view(tmp_path, x_inr):
    details = json_of(
        invoke("render", x_inr, "--size", 16, "--samples", 8, "-o", "v.png", "--json")
    )
    assert (details["width"], details["height"]) == (16, 16)
    assert png_pixels(tmp_path / "v.png").shape == (16, 16, 3)
    # It is the core's render from the default camera (azimuth 30, elevation 30, the inputs'
    # radius) with the .inr file's focal scaled to 16 pixels.
    inr = load_inr(x_inr)
    pose = look_at_pose(30.0, 30.0, inr.header.camera_radius)[None]
    expected = render_view(
        inr.batched(), inr.inr, RaySampling(2.0, 6.0, 8), pose, 16, 16, inr.header.focal / 8
    )
    expected = (expected[0].numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(png_pixels(tmp_path / "v.png"), expected)


def test_render_a_pose_file_equals_the_same_look_at(tmp_path, x_inr):
    (tmp_path / "pose.json").write_text(json.dumps(rigid_pose(120.0, 40.0, 3.5)))
    assert_ok(invoke("render", x_inr, "--pose", "pose.json", "--size", 16, "--samples", 8,
                     "-o", "pose.png", "-q"))  # fmt: skip
    assert_ok(invoke("render", x_inr, "--azimuth", 120, "--elevation", 40, "--radius", 3.5,
                     "--size", 16, "--samples", 8, "-o", "angles.png", "-q"))  # fmt: skip
    posed, angles = png_pixels(tmp_path / "pose.png"), png_pixels(tmp_path / "angles.png")
    assert posed.shape == (16, 16, 3)
    assert np.abs(posed.astype(int) - angles.astype(int)).max() <= 1


def test_render_orbit_gif_and_folder(tmp_path, x_inr):
    assert_ok(invoke("render", x_inr, "--orbit", 3, "--size", 16, "--samples", 8, "-o", "o.gif",
                     "-q"))  # fmt: skip
    with Image.open(tmp_path / "o.gif") as gif:
        assert gif.format == "GIF" and gif.size == (16, 16)
        assert gif.n_frames == 3
    details = json_of(
        invoke("render", x_inr, "--orbit", 3, "--size", 16, "--samples", 8, "-o", "frames/",
               "--json", "-q")
    )  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["000.png", "001.png", "002.png"]
    assert details["outputs"] == [str(Path("frames") / name) for name in names]
    assert all(png_pixels(tmp_path / "frames" / name).shape == (16, 16, 3) for name in names)
    assert not list(tmp_path.glob(".o.gif*"))  # no temporary file left


def test_render_orbit_16_bit_folder(tmp_path, x_inr):
    assert_ok(invoke("render", x_inr, "--orbit", 2, "--size", 8, "--samples", 4,
                     "--bit-depth", 16, "-o", "deep/", "-q"))  # fmt: skip
    for name in ("000.png", "001.png"):
        data = (tmp_path / "deep" / name).read_bytes()
        assert data[12:16] == b"IHDR" and (data[16:24], data[24]) == (bytes([0, 0, 0, 8] * 2), 16)
    result = invoke("render", x_inr, "--orbit", 2, "--bit-depth", 16, "-o", "deep.gif")
    assert_fails(result, "16-bit", "folder")
    assert not (tmp_path / "deep.gif").exists()


def test_render_orbit_mp4(tmp_path, x_inr):
    result = invoke("render", x_inr, "--orbit", 3, "--size", 16, "--samples", 8, "-o", "o.mp4",
                    "-q")  # fmt: skip
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        assert_fails(result, "imageio-ffmpeg")
        assert not (tmp_path / "o.mp4").exists()
        assert not list(tmp_path.glob(".o.mp4*"))
    else:
        assert_ok(result)
        data = (tmp_path / "o.mp4").read_bytes()
        assert len(data) > 100 and data[4:8] == b"ftyp"


def test_refine_a_nerf_with_its_views(tmp_path, x_inr, chair):
    before = x_inr.read_bytes()
    details = json_of(
        invoke("refine", x_inr, "--views", chair, "--steps", 2, "--rays", 64, "--json", "-q")
    )
    refined = tmp_path / "x.refined.inr"
    assert details["output"] == str(refined) and details["steps"] == 2
    assert 0 < details["psnr_before"] < 100 and 0 < details["psnr_after"] < 100
    tuned = load_inr(refined)
    assert tuned.task == "nerf" and tuned.header.refine_steps == 2
    assert tuned.header.support_views == [0, 3]
    assert not torch.equal(tuned.weights[0], load_inr(x_inr).weights[0])
    assert x_inr.read_bytes() == before
    other = json_of(
        invoke("refine", x_inr, "--views", chair / "transforms.json", "--view-ids", "5",
               "--steps", 1, "-o", "five.inr", "--json", "-q")
    )  # fmt: skip
    assert other["output"] == "five.inr" and (tmp_path / "five.inr").is_file()


def test_eval_nerf(cli_run, nerf_data):
    details = json_of(
        invoke("eval", "--task", "nerf", "--model", cli_run, "--data", nerf_data,
               "--category", "chairs", "--json", "--refine-steps", 1, "-q")
    )  # fmt: skip
    assert details["task"] == "nerf" and details["split"] == "test"
    assert details["objects"] == 1 and details["pairs"] == 1 and details["support_views"] == 1
    assert 0 < details["psnr"] < 100
    assert details["psnr_refined"] is not None and 0 < details["psnr_refined"] < 100
    assert details["refine_steps"] == 1
    two = json_of(
        invoke("eval", "--task", "nerf", "--model", cli_run, "--data", nerf_data,
               "--support-views", 2, "--pairs", 2, "--json", "-q")
    )  # fmt: skip
    assert two["support_views"] == 2 and two["pairs"] == 2 and two["psnr_refined"] is None
    table = assert_ok(
        invoke("eval", "--task", "nerf", "--model", cli_run, "--data", nerf_data, "-q")
    )
    assert "Trans-INR" in table.stdout


def test_train_nerf_without_data_generates_into_the_cache(tmp_path):
    summary = json_of(
        invoke("train", "--task", "nerf", "--preset", "tiny", "--synthetic-objects", 2,
               "--steps", 1, "--workers", 0, "--device", "cpu", "--out", tmp_path / "run",
               "--quiet", "--json")
    )  # fmt: skip
    assert summary["steps"] == 1 and summary["task"] == "nerf"
    root = tmp_path / "cache" / "synthetic" / "chairs-2-seed0"
    assert (root / "chair_splits.json").is_file()
    assert len(list((root / "chairs").iterdir())) == 2
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint.train_state["train_config"]["data"] == str(root)


def test_train_foreground_epochs_is_recorded_and_nerf_only(tmp_path, nerf_data):
    """With tens of objects an epoch is a few steps: --foreground-epochs keeps the rays on the
    object for longer; image runs refuse it (and the other NeRF options)."""
    summary = json_of(
        invoke("train", "--task", "nerf", "--data", nerf_data, "--preset", "tiny", "--steps", 1,
               "--workers", 0, "--foreground-epochs", 50, "--out", tmp_path / "run", "--json")
    )  # fmt: skip
    assert summary["steps"] == 1
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint.train_state["train_config"]["foreground_epochs"] == 50
    for option, value in [("--foreground-epochs", 5), ("--support-views", 2)]:
        assert_fails(
            invoke("train", "--dataset", "folder", "--data", tmp_path, "--preset", "tiny",
                   option, value, "--out", tmp_path / "image-run"),
            "are for --task nerf",
        )  # fmt: skip
    assert not (tmp_path / "image-run").exists()


# --- bad input ------------------------------------------------------------------------------


def test_encode_malformed_transforms_json(tmp_path, out_dir, nerf_run):
    folder = write_views(tmp_path / "obj", [(16, 16)] * 2)
    (folder / "transforms.json").write_text('{"camera_angle_x": 0.69, "frames": [')
    result = invoke("encode", folder, "--model", nerf_run, "-o", out_dir / "x.inr")
    assert_fails(result, "transforms.json", "malformed")
    result = invoke("encode", folder / "transforms.json", "--model", nerf_run, "-o", out_dir)
    assert_fails(result, "transforms.json", "malformed")
    assert_empty(out_dir)


def test_encode_missing_image_in_a_views_folder(tmp_path, out_dir, nerf_run):
    folder = write_views(tmp_path / "obj", [(16, 16)] * 2, skip_images=(1,))
    result = invoke(
        "encode", folder, "--views", "0,1", "--model", nerf_run, "-o", out_dir / "x.inr"
    )
    assert_fails(result, "001.png", "not found")
    assert_empty(out_dir)


def test_encode_non_square_views(tmp_path, out_dir, nerf_run):
    folder = write_views(tmp_path / "obj", [(20, 16)])
    result = invoke("encode", folder, "--model", nerf_run, "-o", out_dir / "x.inr")
    assert_fails(result, "20x16", "square")
    assert_empty(out_dir)


def test_encode_views_of_mismatched_sizes(tmp_path, out_dir, nerf_run):
    folder = write_views(tmp_path / "obj", [(16, 16), (24, 24)])
    result = invoke(
        "encode", folder, "--views", "0,1", "--model", nerf_run, "-o", out_dir / "x.inr"
    )
    assert_fails(result, "24x24", "16x16")
    assert_empty(out_dir)


def test_encode_a_non_rigid_pose_in_transforms(tmp_path, out_dir, nerf_run):
    scaled = [[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 4.0], [0, 0, 0, 1.0]]
    folder = write_views(tmp_path / "obj", [(16, 16)], poses=[scaled])
    result = invoke("encode", folder, "--model", nerf_run, "-o", out_dir / "x.inr")
    assert_fails(result, "frame 0", "rigid")
    assert_empty(out_dir)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (json.dumps([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 4], [0, 0, 0, 1]]), "rigid"),
        (json.dumps([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), "4x4"),
        ("1 0 0 0 0 1 0 0", "4x4"),
        ("hello", "pose"),
    ],
    ids=["scaled", "3x3", "8-numbers", "text"],
)
def test_render_a_bad_pose_file(tmp_path, out_dir, x_inr, content, needle):
    (tmp_path / "pose.json").write_text(content)
    result = invoke("render", x_inr, "--pose", "pose.json", "--size", 8, "--samples", 4,
                    "-o", out_dir / "v.png")  # fmt: skip
    assert_fails(result, "pose.json", needle)
    assert_empty(out_dir)


def test_render_a_missing_pose_file(out_dir, x_inr):
    result = invoke("render", x_inr, "--pose", "nowhere.json", "-o", out_dir / "v.png")
    assert_fails(result, "nowhere.json", "not found")
    assert_empty(out_dir)


def test_an_image_inr_given_nerf_options(tmp_path, out_dir, image_inr, chair):
    result = invoke("refine", image_inr, "--views", chair, "--steps", 1, "-o", out_dir / "r.inr")
    assert_fails(result, "image INR", "--image")
    result = invoke("render", image_inr, "--orbit", 3, "-o", out_dir / "o.gif")
    assert_fails(result, "image INR", "--orbit")
    assert_empty(out_dir)
    assert not (tmp_path / "face.refined.inr").exists()


def test_a_nerf_inr_given_an_image(tmp_path, out_dir, x_inr, chair):
    image = chair / "000.png"
    result = invoke("refine", x_inr, "--image", image, "--steps", 1, "-o", out_dir / "r.inr")
    assert_fails(result, "NeRF INR", "--views")
    result = invoke("refine", x_inr, "--steps", 1, "-o", out_dir / "r.inr")
    assert_fails(result, "NeRF INR", "--views")
    assert_empty(out_dir)
    assert not (tmp_path / "x.refined.inr").exists()


def test_encode_views_with_an_image_model(out_dir, image_checkpoint, chair):
    result = invoke("encode", chair, "--model", image_checkpoint, "-o", out_dir / "x.inr")
    assert_fails(result, "image model", "NeRF")
    assert_empty(out_dir)


def test_encode_an_image_with_a_nerf_model(out_dir, nerf_run, chair):
    result = invoke("encode", chair / "000.png", "--model", nerf_run, "-o", out_dir / "x.inr")
    assert_fails(result, "nerf model", "image model")
    assert_empty(out_dir)


def test_encode_more_views_than_the_model_allows(out_dir, nerf_run, chair):
    result = invoke("encode", chair, "--views", "0,1,2,3,4", "--model", nerf_run,
                    "-o", out_dir / "x.inr")  # fmt: skip
    assert_fails(result, "5 support views", "(4)")
    assert_empty(out_dir)


@pytest.mark.parametrize(
    ("views", "needle"), [("x,y", "x,y"), ("0,0", "distinct"), (",", "distinct"), ("60", "60")]
)
def test_encode_a_bad_view_list(out_dir, nerf_run, chair, views, needle):
    result = invoke("encode", chair, "--views", views, "--model", nerf_run, "-o", out_dir / "x.inr")
    assert_fails(result, needle)
    assert_empty(out_dir)


def test_encode_views_and_an_image_together(out_dir, nerf_run, chair):
    result = invoke("encode", chair, chair / "000.png", "--model", nerf_run, "-o", out_dir)
    assert_fails(result, "not both")
    assert_empty(out_dir)


def test_eval_nerf_with_an_image_checkpoint(image_checkpoint, nerf_data):
    result = invoke("eval", "--task", "nerf", "--model", image_checkpoint, "--data", nerf_data)
    assert_fails(result, "image model", "--task image")


def test_eval_nerf_with_too_many_support_views(nerf_run, nerf_data):
    result = invoke("eval", "--task", "nerf", "--model", nerf_run, "--data", nerf_data,
                    "--support-views", 9)  # fmt: skip
    assert_fails(result, "--support-views 9", "(4)")


def test_eval_nerf_with_a_missing_category(tmp_path, nerf_run, nerf_data):
    result = invoke("eval", "--task", "nerf", "--model", nerf_run, "--data", nerf_data,
                    "--category", "cars")  # fmt: skip
    assert_fails(result, "car_splits.json")
    result = invoke("eval", "--task", "nerf", "--model", nerf_run, "--data", tmp_path / "none")
    assert_fails(result, "chair_splits.json")


SHAPENET_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "shapenet-real"


@pytest.mark.skipif(not SHAPENET_REAL.is_dir(), reason="../shared/data/shapenet-real is absent")
def test_eval_nerf_on_unseen_real_categories(nerf_run):
    """Any category folder evaluates (shapenet-real's benchs, cups, vases), with all white."""
    details = json_of(
        invoke("eval", "--task", "nerf", "--model", nerf_run, "--data", SHAPENET_REAL,
               "--category", "benchs", "--limit", 1, "--baseline", "--json", "-q")
    )  # fmt: skip
    assert details["category"] == "benchs" and details["objects"] == 1
    assert 0 < details["psnr"] < 100 and 0 < details["baseline_psnr"] < 100
    bad = invoke("eval", "--task", "nerf", "--model", nerf_run, "--data", SHAPENET_REAL,
                 "--category", "../benchs")  # fmt: skip
    assert_fails(bad, "not a folder name")


def test_train_nerf_with_an_image_preset():
    assert_fails(
        invoke("train", "--task", "nerf", "--preset", "celeba", "--dry-run"), "celeba", "nerf"
    )


def test_train_nerf_with_too_many_support_views(tmp_path, nerf_data):
    result = invoke("train", "--task", "nerf", "--preset", "tiny", "--data", nerf_data,
                    "--support-views", 5, "--steps", 1, "--workers", 0, "--out", tmp_path / "r",
                    "--quiet")  # fmt: skip
    assert_fails(result, "--support-views 5", "(4)")
    assert not (tmp_path / "r").exists()


def test_render_a_nerf_with_width(out_dir, x_inr):
    result = invoke("render", x_inr, "--width", 10, "-o", out_dir / "v.png")
    assert_fails(result, "--size")
    result = invoke("render", x_inr, "--height", 10, "-o", out_dir / "v.png")
    assert_fails(result, "--size")
    result = invoke("render", x_inr, "--no-antialias", "-o", out_dir / "v.png")
    assert_fails(result, "--no-antialias", "image")
    assert_empty(out_dir)


@pytest.mark.parametrize(
    ("options", "needle", "code"),
    [
        (("--orbit", 2, "-o", "out/o.avi"), ".gif", 1),
        (("--orbit", 0, "-o", "out/o.gif"), "--orbit", 2),
        (("--samples", 1, "-o", "out/v.png"), "--samples", 2),
        (("--size", -3, "-o", "out/v.png"), "--size", 1),
        (("--size", 16385, "-o", "out/v.png"), "--size", 1),
        (("-o", "out/v.gif"), ".gif", 1),
    ],
)
def test_render_nerf_bad_options(out_dir, x_inr, options, needle, code):
    assert_fails(invoke("render", x_inr, "--samples", 4, *options), needle, code=code)
    assert_empty(out_dir)


def test_render_nerf_size_zero_is_refused(out_dir, x_inr):
    # --size 0 is out of range (1 to 16384) as for image INRs; it must not mean "the default".
    result = invoke("render", x_inr, "--size", 0, "--samples", 4, "-o", out_dir / "v.png")
    assert_fails(result, "--size", "0")
    assert_empty(out_dir)


def test_refine_missing_views_folder(tmp_path, x_inr):
    result = invoke("refine", x_inr, "--views", tmp_path / "gone", "--steps", 1)
    assert_fails(result, "gone", "transforms.json")
    assert not (tmp_path / "x.refined.inr").exists()


def test_refine_a_bad_view_id(tmp_path, x_inr, chair):
    result = invoke("refine", x_inr, "--views", chair, "--view-ids", "99", "--steps", 1)
    assert_fails(result, "view 99")
    assert not (tmp_path / "x.refined.inr").exists()


def test_train_nerf_data_without_a_split_file(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("train", "--task", "nerf", "--preset", "tiny", "--data", tmp_path / "empty",
                    "--steps", 1, "--workers", 0, "--out", tmp_path / "r", "--quiet")  # fmt: skip
    assert_fails(result, "chair_splits.json")
    assert not (tmp_path / "r" / "last.safetensors").exists()


def test_the_pose_helper_is_the_cli_look_at():
    # The test helper's pose is what the CLI's look-at gives: the --pose test depends on it.
    assert torch.allclose(torch.tensor(rigid_pose(120.0, 40.0, 3.5)).float(),
                          look_at_pose(120.0, 40.0, 3.5))  # fmt: skip
