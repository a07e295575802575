"""Issue 15's "CLI frictions" list, one test (or two) per item, each docstring quoting it.

The item "`--help` and usage errors do not import torch" is tested in tests/test_startup.py
(a fresh interpreter per case); it is not repeated here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import REPO_ROOT, synthetic_image, write_png
from test_cli import assert_fails, assert_ok, invoke, json_of, listing, runner, stderr_of

from models.api import evaluate, load_model
from transinr_cli.app import app

NERF_MODEL = REPO_ROOT / "assets" / "models" / "nerf-chairs.safetensors"
PHOTOS = ("a.png", "b.png", "sub/c.png", "sub/deeper/d.png")


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """Commands that default to writing in the working folder write into tmp_path."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four small RGB PNGs, two of them in subfolders (read-only: copy before changing)."""
    root = tmp_path_factory.mktemp("photos")
    for seed, name in enumerate(PHOTOS):
        write_png(root / name, synthetic_image(seed))
    return root


@pytest.fixture(scope="module")
def photo_inr(tmp_path_factory, photos, tiny_run) -> Path:
    """An image .inr file encoded by the tiny model."""
    out = tmp_path_factory.mktemp("inr") / "a.inr"
    assert_ok(invoke("encode", photos / "a.png", "--model", tiny_run, "-o", out, "-q"))
    return out


def nonblank(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --- encode a folder; eval --split all ------------------------------------------------------


def test_encode_a_folder_mirrors_it_with_a_progress_bar(tmp_path, photos, tiny_run):
    """Friction: "`transinr encode DIR -o OUTDIR` encodes every image in a folder recursively
    (subfolders mirrored in OUTDIR), with a progress bar (not shown under -q)"."""
    shown = assert_ok(invoke("encode", photos, "--model", tiny_run, "-o", tmp_path / "out"))
    expected = {name.replace(".png", ".inr") for name in PHOTOS}
    assert {p for p in listing(tmp_path / "out") if p.endswith(".inr")} == expected
    assert "encode" in stderr_of(shown) and "4/4" in stderr_of(shown)  # the bar, at its end
    quiet = assert_ok(invoke("encode", photos, "--model", tiny_run, "-o", tmp_path / "q", "-q"))
    assert stderr_of(quiet).strip() == ""  # no bar
    assert len(nonblank(quiet.stdout)) == len(PHOTOS)  # one result line per image still
    assert {p for p in listing(tmp_path / "q") if p.endswith(".inr")} == expected


def test_eval_a_folder_on_all_its_images(photos, tiny_run):
    """Friction: "`transinr encode DIR -o OUTDIR` ...; and `eval --dataset folder --split all`":
    every image of the folder is scored, not its 80/10/10 split (from the CLI and api.evaluate).
    """
    common = ("eval", "--model", tiny_run, "--dataset", "folder", "--data", photos,
              "--workers", 0, "--json", "-q")  # fmt: skip
    everything = json_of(invoke(*common, "--split", "all"))
    assert everything["split"] == "all" and everything["images"] == len(PHOTOS)
    assert 0 < everything["psnr"] < 100
    assert json_of(invoke(*common, "--split", "test"))["images"] < len(PHOTOS)
    model = load_model(tiny_run, device="cpu")
    scored = evaluate(model, photos, dataset="folder", split="all", workers=0)
    assert scored.images == len(PHOTOS)
    assert scored.psnr == pytest.approx(everything["psnr"], abs=1e-4)


def test_eval_split_all_is_refused_for_a_nerf_model(photos):
    """`--split all` is for image data sets; a NeRF model is refused with the splits it takes."""
    result = invoke("eval", "--task", "nerf", "--model", NERF_MODEL, "--data", photos,
                    "--split", "all", "--device", "cpu")  # fmt: skip
    assert_fails(result, "--split all", "--split train, val or test")


# --- output names ----------------------------------------------------------------------------


def test_several_inputs_to_an_inr_file_and_an_image_output_are_refused(tmp_path, photos, tiny_run):
    """Friction: "`encode a.png b.png -o two.inr` must not create a folder named `two.inr`
    (error: "several inputs need an output folder ... use -o two/"); `-o face.png` for encode is
    refused with the fix (name it .inr)"."""
    a, b = photos / "a.png", photos / "b.png"
    two = invoke("encode", a, b, "--model", tiny_run, "-o", "two.inr")
    assert_fails(two, "several inputs need an output folder", "use -o two/")
    face = invoke("encode", a, "--model", tiny_run, "-o", "face.png")
    assert_fails(face, "name it face.inr")
    assert listing(tmp_path) == set()  # no two.inr folder, no face.png


# --- photos given where an .inr is expected --------------------------------------------------


@pytest.mark.parametrize("command", ["render", "info"])
def test_a_photo_given_as_inr_is_not_an_inr_file(command, tmp_path, photos):
    """Friction: "`render photo.png` / `info photo.png` say "not an .inr file" (not a
    safetensors header error)"."""
    photo = Path(shutil.copy(photos / "a.png", tmp_path / "photo.png"))
    text = assert_fails(invoke(command, photo), "photo.png is not an .inr file", "transinr encode")
    assert "safetensors" not in text and "header" not in text
    assert listing(tmp_path) == {"photo.png"}


# --- --json errors ---------------------------------------------------------------------------


def json_error(result, code: int) -> dict:
    """The error of a --json run: a JSON object on stdout, nothing on stderr, exit `code`."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert stderr_of(result).strip() == ""
    error = json.loads(result.stdout)
    assert set(error) == {"error", "hint"}
    return error


def test_json_errors_are_json_and_exit_non_zero(tmp_path, photos, tiny_run):
    """Friction: "With `--json`, errors are JSON too (`{"error": ..., "hint": ...}`) and the exit
    code stays non-zero": on stdout, for a bad file, a core error and a usage error."""
    bad_file = json_error(invoke("info", photos / "a.png", "--json"), 1)
    assert "not an .inr file" in bad_file["error"] and "transinr encode" in bad_file["hint"]
    (tmp_path / "empty").mkdir()
    core = invoke("eval", "--model", tiny_run, "--dataset", "folder", "--data", tmp_path / "empty",
                  "--split", "all", "--workers", 0, "--json")  # fmt: skip
    assert "no images found" in json_error(core, 1)["error"]  # raised in models/data
    usage = json_error(invoke("render", "x.inr", "--no-such-option", "--json"), 2)
    assert "--no-such-option" in usage["error"] and "--help" in usage["hint"]


# --- result lines ----------------------------------------------------------------------------


def test_result_lines_never_wrap(tmp_path, photos, tiny_run):
    """Friction: "Result lines never wrap": with a path far longer than a 40-column terminal,
    the line naming it is one line (encode's result line, info's title)."""
    target = tmp_path / ("a-rather-long-folder-name-" * 3) / "and-a-long-file-name.inr"
    env = {"COLUMNS": "40"}
    args = ["encode", str(photos / "a.png"), "--model", str(tiny_run), "-o", str(target)]
    encoded = assert_ok(runner.invoke(app, args, env=env))
    lines = [line for line in encoded.stdout.splitlines() if str(target) in line]
    assert len(lines) == 1 and " -> " in lines[0] and "PSNR" in lines[0]
    assert len(nonblank(encoded.stdout)) == 1
    shown = assert_ok(runner.invoke(app, ["info", str(target)], env=env))
    assert str(target) in shown.stdout.splitlines()
    odd = Path(shutil.copy(photos / "a.png", tmp_path / "new\nline.png"))  # a newline in a name
    result = assert_ok(invoke("encode", odd, "--model", tiny_run, "-o", tmp_path / "odd.inr", "-q"))
    assert nonblank(result.stdout) == [result.stdout.strip()]
    assert result.stdout.startswith(f"{tmp_path}/new\\nline.png -> ")  # escaped, one line


def test_quiet_silences_progress_only(tmp_path, photo_inr):
    """Friction: "`-q` silences progress only: result lines are still printed under -q"."""
    out = tmp_path / "out.png"
    loud = assert_ok(invoke("render", photo_inr, "--size", 64, "-o", tmp_path / "loud.png"))
    assert "render" in stderr_of(loud)  # the progress bar
    quiet = assert_ok(invoke("render", photo_inr, "--size", 64, "-o", out, "-q"))
    assert stderr_of(quiet).strip() == ""
    assert len(nonblank(quiet.stdout)) == 1  # the result line, whole
    assert nonblank(quiet.stdout)[0].startswith(f"{photo_inr} -> {out}  64x64  ")


# --- options that do not apply ---------------------------------------------------------------


def test_options_that_do_not_apply_are_refused(tmp_path, photo_inr):
    """Friction: "Options that do not apply are refused, not ignored: `render IMAGE.inr
    --azimuth 30` (error says they are for NeRF .inr files), `render --size 64 --width 30`
    refused"."""
    nerf_only = invoke("render", photo_inr, "--azimuth", 30, "-o", "a.png")
    assert_fails(nerf_only, "--azimuth", "for NeRF .inr files", "drop them")
    both = invoke("render", photo_inr, "--size", 64, "--width", 30, "-o", "b.png")
    assert_fails(both, "--size", "not both")
    assert listing(tmp_path) == set()


# --- greyscale -------------------------------------------------------------------------------


def test_greyscale_in_greyscale_out(tmp_path, tiny_run):
    """Friction: "Greyscale in, greyscale out: encode a greyscale PNG (mode L), render it": the
    output PNG is a one-channel greyscale PNG (mode L), not RGB."""
    grey = synthetic_image(7).mean(axis=2).astype(np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    assert_ok(invoke("encode", "grey.png", "--model", tiny_run, "-o", "grey.inr", "-q"))
    assert_ok(invoke("render", "grey.inr", "--size", 40, "-o", "out.png", "-q"))
    with Image.open(tmp_path / "out.png") as image:
        assert image.mode == "L" and image.size == (40, 40)
        assert np.asarray(image).std() > 0  # a picture, not a flat fill
