"""Fuzz the posed-view files a user hands us (issue 18), as test_fuzz_files.py fuzzes `.inr` files:
a real views folder's transforms.json and a real data root's split file, mutated: JSON edits
anywhere (junk of every JSON type, deep nesting, giant integers, NaN), hostile file paths and
object ids (absolute, `..`, control characters, surrogates, 300-byte names), frames added,
dropped or duplicated, byte edits of the text, and images replaced (junk, a decompression
bomb's header, another size, a symlink out of the folder).

Every outcome is a correct read (views that are finite, square, in [0, 1], with rigid poses
and a focal length a NeRF header accepts) or a one-line TransInrError; never another exception,
never a hang (a per-example deadline, and a watchdog that aborts the run), never a large
allocation (the peak resident memory of each example stays under MEMORY_SLACK). A few examples
go through `transinr encode` too (one `error:` line, no output file).

Derandomized, no example database: the same examples on every run. TRANSINR_FUZZ_EXAMPLES=N
scales the budgets (test_fuzz_files.py's setting).
"""

from __future__ import annotations

import faulthandler
import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from reliability_support import invoke, lines_of, png_bytes, png_claiming, stderr_of
from test_fuzz_files import MEMORY, RAW, RAW_TAG, dumps, fuzz_settings, junk, walk

from models.data.view_data import ViewDataset, load_views
from models.errors import TransInrError
from models.io.inr_header import NerfHeader
from models.nerf.rays import look_at_pose

MEMORY_SLACK = 200 << 20  # bytes one example may grow the process by
WATCHDOG_S = 240
ANGLE = 0.6911112070083618

HOSTILE_TEXT = [
    "", ".", "..", "/", "/etc/passwd", "../../etc/passwd", "a/../../b", "C:\\x", "\\\\server\\x",
    "a\x00b", "\x1b[31mred", "\x1b]0;title\x07", "line\nbreak", "\r", "\u202egnp.exe", "\ud800",
    "\udcff", "a" * 300, "./rgb/" + "é" * 200, "~", "$HOME", "%s%n", "000", "000.png", "001",
    "./rgb/002", "nul", "con", " ", "-rf",
]  # fmt: skip
texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=20))


@pytest.fixture
def tally():
    counts: Counter = Counter()
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    yield counts
    faulthandler.cancel_dump_traceback_later()
    print(f"\nfuzz outcomes: {dict(counts)}")


def write_object(folder: Path, views: int = 3, side: int = 16) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for index in range(views):
        rgba = np.zeros((side, side, 4), dtype=np.uint8)
        rgba[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = (90, 60 + index, 30, 255)
        (folder / f"{index:03d}.png").write_bytes(png_bytes(rgba))
        matrix = look_at_pose(100.0 * index, 20.0, 4.0).double().tolist()
        frames.append({"file_path": f"./rgb/{index:03d}", "transform_matrix": matrix})
    (folder / "transforms.json").write_text(json.dumps({"camera_angle_x": ANGLE, "frames": frames}))


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> Path:
    """A views folder and a data root (3 chairs of 3 views), read-only."""
    base = tmp_path_factory.mktemp("fuzz-views")
    write_object(base / "object")
    for name in ("a", "b", "c"):
        write_object(base / "root" / "chairs" / name)
    splits = {"train": ["a", "b", "c"], "val": [], "test": ["a", "b", "c"]}
    (base / "root" / "chair_splits.json").write_text(json.dumps(splits))
    return base


# --- mutations ------------------------------------------------------------------------------

numbers = st.one_of(  # odd numbers: NaN, infinities, huge, tiny, 400 digits, JSON's raw texts
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e-300, 1e300, 10**30, 2**63, True, None]),
    st.sampled_from([RAW_TAG.format(index) for index in range(len(RAW))]),
)
json_edits = st.one_of(
    st.tuples(st.just("angle"), st.one_of(numbers, junk)),
    st.tuples(st.just("junk"), st.lists(st.integers(0, 99), max_size=4), junk),
    st.tuples(st.just("text"), st.lists(st.integers(0, 99), max_size=4), texts),
    st.tuples(st.just("file_path"), st.integers(0, 9), texts),
    st.tuples(st.just("matrix"), st.integers(0, 9), st.integers(0, 15), st.one_of(numbers, junk)),
    st.tuples(st.just("translate"), st.integers(0, 9), st.sampled_from([0.0, 1e-3, 0.5, 1e3, 1e6,
                                                                         -4.0, 1e300])),
    st.tuples(st.just("frames"), st.sampled_from(["drop", "duplicate", "many", "none"])),
    st.tuples(st.just("drop"), st.lists(st.integers(0, 99), min_size=1, max_size=3)),
)  # fmt: skip


def apply_json_edit(data, edit):
    kind = edit[0]
    frames = data.get("frames") if isinstance(data, dict) else None
    frames = frames if isinstance(frames, list) and frames else None
    if kind == "angle" and isinstance(data, dict):
        data["camera_angle_x"] = edit[1]
    elif kind in ("junk", "text"):
        spot = walk(data, edit[1])
        if spot is None:
            return edit[2]
        spot[0][spot[1]] = edit[2]
    elif kind == "file_path" and frames and isinstance(frames[edit[1] % len(frames)], dict):
        frames[edit[1] % len(frames)]["file_path"] = edit[2]
    elif kind in ("matrix", "translate") and frames:
        matrix = frames[edit[1] % len(frames)]
        matrix = matrix.get("transform_matrix") if isinstance(matrix, dict) else None
        if (
            isinstance(matrix, list)
            and len(matrix) == 4
            and all(isinstance(row, list) and len(row) == 4 for row in matrix)
        ):
            if kind == "matrix":
                matrix[edit[2] // 4][edit[2] % 4] = edit[3]
            else:
                matrix[2][3] = edit[2]  # the camera's height: at, near or far from the object
    elif kind == "frames" and frames:
        how = edit[1]
        data["frames"] = {"drop": frames[:1], "duplicate": frames + frames,
                          "many": frames[:1] * 10_001, "none": []}[how]  # fmt: skip
    elif kind == "drop":
        spot = walk(data, edit[1])
        if spot is not None:
            del spot[0][spot[1]]
    return data


byte_edits = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 4000)),
    st.tuples(st.just("flip"), st.integers(0, 4000), st.integers(0, 7)),
    st.tuples(st.just("raw"), st.integers(0, len(RAW) - 1)),
)


def apply_byte_edit(text: bytes, edit) -> bytes:
    if edit[0] == "truncate":
        return text[: edit[1]]
    if edit[0] == "flip" and text:
        data = bytearray(text)
        data[edit[1] % len(data)] ^= 1 << edit[2]
        return bytes(data)
    return RAW[edit[1]].encode()


file_edits = st.one_of(
    st.tuples(st.just("junk"), st.integers(0, 2), st.binary(max_size=64)),
    st.tuples(st.just("bomb"), st.integers(0, 2), st.sampled_from([(1, 100_000_000),
                                                                   (30_000, 30_000), (0, 5)])),
    st.tuples(st.just("size"), st.integers(0, 2), st.sampled_from([(8, 8), (20, 16), (1, 1)])),
    st.tuples(st.just("link-out"), st.integers(0, 2)),
    st.tuples(st.just("folder"), st.integers(0, 2)),
    st.tuples(st.just("remove"), st.integers(0, 2)),
)  # fmt: skip


def apply_file_edit(folder: Path, edit) -> None:
    path = folder / f"{edit[1]:03d}.png"
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    kind = edit[0]
    if kind == "junk":
        path.write_bytes(edit[2])
    elif kind == "bomb":
        path.write_bytes(png_claiming(*edit[2]))
    elif kind == "size":
        path.write_bytes(png_bytes(np.full((edit[2][1], edit[2][0], 3), 128, np.uint8)))
    elif kind == "link-out":
        outside = folder.parent / "outside.png"
        Image.new("RGB", (16, 16), (1, 2, 3)).save(outside)
        path.symlink_to(outside.resolve())
    elif kind == "folder":
        path.mkdir()


def mutated_folder(original: Path, target: Path, edits, raw_edits, files) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(original, target, symlinks=True)
    data = json.loads((target / "transforms.json").read_text())
    for edit in edits:
        data = apply_json_edit(data, edit)
    text = dumps(data).encode("utf-8", "surrogatepass")
    for edit in raw_edits:
        text = apply_byte_edit(text, edit)
    (target / "transforms.json").write_bytes(text)
    for edit in files:
        apply_file_edit(target, edit)
    return target


# --- the checks -----------------------------------------------------------------------------


def check_posed(posed) -> None:
    """Views that a NeRF can be encoded from, and whose file a reader accepts."""
    images, poses = posed.images, posed.poses
    assert images.dim() == 4 and images.shape[1] == 3 and images.shape[2] == images.shape[3]
    assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    assert torch.isfinite(poses).all() and poses.shape[1:] == (4, 4)
    distance = poses[:, :3, 3].norm(dim=1)
    assert (distance >= 0.1).all() and (distance <= 1000).all()
    NerfHeader(near=2.0, far=6.0, focal=posed.focal, camera_angle_x=posed.camera_angle_x,
               view_size=images.shape[-1])  # fmt: skip
    assert 1e-6 <= posed.focal <= 1e6 and math.isfinite(posed.camera_angle_x)


def outcome(tally: Counter, read, check) -> None:
    MEMORY.start()
    try:
        check(read())
        tally["read"] += 1
    except TransInrError as error:
        message = str(error)
        assert message and "\n" not in message and message.isprintable(), repr(message)
        tally["refused"] += 1
    grown = MEMORY.grown()
    assert grown < MEMORY_SLACK, f"the read used {grown >> 20} MB"


def test_the_originals_read(originals):
    check_posed(load_views(originals / "object"))
    dataset = ViewDataset(originals / "root", "chairs", "test", min_views=2)
    assert len(dataset) == 3 and dataset[2][0].shape == (3, 3, 16, 16)


def test_fuzz_transforms_json(originals, tmp_path, tally):
    @fuzz_settings(examples=600, deadline_s=3)
    @given(
        edits=st.lists(json_edits, max_size=3),
        raw_edits=st.lists(byte_edits, max_size=1),
        files=st.lists(file_edits, max_size=2),
        views=st.one_of(st.none(), st.lists(st.integers(-2, 4), min_size=1, max_size=3)),
    )
    def run(edits, raw_edits, files, views):
        folder = mutated_folder(originals / "object", tmp_path / "object", edits, raw_edits, files)
        outcome(tally, lambda: load_views(folder, views), check_posed)

    run()
    assert tally["refused"] > 0 and tally["read"] > 0


id_edits = st.one_of(
    st.tuples(st.just("id"), st.integers(0, 2), st.one_of(st.sampled_from("abc"), texts, junk)),
    st.tuples(st.just("split"), junk),
    st.tuples(st.just("whole"), junk),
    st.tuples(st.just("raw"), st.integers(0, len(RAW) - 1)),
    st.tuples(st.just("link-out"), st.integers(0, 2)),
)


def mutated_root(original: Path, target: Path, edits) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(original, target, symlinks=True)
    splits = json.loads((target / "chair_splits.json").read_text())
    text = None
    for edit in edits:
        kind = edit[0]
        if kind == "id" and isinstance(splits, dict) and isinstance(splits.get("test"), list):
            ids = splits["test"]
            if ids:
                ids[edit[1] % len(ids)] = edit[2]
        elif kind == "split" and isinstance(splits, dict):
            splits["test"] = edit[1]
        elif kind == "whole":
            splits = edit[1]
        elif kind == "raw":
            text = RAW[edit[1]]
        elif kind == "link-out":
            folder = target / "chairs" / "abc"[edit[1]]
            if folder.is_symlink():
                folder.unlink()
            else:
                shutil.rmtree(folder)
            folder.symlink_to((original.parent / "object").resolve())
    if text is None:
        text = dumps(splits)
    (target / "chair_splits.json").write_bytes(text.encode("utf-8", "surrogatepass"))
    return target


def read_root(root: Path) -> list:
    dataset = ViewDataset(root, "chairs", "test", min_views=2)
    return [dataset[index] for index in range(len(dataset))]


def check_items(items: list) -> None:
    for images, poses, focal in items:
        assert images.shape[1:] == (3, 16, 16) and poses.shape[1:] == (4, 4)
        assert torch.isfinite(focal)


def test_fuzz_data_roots(originals, tmp_path, tally):
    @fuzz_settings(examples=200, deadline_s=3)
    @given(edits=st.lists(id_edits, max_size=3))
    def run(edits):
        root = mutated_root(originals / "root", tmp_path / "root", edits)
        outcome(tally, lambda: read_root(root), check_items)

    run()
    assert tally["refused"] > 0 and tally["read"] > 0


def test_fuzz_views_through_encode(originals, tmp_path, tally, nerf_checkpoint):
    out = tmp_path / "out"

    @fuzz_settings(examples=60, deadline_s=10)
    @given(
        edits=st.lists(json_edits, min_size=1, max_size=2), files=st.lists(file_edits, max_size=1)
    )
    def run(edits, files):
        folder = mutated_folder(originals / "object", tmp_path / "object", edits, [], files)
        result = invoke("encode", folder, "--views", "0,1", "--model", nerf_checkpoint, "-o",
                        out / "x.inr", "--overwrite", "-q")  # fmt: skip
        if result.exit_code == 0:
            tally["ok"] += 1
            (out / "x.inr").unlink()
            return
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        lines = lines_of(stderr_of(result))
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: ")
        assert not out.exists() or list(out.iterdir()) == []
        tally["refused"] += 1

    run()
    assert tally["refused"] > 0


@pytest.fixture(scope="module")
def nerf_checkpoint(tmp_path_factory) -> Path:
    from models.core.metalearner import TransInr
    from models.core.presets import preset_config
    from models.io.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = preset_config("tiny", "nerf")
    path = tmp_path_factory.mktemp("fuzz-model") / "tiny-nerf.safetensors"
    save_checkpoint(path, TransInr(config), config, {"step": 0})
    return path
