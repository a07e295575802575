"""The `transinr` command line, end to end on a tiny model, and its handling of bad input.

Every failure must exit 1 (2 for usage errors), print one `error:` line naming the problem,
show no traceback and leave no output (or temporary) file behind.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from support import REPO_ROOT, synthetic_image, write_png
from typer.testing import CliRunner

from models.core.inr import init_weights
from models.core.presets import preset_config
from models.data.image_data import folder_files
from models.io.checkpoint import load_checkpoint
from models.io.inr_file import InrFile, load_inr, save_inr
from models.io.inr_header import NerfHeader
from transinr_cli.app import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def stderr_of(result) -> str:
    """stderr on its own where this typer/click version keeps it apart, else the mixed output."""
    try:
        return result.stderr
    except ValueError:  # older click: stderr mixed into output
        return result.output


def assert_ok(result):
    assert result.exit_code == 0, result.output
    assert result.exception is None, repr(result.exception)
    return result


def json_of(result) -> dict:
    assert_ok(result)
    return json.loads(result.stdout)


def assert_fails(result, *needles: str, code: int = 1) -> str:
    """Exit `code` (2: usage error) cleanly: no crash, no traceback, one `error:` line naming
    the problem (every needle, case-insensitive)."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "Traceback" not in stderr_of(result)
    text = stderr_of(result)
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    text = lines[0]
    for needle in needles:
        assert needle.lower() in text.lower(), text
    return text


def listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """Commands that default to writing in the working folder write into tmp_path."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def run_dir(workspace, image_folder) -> Path:
    run = workspace / "run"
    summary = json_of(
        invoke(
            "train", "--dataset", "folder", "--data", image_folder, "--preset", "tiny",
            "--steps", 4, "--batch-size", 8, "--workers", 0, "--val-images", 8,
            "--device", "cpu", "--out", run, "--quiet", "--json",
        )
    )  # fmt: skip
    assert summary["steps"] == 4
    assert summary["preset"] == "tiny"
    assert summary["run_dir"] == str(run)
    return run


@pytest.fixture(scope="module")
def encoded(workspace, run_dir, image_folder) -> dict:
    """Two images encoded into one folder by one `encode` call."""
    images = [image_folder / "img00.png", image_folder / "img01.png"]
    out = workspace / "encoded"
    result = json_of(invoke("encode", *images, "--model", run_dir, "--out", out, "--json"))
    return {"images": images, "out": out, "json": result}


@pytest.fixture
def inr_path(encoded, tmp_path) -> Path:
    """A private copy of an encoded .inr file."""
    return Path(shutil.copy(encoded["out"] / "img00.inr", tmp_path / "face.inr"))


def png_size(path: Path) -> tuple[int, int, int]:
    """(width, height, bit depth) from a PNG's IHDR."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height, depth = struct.unpack(">IIB", data[16:25])
    return width, height, depth


# --- the happy path -------------------------------------------------------------------------


def test_dry_run_prints_the_paper_parameter_count():
    result = assert_ok(invoke("train", "--task", "image", "--preset", "celeba", "--dry-run"))
    assert "44,462,851" in result.output
    assert "400 data + 259 weight" in result.output


def test_dry_run_json_for_celeba89():
    details = json_of(invoke("train", "--preset", "celeba89", "--dry-run", "--json"))
    assert details["preset"] == "celeba89"
    assert details["config"]["image_size"] == 89
    assert details["parameters"]["total"] == sum(
        v for k, v in details["parameters"].items() if k != "total"
    )


def test_dry_run_with_groups_changes_the_weight_tokens():
    details = json_of(invoke("train", "--preset", "tiny", "--groups", 4, "--dry-run", "--json"))
    assert details["config"]["groups"] == 4
    assert details["parameters"]["weight tokens"] == (4 + 4 + 3) * 64


def test_version():
    assert "transinr" in assert_ok(invoke("--version")).output


def test_train_writes_a_run(run_dir):
    assert (run_dir / "last.safetensors").is_file()
    assert (run_dir / "best.safetensors").is_file()
    checkpoint = load_checkpoint(run_dir / "last.safetensors")
    assert checkpoint.train_state["step"] == 4
    assert checkpoint.config.preset == "tiny"
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]


def test_encode_two_images_into_a_folder(encoded):
    results = encoded["json"]["results"]
    assert [Path(r["image"]).name for r in results] == ["img00.png", "img01.png"]
    assert sorted(p.name for p in encoded["out"].iterdir()) == ["img00.inr", "img01.inr"]
    for entry in results:
        inr = load_inr(entry["inr"])
        assert inr.task == "image"
        assert inr.inr == preset_config("tiny").inr
        assert inr.header.source_image == Path(entry["image"]).name
        assert inr.header.encode_psnr == pytest.approx(entry["psnr"], abs=1e-3)
        assert inr.header.source_model == encoded["json"]["model"]
        assert (inr.header.native_width, inr.header.native_height) == (36, 36)  # 36x40 crop
        assert entry["encode_seconds"] >= 0
    first, second = (load_inr(r["inr"]).weights[0] for r in results)
    assert not torch.equal(first, second)


def test_encode_one_image_to_a_file_with_pad_and_float16(tmp_path, run_dir):
    wide = write_png(tmp_path / "wide.png", synthetic_image(7, 30, 60))
    assert_ok(
        invoke("encode", wide, "--model", run_dir, "-o", "wide.inr", "--fit", "pad",
               "--dtype", "float16", "--quiet")
    )  # fmt: skip
    inr = load_inr(tmp_path / "wide.inr")
    assert inr.weights[0].dtype == torch.float16
    y0, x0, y1, x1 = inr.header.content_box
    assert (x0, x1) == (-1.0, 1.0) and -1 < y0 < y1 < 1
    assert (inr.header.native_width, inr.header.native_height) == (60, 30)
    assert_ok(invoke("render", "wide.inr", "-o", "wide-render.png", "--size", 48, "--quiet"))
    assert png_size(tmp_path / "wide-render.png") == (48, 24, 8)  # native aspect, longer side 48


def test_info_json_of_an_inr_and_a_checkpoint(inr_path, run_dir):
    details = json_of(invoke("info", inr_path, "--json"))
    assert details["format"] == "transinr.inr"
    assert details["task"] == "image"
    assert details["parameters"] == preset_config("tiny").inr.parameter_count()
    assert details["dtype"] == "float32"
    checkpoint = json_of(invoke("info", run_dir / "last.safetensors", "--json"))
    assert checkpoint["format"] == "transinr.checkpoint"
    assert checkpoint["preset"] == "tiny"
    assert checkpoint["step"] == 4
    table = assert_ok(invoke("info", inr_path))
    assert "image" in table.output


def test_render_size_48_of_a_square(tmp_path, inr_path):
    assert_ok(invoke("render", inr_path, "--size", 48, "-o", "out.png", "--quiet"))
    assert png_size(tmp_path / "out.png") == (48, 48, 8)
    with Image.open(tmp_path / "out.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (48, 48, 3) and pixels.std() > 0
    assert listing(tmp_path) == {"face.inr", "out.png"}


def test_render_default_output_name_and_json(tmp_path, inr_path):
    details = json_of(invoke("render", inr_path, "--json", "--quiet"))
    assert details["output"] == "face.png"
    assert (details["width"], details["height"]) == (36, 36)  # the native size
    assert png_size(tmp_path / "face.png") == (36, 36, 8)


def test_render_width_and_height(tmp_path, inr_path):
    assert_ok(invoke("render", inr_path, "--width", 40, "--height", 20, "-o", "wh.png", "-q"))
    assert png_size(tmp_path / "wh.png") == (40, 20, 8)
    assert_ok(invoke("render", inr_path, "--width", 30, "-o", "w.png", "-q"))
    assert png_size(tmp_path / "w.png") == (30, 30, 8)


def test_render_16_bit_matches_8_bit(tmp_path, inr_path):
    assert_ok(invoke("render", inr_path, "--size", 24, "--bit-depth", 16, "-o", "deep.png", "-q"))
    assert_ok(invoke("render", inr_path, "--size", 24, "-o", "flat.png", "-q"))
    assert png_size(tmp_path / "deep.png") == (24, 24, 16)
    data = (tmp_path / "deep.png").read_bytes()
    position, compressed = 8, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        if data[position + 4 : position + 8] == b"IDAT":
            compressed += data[position + 8 : position + 8 + length]
        position += 12 + length
    rows = np.frombuffer(zlib.decompress(compressed), np.uint8).reshape(24, 1 + 24 * 6)
    deep = rows[:, 1:].copy().view(">u2").reshape(24, 24, 3).astype(np.float64)
    flat = np.asarray(Image.open(tmp_path / "flat.png"), dtype=np.float64)
    assert np.abs(deep / 65535 * 255 - flat).max() <= 0.51


def test_render_jpeg(tmp_path, inr_path):
    assert_ok(invoke("render", inr_path, "--size", 32, "-o", "out.jpg", "-q"))
    with Image.open(tmp_path / "out.jpg") as image:
        assert image.format == "JPEG" and image.size == (32, 32)


def test_greyscale_in_greyscale_out(tmp_path, run_dir):
    """A grey picture (L mode, or grey content saved as RGB) renders as a grey PNG / JPEG with
    no colour tint; a colour picture stays RGB."""
    grey = synthetic_image(3).mean(axis=2).astype(np.uint8)  # (H, W)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(tmp_path / "grey-rgb.png")
    write_png(tmp_path / "colour.png", synthetic_image(3))
    for name, mode in (("grey", "L"), ("grey-rgb", "L"), ("colour", "RGB")):
        assert_ok(invoke("encode", f"{name}.png", "--model", run_dir, "-o", f"{name}.inr", "-q"))
        assert load_inr(tmp_path / f"{name}.inr").header.greyscale is (mode == "L")
        for suffix in (".png", ".jpg"):
            assert_ok(
                invoke("render", f"{name}.inr", "--size", 48, "-o", f"out-{name}{suffix}", "-q")
            )
            with Image.open(tmp_path / f"out-{name}{suffix}") as image:
                assert image.mode == mode and image.size == (48, 48)
    assert_ok(invoke("render", "grey.inr", "--bit-depth", 16, "-o", "deep.png", "-q"))
    assert png_size(tmp_path / "deep.png")[2] == 16
    assert (tmp_path / "deep.png").read_bytes()[25] == 0  # IHDR colour type 0: greyscale


def test_render_matches_the_core_renderer(tmp_path, inr_path):
    from models.core.antialias import render_gains
    from models.core.rendering import render_quantized

    inr = load_inr(inr_path)
    assert_ok(invoke("render", inr_path, "--size", 20, "-o", "raw.png", "-q", "--no-antialias"))
    expected = render_quantized(inr.batched(), inr.inr, 20, 20)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "raw.png")), expected)
    # By default, below the native 32 px: the integrated encoding of the 20 px footprint.
    assert_ok(invoke("render", inr_path, "--size", 20, "-o", "out.png", "-q"))
    gains = render_gains(inr.inr, inr.header.input_size, 20, 20)
    assert gains is not None
    smooth = render_quantized(inr.batched(), inr.inr, 20, 20, gains=gains)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), smooth)
    assert not np.array_equal(smooth, expected)
    # At the native size anti-aliasing changes nothing.
    assert_ok(invoke("render", inr_path, "--size", 32, "-o", "a.png", "-q"))
    assert_ok(invoke("render", inr_path, "--size", 32, "-o", "b.png", "-q", "--no-antialias"))
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png"))
    )


def test_refine_writes_a_new_file_and_keeps_the_input(tmp_path, inr_path, image_folder):
    before = inr_path.read_bytes()
    mtime = inr_path.stat().st_mtime_ns
    details = json_of(
        invoke("refine", inr_path, "--image", image_folder / "img00.png", "--steps", 5,
               "--lr", 1e-3, "--json", "--quiet")
    )  # fmt: skip
    refined = tmp_path / "face.refined.inr"
    assert details["output"] == str(refined)
    assert details["steps"] == 5
    assert details["psnr_after"] > details["psnr_before"]
    assert inr_path.read_bytes() == before and inr_path.stat().st_mtime_ns == mtime
    tuned = load_inr(refined)
    assert tuned.header.refine_steps == 5
    assert tuned.header.refined_psnr == pytest.approx(details["psnr_after"], abs=1e-3)
    assert not torch.equal(tuned.weights[0], load_inr(inr_path).weights[0])
    assert listing(tmp_path) == {"face.inr", "face.refined.inr"}


def test_refine_on_continuous_coordinates(tmp_path, inr_path, image_folder):
    details = json_of(
        invoke("refine", inr_path, "--image", image_folder / "img00.png", "--steps", 5,
               "--lr", 1e-3, "--coordinates", "continuous", "--json", "--quiet")
    )  # fmt: skip
    assert details["psnr_after"] > details["psnr_before"]


def test_eval_on_the_folder_val_split(run_dir, image_folder):
    details = json_of(
        invoke("eval", "--model", run_dir, "--dataset", "folder", "--data", image_folder,
               "--split", "val", "--refine-steps", 2, "--workers", 0, "--json", "--quiet")
    )  # fmt: skip
    assert details["images"] == len(folder_files(image_folder, "val")) > 0
    assert details["split"] == "val" and details["refine_steps"] == 2
    assert 0 < details["psnr"] < 100
    assert 0 < details["psnr_refined"] < 100
    assert details["model"].startswith("tiny-")


def test_train_resume_continues_the_run(tmp_path, run_dir, image_folder):
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    summary = json_of(
        invoke("train", "--resume", "--out", run, "--dataset", "folder", "--data", image_folder,
               "--steps", 6, "--workers", 0, "--device", "cpu", "--quiet", "--json")
    )  # fmt: skip
    assert summary["steps"] == 6
    checkpoint = load_checkpoint(run / "last.safetensors")
    assert checkpoint.train_state["step"] == 6
    assert checkpoint.train_state["train_config"]["batch_size"] == 8  # kept from the run


# --- bad input ------------------------------------------------------------------------------


@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def assert_empty(folder: Path):
    assert listing(folder) == set(), f"left behind: {listing(folder)}"


def test_encode_missing_image(out_dir, run_dir):
    result = invoke("encode", "missing.png", "--model", run_dir, "-o", out_dir / "x.inr")
    assert_fails(result, "missing.png", "not found")
    assert_empty(out_dir)


def test_encode_a_text_file(tmp_path, out_dir, run_dir):
    (tmp_path / "notes.png").write_text("hello, not an image\n")
    result = invoke("encode", "notes.png", "--model", run_dir, "-o", out_dir / "notes.inr")
    assert_fails(result, "notes.png", "not an image")
    assert_empty(out_dir)


def test_eval_without_model_is_a_usage_error(image_folder):
    # encode falls back to the bundled model (tests/test_bundled.py); eval names what it scores
    result = invoke("eval", "--dataset", "folder", "--data", image_folder)
    assert_fails(result, "--model", code=2)


def test_encode_with_an_inr_as_model(out_dir, inr_path, image_folder):
    result = invoke("encode", image_folder / "img00.png", "--model", inr_path, "-o", out_dir)
    assert_fails(result, ".inr file", "checkpoint")
    assert_empty(out_dir)


def test_encode_same_named_images_does_not_lose_one(tmp_path, run_dir):
    first = write_png(tmp_path / "a" / "cover.png", synthetic_image(1))
    second = write_png(tmp_path / "b" / "cover.png", synthetic_image(2))
    result = invoke("encode", first, second, "--model", run_dir, "-o", tmp_path / "out", "-q")
    written = list((tmp_path / "out").glob("*.inr")) if (tmp_path / "out").is_dir() else []
    # Either refuse (exit 1, nothing written) or write two distinct files: never overwrite.
    if result.exit_code == 0:
        assert len(written) == 2, f"two images, {len(written)} file(s): {written}"
    else:
        assert_fails(result, "cover")
        assert written == []


def test_render_truncated_inr(tmp_path, inr_path, out_dir):
    data = inr_path.read_bytes()
    for cut in (5, 100, len(data) // 2, len(data) - 1):
        broken = tmp_path / f"cut{cut}.inr"
        broken.write_bytes(data[:cut])
        assert_fails(invoke("render", broken, "-o", out_dir / "out.png"), broken.name)
        assert_fails(invoke("info", broken), broken.name)
    assert_empty(out_dir)


@pytest.fixture
def foreign(tmp_path) -> Path:
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.randn(3, 3)}, str(path))
    return path


def test_render_and_info_refuse_a_foreign_safetensors_file(foreign, out_dir):
    assert_fails(invoke("render", foreign, "-o", out_dir / "out.png"), "not a transinr")
    assert_fails(invoke("info", foreign), "not a transinr")
    assert_empty(out_dir)


def rewrite_metadata(path: Path, **changes) -> Path:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"].update(changes)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])
    return path


def test_render_and_info_refuse_a_newer_format_version(inr_path, out_dir, image_folder):
    rewrite_metadata(inr_path, format_version="999")
    assert_fails(invoke("render", inr_path, "-o", out_dir / "out.png"), "version 999", "upgrade")
    assert_fails(invoke("info", inr_path), "version 999")
    refine = invoke("refine", inr_path, "--image", image_folder / "img00.png", "--steps", 1,
                    "-o", out_dir / "r.inr")  # fmt: skip
    assert_fails(refine, "version 999")
    assert_empty(out_dir)


@pytest.fixture
def nerf_inr(tmp_path) -> Path:
    config = preset_config("tiny").inr
    path = tmp_path / "chair.inr"
    save_inr(
        InrFile(
            [w[0] for w in init_weights(config)],
            config,
            "nerf",
            NerfHeader(near=2.0, far=6.0, focal=40.0),
        ),
        path,
    )
    return path


def test_render_and_refine_refuse_a_nerf_inr(nerf_inr, out_dir, image_folder, tmp_path):
    assert_fails(invoke("render", nerf_inr, "-o", out_dir / "chair.png"), "nerf")
    result = invoke("refine", nerf_inr, "--image", image_folder / "img00.png", "--steps", 1)
    assert_fails(result, "nerf")
    assert_empty(out_dir)
    assert not (tmp_path / "chair.refined.inr").exists()
    assert not list(tmp_path.glob(".chair*"))


def test_unknown_preset():
    assert_fails(invoke("train", "--preset", "nope", "--dry-run"), "nope", "preset")


@pytest.mark.parametrize("size", [0, -5, 16385])
def test_render_size_out_of_range(inr_path, out_dir, size):
    result = invoke("render", inr_path, "--size", size, "-o", out_dir / "out.png")
    assert_fails(result, "--size", str(size))
    assert_empty(out_dir)


@pytest.mark.parametrize(
    "option", [("--width", 0), ("--height", 16385), ("--width", -1, "--height", 8)]
)
def test_render_width_height_out_of_range(inr_path, out_dir, option):
    assert_fails(invoke("render", inr_path, *option, "-o", out_dir / "out.png"), option[0])
    assert_empty(out_dir)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (("--bit-depth", 12, "-o", "out/x.png"), "bit-depth"),
        (("--bit-depth", 16, "-o", "out/x.jpg"), "16-bit"),
        (("-o", "out/x.gif"), ".gif"),
    ],
)
def test_render_bad_output_options(inr_path, out_dir, options, needle):
    assert_fails(invoke("render", inr_path, *options), needle)
    assert_empty(out_dir)


def test_render_a_checkpoint_as_inr(run_dir, out_dir):
    result = invoke("render", run_dir / "last.safetensors", "-o", out_dir / "out.png")
    assert_fails(result, "last.safetensors", ".inr")
    assert_empty(out_dir)


@pytest.mark.parametrize(
    ("change", "options"),
    [
        ({"native_width": 0}, ("--width", 10)),
        ({"content_box": [0, 1]}, ()),
        ({"native_height": "tall"}, ()),
        ({"native_width": 20000, "native_height": 1}, ()),  # default size over the 16384 limit
    ],
    ids=["zero-width", "short-box", "text-height", "huge-native-size"],
)
def test_render_inr_with_broken_info(inr_path, out_dir, change, options):
    # The tensors are valid but the descriptive info is not: still a clean one-line error.
    data = inr_path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    info = json.loads(json.loads(data[8 : 8 + size])["__metadata__"]["transinr"])
    rewrite_metadata(inr_path, transinr=json.dumps({**info, **change}))
    result = invoke("render", inr_path, *options, "-o", out_dir / "out.png", "--quiet")
    assert_fails(result)
    assert_empty(out_dir)


def test_refine_missing_image_writes_nothing(inr_path, tmp_path):
    before = inr_path.read_bytes()
    assert_fails(invoke("refine", inr_path, "--image", "gone.png", "--steps", 1), "gone.png")
    assert listing(tmp_path) == {"face.inr"}
    assert inr_path.read_bytes() == before


def test_train_resume_with_another_preset(tmp_path, run_dir, image_folder):
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = invoke(
        "train", "--resume", "--out", run, "--preset", "celeba89", "--dataset", "folder",
        "--data", image_folder, "--steps", 6, "--workers", 0, "--quiet",
    )  # fmt: skip
    assert_fails(result, "tiny", "celeba89")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_train_resume_without_a_run(tmp_path, image_folder):
    result = invoke("train", "--resume", "--out", tmp_path / "empty", "--dataset", "folder",
                    "--data", image_folder, "--quiet")  # fmt: skip
    assert_fails(result, "resume")
    assert not (tmp_path / "empty").exists()


def test_train_into_an_existing_run_is_refused(tmp_path, run_dir, image_folder):
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = invoke("train", "--out", run, "--preset", "tiny", "--dataset", "folder",
                    "--data", image_folder, "--steps", 2, "--workers", 0, "--quiet")  # fmt: skip
    assert_fails(result, "already holds a run")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_train_usage_errors(tmp_path):
    assert_fails(invoke("train", "--preset", "tiny", "--out", tmp_path / "r"), "--data", code=2)
    assert_fails(invoke("train", "--task", "video", "--dry-run"), "--task", code=2)
    assert_fails(invoke("train", "--dataset", "mnist", "--dry-run"), "--dataset", code=2)
    assert not (tmp_path / "r").exists()


def test_eval_missing_data(run_dir, tmp_path):
    result = invoke("eval", "--model", run_dir, "--dataset", "folder", "--data",
                    tmp_path / "nowhere", "--workers", 0)  # fmt: skip
    assert_fails(result, "nowhere")


def test_eval_missing_model(image_folder, tmp_path):
    result = invoke("eval", "--model", tmp_path / "nomodel", "--dataset", "folder",
                    "--data", image_folder, "--workers", 0)  # fmt: skip
    assert_fails(result, "nomodel", "not found")


def test_info_missing_file():
    assert_fails(invoke("info", "nothing.inr"), "nothing.inr", "not found")


def test_encode_truncated_image(tmp_path, out_dir, run_dir):
    buffer = io.BytesIO()
    Image.fromarray(synthetic_image(3)).save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:200])
    result = invoke("encode", "cut.jpg", "--model", run_dir, "-o", out_dir / "cut.inr")
    assert_fails(result, "cut.jpg")
    assert_empty(out_dir)


def test_train_upscale_fine_tune_and_eval_upscaling(tmp_path, run_dir, image_folder):
    # A learned upscale (encode 16 px, score at 32), fine-tuned from the module's run.
    run = tmp_path / "up"
    summary = json_of(
        invoke("train", "--dataset", "folder", "--data", image_folder, "--preset", "tiny",
               "--steps", 2, "--batch-size", 8, "--workers", 0, "--val-images", 8,
               "--input-size", 16, "--coordinates", "grid", "--init-from", run_dir,
               "--device", "cpu", "--out", run, "--quiet", "--json")
    )  # fmt: skip
    assert summary["steps"] == 2
    saved = load_checkpoint(run / "last.safetensors").train_state["train_config"]
    assert (saved["input_size"], saved["coordinates"]) == (16, "grid")
    assert saved["init_from"] == str(run_dir)
    details = json_of(
        invoke("eval", "--model", run, "--dataset", "folder", "--data", image_folder,
               "--split", "val", "--input-size", 16, "--baseline", "--workers", 0, "--json")
    )  # fmt: skip
    assert details["input_size"] == 16
    assert 0 < details["psnr"] < 100 and 10 < details["baseline_psnr"] < 100


def test_train_upscale_and_fine_tune_bad_options(tmp_path, run_dir, image_folder):
    common = ("--dataset", "folder", "--data", image_folder, "--preset", "tiny", "--steps", 1,
              "--workers", 0, "--quiet", "--out", tmp_path / "r")  # fmt: skip
    assert_fails(invoke("train", *common, "--input-size", 64), "--input-size 64", "32")
    assert_fails(invoke("train", *common, "--init-from", tmp_path / "nope"), "not found")
    bundled = REPO_ROOT / "assets" / "models" / "image-celeba89.safetensors"
    assert_fails(invoke("train", *common, "--init-from", bundled), "init-from", "same preset")
    assert_fails(
        invoke("train", "--task", "nerf", "--preset", "tiny", "--input-size", 16, "--dry-run"),
        "--task image",
    )
    assert_fails(
        invoke("train", "--task", "nerf", "--preset", "tiny", "--flat-weight", 5, "--dry-run"),
        "--task image",
    )
    assert_fails(invoke("train", *common, "--flat-weight", 0), "--flat-weight 0", "above 0")
    assert_fails(invoke("train", *common, "--clip-grad", "nan"), "--clip-grad nan", "above 0")
    assert_fails(
        invoke("train", "--resume", "--out", run_dir, "--input-size", 16, "--dataset", "folder",
               "--data", image_folder, "--quiet"),
        "fixed by the checkpoint",
    )  # fmt: skip
    assert_fails(
        invoke("eval", "--model", run_dir, "--dataset", "folder", "--data", image_folder,
               "--input-size", 16, "--refine-steps", 2),
        "--refine-steps",
    )  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_encode_and_refine_in_one_go(tmp_path, run_dir, image_folder):
    images = [image_folder / "img00.png", image_folder / "img01.png"]
    details = json_of(
        invoke("encode", *images, "--model", run_dir, "-o", tmp_path / "out", "--refine-steps",
               10, "--json")
    )  # fmt: skip
    for result in details["results"]:
        assert result["refined_psnr"] > result["psnr"]
        assert result["refine_seconds"] > 0
        header = load_inr(result["inr"]).header
        assert header.refine_steps == 10 and header.refine_schedule == "constant"
        assert header.psnr_before_refine == result["psnr"] == header.encode_psnr
    # The text output labels the PSNR with what it was measured on.
    result = assert_ok(
        invoke("encode", images[0], "--model", run_dir, "-o", tmp_path / "one.inr",
               "--refine-steps", 3)
    )  # fmt: skip
    assert "after 3 refinement steps" in result.stdout and "(on the 32x32 crop)" in result.stdout
    bad = invoke("encode", images[0], "--model", run_dir, "-o", tmp_path / "x.inr",
                 "--refine-steps", 3, "--refine-lr", "nan")  # fmt: skip
    assert_fails(bad, "--lr nan")
    assert not (tmp_path / "x.inr").exists()


def test_encode_says_what_it_cropped(tmp_path, run_dir, image_folder):
    # The folder's images are 40 x 36: a centre crop leaves columns out, and encode says so.
    result = assert_ok(
        invoke("encode", image_folder / "img00.png", "--model", run_dir, "-o", tmp_path / "a.inr")
    )
    assert "note:" in stderr_of(result) and "36x36 crop of the 40x36 image" in stderr_of(result)
    assert load_inr(tmp_path / "a.inr").header.input_region.startswith("the centre 36x36")
    result = assert_ok(
        invoke("encode", image_folder / "img00.png", "--model", run_dir, "-o", tmp_path / "b.inr",
               "--fit", "pad")
    )  # fmt: skip
    assert "note:" not in stderr_of(result)


def test_refine_never_leaves_a_worse_file(tmp_path, inr_path, image_folder):
    # lr 10 diverges: the written file keeps the best weights seen (here: the input's).
    result = assert_ok(
        invoke("refine", inr_path, "--image", image_folder / "img00.png", "--steps", 10,
               "--lr", 10, "-o", tmp_path / "wild.inr", "--json")
    )  # fmt: skip
    details = json.loads(result.stdout)
    assert details["psnr_after"] >= details["psnr_before"]
    assert "warning:" in stderr_of(result) and "lower --lr" in stderr_of(result)
    assert load_inr(tmp_path / "wild.inr").header.refined_psnr >= details["psnr_before"] - 1e-3


def test_refine_warns_about_another_image(tmp_path, inr_path, image_folder):
    other = write_png(tmp_path / "other.png", synthetic_image(99, 50, 20))
    result = assert_ok(
        invoke("refine", inr_path, "--image", other, "--steps", 2, "-o", tmp_path / "o.inr")
    )
    assert "20x50" in stderr_of(result) and "encoded from a 40x36" in stderr_of(result)


def train_two_steps(run: Path, image_folder: Path, method: str) -> Path:
    """Two training steps of the `tiny` preset with `method` through the CLI; the run folder."""
    summary = json_of(
        invoke("train", "--dataset", "folder", "--data", image_folder, "--preset", "tiny",
               "--method", method, "--steps", 2, "--batch-size", 8, "--workers", 0,
               "--val-images", 8, "--device", "cpu", "--out", run, "--quiet", "--json")
    )  # fmt: skip
    assert summary["steps"] == 2
    assert load_checkpoint(run / "last.safetensors").config.method == method
    return run


def test_ipc_trains_encodes_renders_and_refines_like_trans_inr(tmp_path, image_folder):
    run = train_two_steps(tmp_path / "ipc", image_folder, "ipc")
    image = image_folder / "img00.png"
    json_of(invoke("encode", image, "--model", run, "-o", tmp_path / "a.inr", "--json",
                   "--refine-steps", 2))  # fmt: skip
    assert_ok(invoke("render", tmp_path / "a.inr", "--size", 64, "-o", tmp_path / "a.png", "-q"))
    assert_ok(invoke("attention", image, "--model", run, "-o", tmp_path / "att.png", "-q"))
    assert (tmp_path / "att.png").stat().st_size > 0


def test_spatial_trains_encodes_renders_refines_exports_and_refuses_attention(
    tmp_path, image_folder
):
    run = train_two_steps(tmp_path / "spatial", image_folder, "spatial")
    image = image_folder / "img00.png"
    encoded = json_of(invoke("encode", image, "--model", run, "-o", tmp_path / "a.inr", "--json",
                             "--refine-steps", 2))  # fmt: skip
    assert encoded
    inr_file = load_inr(tmp_path / "a.inr")
    assert inr_file.inr.shift_grid == 12 and inr_file.weights[-1].shape == (144, 32)
    assert_ok(invoke("render", tmp_path / "a.inr", "--size", 64, "-o", tmp_path / "a.png", "-q"))
    assert Image.open(tmp_path / "a.png").size == (64, 64)
    assert_ok(invoke("refine", tmp_path / "a.inr", "--image", image, "--steps", 2,
                     "-o", tmp_path / "b.inr", "-q"))  # fmt: skip
    assert load_inr(tmp_path / "b.inr").weights[-1].shape == (144, 32)
    formats = ("html", "onnx") if importlib.util.find_spec("onnx") else ("html",)
    for fmt in formats:  # the grid goes into the page's texture and into the ONNX graph
        assert_ok(invoke("export", tmp_path / "a.inr", "-o", tmp_path / f"a.{fmt}", "-q"))
        assert (tmp_path / f"a.{fmt}").stat().st_size > 0
    result = invoke("attention", image, "--model", run, "-o", tmp_path / "att.png")
    assert result.exit_code != 0 and "spatial" in stderr_of(result)
    assert "Traceback" not in stderr_of(result)
    assert not (tmp_path / "att.png").exists()
