"""Fuzz the two file formats a user hands us: a real `.inr` file (from `transinr encode`) and a real
checkpoint (from training), each mutated thousands of times in all: bit flips, byte overwrites
in the header and the body, truncation at any length, insertions and deletions, rewrites of the
header-length field, and edits of the JSON header and metadata (huge shapes, wrong dtypes,
giant integers, deep nesting, junk of every JSON type).

Every outcome is a correct load (usable: it renders, or builds and runs the model) or a one-line
TransInrError; never another exception, never a hang (a per-example deadline, and a watchdog
that aborts the run), never a large allocation (the peak resident memory of each example,
measured with /proc/self/clear_refs, stays under the file size + 200 MB).

Hypothesis runs derandomized (the same examples on every run: deterministic CI) with no example
database. Set TRANSINR_FUZZ_EXAMPLES=N to scale the budgets (e.g. 10 for a long local run).

The tests at the end reproduce the bugs the fuzz found (all fixed). KNOWN_BUGS, now empty, is
where a newly found bug can be tolerated while it is fixed (counted in a warning);
TRANSINR_FUZZ_STRICT=1 tolerates nothing.
"""

from __future__ import annotations

import faulthandler
import json
import math
import os
import resource
import sys
import traceback
import warnings
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import (
    REPO_ROOT,
    invoke,
    join_safetensors,
    lines_of,
    split_safetensors,
    stderr_of,
)

from models.core.inr import init_weights
from models.core.presets import preset_config
from models.core.rendering import render_quantized
from models.errors import TransInrError
from models.io.checkpoint import load_checkpoint
from models.io.inr_file import InrFile, load_inr, save_inr
from models.io.inr_header import NerfHeader

SCALE = float(os.environ.get("TRANSINR_FUZZ_EXAMPLES", "1"))
STRICT = os.environ.get("TRANSINR_FUZZ_STRICT") == "1"
MEMORY_SLACK = 200 << 20  # bytes a load may use beyond the file itself
WATCHDOG_S = 300  # a fuzz test running longer than this is hung: dump stacks and exit


def fuzz_settings(examples: int, deadline_s: float):
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        derandomize=True,
        database=None,
        deadline=timedelta(seconds=deadline_s),
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


# --- known bugs: (exception type, file, function) of the innermost frame in the project ------

BUG_DEEP_JSON = "deep JSON nesting: RecursionError escapes json.loads"
BUG_GIANT_INT = "a > 4300-digit integer in the header: ValueError escapes json.loads"
BUG_NERF_INFO = "render of a NeRF .inr: view_size / camera_radius are not validated on load"
BUG_FIT_INFO = "refine of an image .inr: a non-object 'fit' crashes image_objective"
BUG_DTYPE = "a tensor 'dtype' that is a list or object: TypeError (unhashable) in load_inr"
BUG_NEWLINE = "header strings (tensor names, dtypes, task) are put in messages unescaped"
KNOWN_BUGS: dict = {}  # all reported bugs are fixed; add (type, file, function): reason


def known_bug(error: BaseException) -> str | None:
    """The KNOWN_BUGS entry `error` matches, by where in the project it was raised."""
    if STRICT:
        return None
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename).resolve().is_relative_to(REPO_ROOT)
    ]
    if not frames:
        return None
    where = Path(frames[-1].filename).resolve().relative_to(REPO_ROOT).as_posix()
    for (kind, filename, function), bug in KNOWN_BUGS.items():
        if isinstance(error, kind) and where == filename and frames[-1].name == function:
            return bug
    return None


@pytest.fixture
def tally():
    """Counts the outcomes of a fuzz test; warns about the known bugs it hit."""
    counts: Counter = Counter()
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    yield counts
    faulthandler.cancel_dump_traceback_later()
    bugs = {key: value for key, value in counts.items() if key.startswith("BUG ")}
    if bugs:
        warnings.warn(f"fuzz hit known bugs: {bugs}", stacklevel=1)
    sys.stderr.write(f"\nfuzz outcomes: {dict(counts)}\n")


# --- memory ---------------------------------------------------------------------------------


class PeakMemory:
    """Peak resident memory of a stretch of code, in bytes above the resident size at its
    start (/proc/self/clear_refs resets the high-water mark on Linux >= 4.0); elsewhere the
    process-wide maximum from getrusage, a weaker bound."""

    def __init__(self):
        try:
            self._reset()
            self.precise = True
        except OSError:
            self.precise = False

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise OSError(f"no {field}")

    def _reset(self) -> int:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return self._status("VmRSS")

    def start(self) -> None:
        if self.precise:
            self.base = self._reset()
        else:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def grown(self) -> int:
        if self.precise:
            return self._status("VmHWM") - self.base
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base


MEMORY = PeakMemory()


# --- mutations ------------------------------------------------------------------------------

# Raw JSON texts json.dumps cannot produce: spliced in where a junk value names them.
RAW = [
    "1" * 5000,  # a 5000-digit integer (Python refuses to parse more than 4300 digits)
    "-" + "9" * 400,
    "1e999999",  # parses to inf
    "[" * 50000 + "]" * 50000,  # deeper than any recursion limit
    '{"a":' * 20000 + "0" + "}" * 20000,
    "NaN",
    "-Infinity",
]
RAW_TAG = "\u0000raw{}\u0000"

SPECIAL_INTS = [0, -1, 1, 3, 7, 8, 255, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63,
                2**64 - 1, 2**64, -(2**63), 10**30, 10**300]  # fmt: skip
DTYPES = ["F32", "F16", "BF16", "F64", "I8", "U8", "I64", "BOOL", "F8_E4M3", "f32", "", "F32 "]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(SPECIAL_INTS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(DTYPES),
    st.sampled_from([RAW_TAG.format(i) for i in range(len(RAW))]),
)
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
bad_shapes = st.one_of(
    st.lists(st.sampled_from(SPECIAL_INTS), min_size=0, max_size=4),
    st.lists(st.integers(-3, 70), min_size=0, max_size=4),
    junk,
)


def dumps(value) -> str:
    """json.dumps, with the RAW texts spliced in for their tags."""
    text = json.dumps(value)
    for index, raw in enumerate(RAW):
        text = text.replace(json.dumps(RAW_TAG.format(index)), raw)
    return text


def walk(value, choices: list[int]):
    """A (container, key) inside `value` chosen by `choices`, or None for `value` itself."""
    spot = None
    for choice in choices:
        if isinstance(value, dict) and value:
            key = sorted(value, key=str)[choice % len(value)]
        elif isinstance(value, list) and value:
            key = choice % len(value)
        else:
            break
        spot = (value, key)
        value = value[key]
    return spot


def json_edit():
    """One edit of the safetensors header (a dict); JSON-text metadata values are edited inside."""
    return st.one_of(
        st.tuples(
            st.just("tensor"),
            st.integers(0, 99),
            st.sampled_from(["dtype", "shape", "data_offsets", None, "extra"]),
            junk,
        ),  # fmt: skip
        st.tuples(st.just("shape"), st.integers(0, 99), bad_shapes),
        st.tuples(
            st.just("offsets"),
            st.integers(0, 99),
            st.lists(st.sampled_from(SPECIAL_INTS + [16, 64, 128, 4096]), min_size=0, max_size=3),
        ),  # fmt: skip
        st.tuples(st.just("meta"), st.integers(0, 99), junk),
        st.tuples(
            st.just("inner"), st.integers(0, 99), st.lists(st.integers(0, 99), max_size=4), junk
        ),  # fmt: skip
        st.tuples(st.just("drop"), st.integers(0, 99)),
        st.tuples(st.just("add"), st.text(max_size=8), junk),
        st.tuples(st.just("whole"), junk),
    )


def apply_json_edits(data: bytes, edits) -> bytes:
    header, payload = split_safetensors(data)
    for edit in edits:
        kind = edit[0]
        is_dict = isinstance(header, dict)
        tensors = sorted(k for k in header if k != "__metadata__") if is_dict else []
        metadata = header.get("__metadata__") if is_dict else None
        if kind in ("tensor", "shape", "offsets") and tensors:
            entry = header[tensors[edit[1] % len(tensors)]]
            if kind == "tensor":
                field, value = edit[2], edit[3]
                if field is None:
                    header[tensors[edit[1] % len(tensors)]] = value
                elif isinstance(entry, dict):
                    entry[field] = value
            elif isinstance(entry, dict):
                entry["shape" if kind == "shape" else "data_offsets"] = edit[2]
        elif kind in ("meta", "inner") and isinstance(metadata, dict) and metadata:
            key = edit[1] if isinstance(edit[1], str) else sorted(metadata)[edit[1] % len(metadata)]
            if key not in metadata:
                continue
            if kind == "meta":
                metadata[key] = edit[2]
            else:
                try:
                    inner = json.loads(metadata[key])
                except (TypeError, ValueError, RecursionError):
                    continue
                spot = walk(inner, edit[2])
                if spot is None:
                    inner = edit[3]
                else:
                    spot[0][spot[1]] = edit[3]
                metadata[key] = dumps(inner)
        elif kind == "drop" and isinstance(header, dict) and header:
            del header[sorted(header)[edit[1] % len(header)]]
        elif kind == "add" and isinstance(header, dict):
            header[edit[1]] = edit[2]
        elif kind == "whole":
            header = edit[1]
    return join_safetensors(dumps(header), payload)


def byte_edit(length: int, header_end: int):
    anywhere = st.integers(0, max(length - 1, 0))
    in_header = st.integers(0, max(header_end - 1, 0))
    position = st.one_of(in_header, anywhere)
    header_size = header_end - 8
    return st.one_of(
        st.tuples(st.just("flip"), position, st.integers(0, 7)),
        st.tuples(st.just("set"), position, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("truncate"), st.one_of(st.integers(0, length), st.integers(0, 64))),
        st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("delete"), position, st.integers(1, 64)),
        st.tuples(
            st.just("length"),
            st.one_of(
                st.sampled_from([v for v in SPECIAL_INTS if 0 <= v < 2**64]),
                st.integers(max(0, header_size - 64), header_size + 64),
                st.integers(0, 2**64 - 1),
            ),
        ),
    )


def apply_byte_edits(data: bytes, edits) -> bytes:
    buffer = bytearray(data)
    for kind, *args in edits:
        size = max(len(buffer), 1)
        if kind == "flip":
            if buffer:
                buffer[args[0] % size] ^= 1 << args[1]
        elif kind == "set":
            at = args[0] % size
            buffer[at : at + len(args[1])] = args[1]
        elif kind == "truncate":
            del buffer[args[0] :]
        elif kind == "insert":
            at = args[0] % size
            buffer[at:at] = args[1]
        elif kind == "delete":
            at = args[0] % size
            del buffer[at : at + args[1]]
        elif kind == "length":
            buffer[:8] = args[0].to_bytes(8, "little")
    return bytes(buffer)


def mutations(original: bytes):
    header_end = 8 + int.from_bytes(original[:8], "little")
    raw = st.lists(byte_edit(len(original), header_end), min_size=1, max_size=4)
    structured = st.lists(json_edit(), min_size=1, max_size=3)
    return st.one_of(
        raw.map(lambda edits: apply_byte_edits(original, edits)),
        structured.map(lambda edits: apply_json_edits(original, edits)),
        st.tuples(structured, raw).map(
            lambda both: apply_byte_edits(apply_json_edits(original, both[0]), both[1])
        ),
    )


# --- the checks -----------------------------------------------------------------------------


def check_outcome(tally: Counter, path: Path, data: bytes, load, use) -> None:
    """Load `data` from `path`: a usable result or a one-line TransInrError; small peak memory."""
    path.write_bytes(data)
    MEMORY.start()
    try:
        loaded = load(path)
        use(loaded)
        tally["loaded"] += 1
    except TransInrError as error:
        message = str(error)
        assert message, "an empty message"
        if "\n" in message:
            bug = known_bug(error)
            assert bug == BUG_NEWLINE, f"a message on several lines: {message!r}"
            tally[f"BUG {bug}"] += 1
        tally["refused"] += 1
    except Exception as error:  # noqa: BLE001 (the point: nothing else may come out)
        bug = known_bug(error)
        if bug is None:
            raise
        tally[f"BUG {bug}"] += 1
    grown = MEMORY.grown()
    assert grown < len(data) + MEMORY_SLACK, f"the load used {grown >> 20} MB"


def use_inr(inr: InrFile) -> None:
    shapes = [(fan_in + 1, fan_out) for fan_in, fan_out in inr.inr.layer_shapes()]
    assert [tuple(w.shape) for w in inr.weights] == shapes
    assert all(torch.isfinite(w).all() for w in inr.weights)
    box = inr.header.content_box
    if inr.task == "image":
        render_quantized(inr.batched(), inr.inr, 3, 5, box)


def use_checkpoint(checkpoint) -> None:
    model = checkpoint.build_model().eval()
    if checkpoint.config.task == "image":
        size = checkpoint.config.image_size
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))


def canonical_bytes(data: bytes) -> bytes:
    """The same file with its header keys sorted, and the run's wall time and the model id fixed:
    the bytes the examples derive from are the same on every run (safetensors writes metadata keys
    in a random order), so the derandomized fuzz is the same on every run too."""
    header, payload = split_safetensors(data)
    metadata = header.get("__metadata__", {})
    if "train_state" in metadata:
        metadata["train_state"] = json.dumps({**json.loads(metadata["train_state"]), "seconds": 0})
    if "transinr" in metadata:  # the model id hashes the checkpoint's bytes
        info = json.loads(metadata["transinr"])
        metadata["transinr"] = json.dumps({**info, "source_model": "tiny-000000000000"})
    return join_safetensors(json.dumps(header, sort_keys=True), payload)


@pytest.fixture(scope="module")
def inr_sample(small_inr) -> bytes:
    return canonical_bytes(small_inr.read_bytes())


@pytest.fixture(scope="module")
def checkpoint_sample(tiny_run) -> bytes:
    return canonical_bytes((tiny_run / "last.safetensors").read_bytes())


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_the_memory_meter_sees_a_large_allocation():
    MEMORY.start()
    block = torch.ones(300 << 20, dtype=torch.uint8)  # 300 MB, touched
    assert MEMORY.grown() > 250 << 20
    del block


def test_the_samples_load_as_they_are(inr_sample, checkpoint_sample, scratch):
    counts: Counter = Counter()
    check_outcome(counts, scratch / "ok.inr", inr_sample, load_inr, use_inr)
    check_outcome(counts, scratch / "ok.safetensors", checkpoint_sample, load_checkpoint,
                  use_checkpoint)  # fmt: skip
    assert counts == {"loaded": 2}


def test_fuzz_inr_files(inr_sample, scratch, tally):
    @fuzz_settings(examples=1500, deadline_s=3)
    @given(data=mutations(inr_sample))
    def run(data):
        check_outcome(tally, scratch / "fuzz.inr", data, load_inr, use_inr)

    run()
    assert tally["refused"] > 0


def test_fuzz_checkpoints(checkpoint_sample, scratch, tally):
    @fuzz_settings(examples=300, deadline_s=10)
    @given(data=mutations(checkpoint_sample))
    def run(data):
        check_outcome(tally, scratch / "fuzz.safetensors", data, load_checkpoint, use_checkpoint)

    run()
    assert tally["refused"] > 0


# --- the same files through the command line: metadata edits reach render, refine, info ----


@pytest.fixture(scope="module")
def nerf_sample(scratch) -> bytes:
    config = preset_config("tiny", "nerf").inr
    info = {"near": 2.0, "far": 6.0, "focal": 40.0, "samples": 4, "view_size": 32,
            "camera_radius": 4.0, "support_views": [0]}  # fmt: skip
    path = scratch / "chair.inr"
    torch.manual_seed(0)
    save_inr(
        InrFile([w[0] for w in init_weights(config)], config, "nerf", NerfHeader(**info)), path
    )
    return canonical_bytes(path.read_bytes())


def check_command(tally: Counter, *args) -> None:
    result = invoke(*args)
    error = result.exception
    if result.exit_code == 0:
        tally["ok"] += 1
        return
    if isinstance(error, SystemExit):
        lines = lines_of(stderr_of(result))
        assert result.exit_code == 1 and lines and lines[0].startswith("error: "), lines
        if len(lines) > 1 and not STRICT and sum(line.startswith("error:") for line in lines) == 1:
            tally[f"BUG {BUG_NEWLINE}"] += 1  # one message, broken over lines by a header string
        else:
            assert len(lines) == 1, lines
        tally["refused"] += 1
        return
    bug = known_bug(error)
    if bug is None:
        raise error
    tally[f"BUG {bug}"] += 1


def test_fuzz_inr_metadata_through_the_cli(inr_sample, nerf_sample, scratch, tally, image_folder):
    image = image_folder / "img00.png"

    @fuzz_settings(examples=100, deadline_s=10)
    @given(
        nerf=st.booleans(),
        edits=st.lists(
            st.tuples(
                st.just("inner"), st.just(0), st.lists(st.integers(0, 99), max_size=3), junk
            ),  # fmt: skip
            min_size=1,
            max_size=3,
        ),
    )
    def run(nerf, edits):
        edits = [(kind, "transinr", where, value) for kind, _, where, value in edits]
        path = scratch / "cli.inr"
        path.write_bytes(apply_json_edits(nerf_sample if nerf else inr_sample, edits))
        out = scratch / "cli-out.png"
        check_command(tally, "info", path)
        check_command(tally, "render", path, "--size", 4, "-o", out, "--overwrite", "-q")
        if not nerf:
            check_command(tally, "refine", path, "--image", image, "--steps", 1,
                          "-o", scratch / "cli-refined.inr", "--overwrite", "-q")  # fmt: skip

    run()


# --- the known bugs, one by one (strict xfail: a fix makes them pass, then drop the marker and
# --- the KNOWN_BUGS entry) -----------------------------------------------------------------


def raw_header(text: str) -> bytes:
    body = text.encode()
    body += b" " * (-len(body) % 8)
    return len(body).to_bytes(8, "little") + body


BUG_JSON_LOAD = (
    "BUG models/io/inr_file.py read_safetensors_header (and peek_format, load_inr's and "
    "load_checkpoint's metadata json.loads): deeply nested JSON raises RecursionError and a "
    "> 4300-digit integer raises a plain ValueError; only JSONDecodeError/UnicodeDecodeError are "
    "caught there. Fix: catch ValueError and RecursionError"
)


@pytest.mark.parametrize("text", [RAW[3], '{"a": ' + RAW[0] + "}"], ids=["deep", "giant-int"])
@pytest.mark.parametrize("load", [load_inr, load_checkpoint], ids=["inr", "checkpoint"])
def test_bug_hostile_json_header(tmp_path, text, load):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(raw_header(text))
    with pytest.raises(TransInrError):
        load(path)


def test_bug_deep_json_in_the_metadata(tmp_path, small_inr, tiny_run):
    header, payload = split_safetensors(small_inr.read_bytes())
    header["__metadata__"]["transinr"] = RAW[3]
    (tmp_path / "deep.inr").write_bytes(join_safetensors(header, payload))
    header, payload = split_safetensors((tiny_run / "last.safetensors").read_bytes())
    header["__metadata__"]["config"] = RAW[3]
    (tmp_path / "deep.safetensors").write_bytes(join_safetensors(header, payload))
    with pytest.raises(TransInrError):
        load_inr(tmp_path / "deep.inr")
    with pytest.raises(TransInrError):
        load_checkpoint(tmp_path / "deep.safetensors")


BUG_RENDER_INFO = (
    "BUG models/io/inr_file.py check_info / transinr_cli/render.py render_nerf: a NeRF .inr with "
    "'view_size' 0 or not a number, or 'camera_radius' not a number, loads, then render crashes "
    "(ZeroDivisionError / ValueError traceback). Fix: validate view_size (1..16384 int) and "
    "camera_radius (finite > 0) in check_info"
)


@pytest.mark.parametrize("change", [{"view_size": 0}, {"view_size": "abc"},
                                    {"camera_radius": "x"}], ids=str)  # fmt: skip
def test_bug_nerf_info_crashes_render(tmp_path, nerf_sample, change):
    header, payload = split_safetensors(nerf_sample)
    info = json.loads(header["__metadata__"]["transinr"])
    header["__metadata__"]["transinr"] = json.dumps({**info, **change})
    (tmp_path / "chair.inr").write_bytes(join_safetensors(header, payload))
    result = invoke("render", tmp_path / "chair.inr", "--size", 4, "-o", tmp_path / "x.png", "-q")
    assert isinstance(result.exception, SystemExit), repr(result.exception)


BUG_REFINE_FIT = (
    "BUG transinr_cli/refine.py image_objective: `inr_file.info.get('fit', {}).get('mode')` "
    "crashes (AttributeError traceback) when 'fit' is not an object. Fix: validate 'fit' in "
    "check_info, or read it defensively"
)


def test_bug_refine_with_a_fit_that_is_not_an_object(tmp_path, small_inr, image_folder):
    header, payload = split_safetensors(small_inr.read_bytes())
    info = json.loads(header["__metadata__"]["transinr"])
    header["__metadata__"]["transinr"] = json.dumps({**info, "fit": [1]})
    (tmp_path / "face.inr").write_bytes(join_safetensors(header, payload))
    result = invoke("refine", tmp_path / "face.inr", "--image", image_folder / "img00.png",
                    "--steps", 1, "-q")  # fmt: skip
    assert isinstance(result.exception, SystemExit), repr(result.exception)


BUG_UNHASHABLE_DTYPE = (
    "BUG models/io/inr_file.py load_inr: `found[key].get('dtype') not in allowed` raises TypeError "
    "(unhashable type: 'list') when a tensor's dtype in the header is a list or an object. "
    "Fix: check isinstance(dtype, str) first"
)


@pytest.mark.parametrize("dtype", [[], {"a": 1}], ids=["list", "object"])
def test_bug_a_dtype_that_is_not_a_string(tmp_path, small_inr, dtype):
    header, payload = split_safetensors(small_inr.read_bytes())
    header["layer.0"]["dtype"] = dtype
    (tmp_path / "face.inr").write_bytes(join_safetensors(header, payload))
    with pytest.raises(TransInrError):
        load_inr(tmp_path / "face.inr")


BUG_MESSAGE_NEWLINES = (
    "BUG models/io/inr_file.py read_safetensors_header / check_info / load_inr and "
    "models/io/checkpoint.py load_checkpoint: strings from the file (a tensor name, its dtype, the "
    "task) go into the error message unescaped, so a name with a line break gives a message on "
    "several lines (the CLI promises one). Fix: format them with !r"
)


@pytest.mark.parametrize("where", ["tensor-name", "dtype", "task"])
def test_bug_a_line_break_in_a_header_string(tmp_path, small_inr, where):
    header, payload = split_safetensors(small_inr.read_bytes())
    if where == "tensor-name":
        header["bad\nname"] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 1 << 40]}
    elif where == "dtype":
        header["layer.0"]["dtype"] = "F32\nF16"
    else:
        info = json.loads(header["__metadata__"]["transinr"])
        header["__metadata__"]["transinr"] = json.dumps({**info, "task": "image\nvideo"})
    (tmp_path / "face.inr").write_bytes(join_safetensors(header, payload))
    with pytest.raises(TransInrError) as error:
        load_inr(tmp_path / "face.inr")
    assert "\n" not in str(error.value)


def test_no_bug_is_tolerated():
    assert KNOWN_BUGS == {}  # every crash the fuzz finds fails the suite
    assert not math.isnan(SCALE) and SCALE > 0
