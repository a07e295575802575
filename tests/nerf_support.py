"""Shared pieces of the view-synthesis tests: synthetic learnit data and a tiny NeRF meta-learner
(each built once per session), hand-made views folders, and the CLI assertion helpers.

Session fixtures (`fixture_<name>`, registered as `<name>`) are cached on disk under pytest's
base temporary folder, so the two test modules that import them share one data set and one
checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from models.core.metalearner import TransInr
from models.core.presets import preset_config
from models.data.synth import CAMERA_ANGLE_X, write_dataset
from models.data.view_data import ViewDataset, object_folders
from models.io.checkpoint import save_checkpoint
from models.tasks.training import recipe, train
from transinr_cli.app import app

REPO_ROOT = Path(__file__).resolve().parents[1]
SHAPENET_REAL = (REPO_ROOT / ".." / "shared" / "data" / "shapenet-real").resolve()
CHAIRS = 4  # synthetic chairs: 3 train, 1 test
NERF_STEPS = 4


# --- data and models, built once per session ------------------------------------------------


def synthetic_chairs(root: Path) -> Path:
    """4 synthetic chairs (50 views of 128x128) in the learnit layout under `root`."""
    if not (root / "chair_splits.json").is_file():  # written last: the set is complete
        write_dataset(root, "chairs", CHAIRS, seed=0)
    return root


def tiny_nerf_run(run_dir: Path, data: Path) -> Path:
    """The tiny NeRF preset trained for a few steps on `data` (CPU, no workers)."""
    if not (run_dir / "last.safetensors").is_file():
        config = preset_config("tiny", "nerf")
        train_config = recipe(
            "tiny", "nerf", steps=NERF_STEPS, workers=0, val_every=1000, val_images=1
        )
        train_config.data, train_config.category = str(data), "chairs"
        train_set = ViewDataset(data, "chairs", "train")
        val_set = ViewDataset(data, "chairs", "test")
        train(run_dir, config, train_config, train_set, val_set, torch.device("cpu"))
    return run_dir


def untrained_image_checkpoint(path: Path) -> Path:
    """An image (not NeRF) checkpoint of the tiny preset, untrained: for task-mismatch errors."""
    if not path.is_file():
        torch.manual_seed(0)
        config = preset_config("tiny")
        save_checkpoint(path, TransInr(config), config, {"step": 0})
    return path


@pytest.fixture(scope="session", name="nerf_data")
def fixture_nerf_data(tmp_path_factory) -> Path:
    """Synthetic chairs (read-only for tests: copy an object before changing it)."""
    return synthetic_chairs(tmp_path_factory.getbasetemp() / "nerf-chairs")


@pytest.fixture(scope="session", name="nerf_run")
def fixture_nerf_run(tmp_path_factory, nerf_data) -> Path:
    """A run folder with a tiny NeRF meta-learner (read-only for tests)."""
    return tiny_nerf_run(tmp_path_factory.getbasetemp() / "nerf-run", nerf_data)


@pytest.fixture(scope="session", name="image_checkpoint")
def fixture_image_checkpoint(tmp_path_factory) -> Path:
    return untrained_image_checkpoint(tmp_path_factory.getbasetemp() / "image-model.safetensors")


@pytest.fixture(scope="session", name="chair")
def fixture_chair(nerf_data) -> Path:
    """One synthetic chair's views folder (the test object)."""
    return object_folders(nerf_data, "chairs", "test")[0]


# --- hand-made views folders ----------------------------------------------------------------


def rigid_pose(azimuth: float = 30.0, elevation: float = 20.0, radius: float = 4.0) -> list:
    from models.nerf.rays import look_at_pose

    return look_at_pose(azimuth, elevation, radius).double().tolist()


def write_views(
    folder: Path,
    sizes: list[tuple[int, int]],
    poses: list | None = None,
    angle: float = CAMERA_ANGLE_X,
    skip_images: tuple[int, ...] = (),
) -> Path:
    """A views folder: frame i is `sizes[i]` = (width, height) RGBA (a grey square on a
    transparent background), with pose `poses[i]` (default: rigid look-at poses)."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for index, (width, height) in enumerate(sizes):
        if index not in skip_images:
            rgba = np.zeros((height, width, 4), dtype=np.uint8)
            rgba[..., :3] = 255
            rgba[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = (90, 60, 30, 255)
            Image.fromarray(rgba, "RGBA").save(folder / f"{index:03d}.png")
        pose = poses[index] if poses is not None else rigid_pose(40.0 * index)
        frames.append({"file_path": f"./rgb/{index:03d}", "transform_matrix": pose})
    (folder / "transforms.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))
    return folder


# --- the command line -----------------------------------------------------------------------

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def stderr_of(result) -> str:
    try:
        return result.stderr
    except ValueError:  # an older click mixes stderr into the output
        return result.output


def stdout_of(result) -> str:
    try:
        return result.stdout
    except ValueError:
        return result.output


def assert_ok(result):
    assert result.exit_code == 0, f"{result.output}\n{stderr_of(result)}\n{result.exception!r}"
    assert result.exception is None, repr(result.exception)
    return result


def json_of(result) -> dict:
    assert_ok(result)
    return json.loads(stdout_of(result))


def assert_fails(result, *needles: str, code: int = 1) -> str:
    """Exit `code` (2: usage error) cleanly: no crash, no traceback, nothing on stdout, one
    `error:` line on stderr naming the problem (every needle, case-insensitive)."""
    assert result.exit_code == code, f"{result.output}\n{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    text = stderr_of(result)
    assert "Traceback" not in result.output and "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    assert stdout_of(result).strip() in ("", text.strip()), stdout_of(result)  # no partial output
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


def listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}
