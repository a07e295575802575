"""Helpers of the reliability tests: the CLI in-process and as a subprocess, checkpoint polling,
run comparison, and hand-made broken or hostile files.

Subprocesses run `python -m transinr_cli` with the intra-op thread count of the test process (one,
by tests/conftest.py): fast on 2 busy cores, and the same arithmetic in every process, so results
can be compared bit for bit.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import torch
from PIL import Image
from typer.testing import CliRunner

from models.io.checkpoint import Checkpoint, load_checkpoint
from transinr_cli.app import app

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS = 40  # every subprocess training run: the tiny preset, 40 steps of batch 16
SEED = 3
TIMEOUT = 120  # seconds any one subprocess may take before the test fails (never a hang)

# --- the command line in-process ------------------------------------------------------------

runner = CliRunner()


def invoke(*args, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(arg) for arg in args], env=env)


def stderr_of(result) -> str:
    try:
        return result.stderr
    except ValueError:  # an older click mixes stderr into the output
        return result.output


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_ok(result):
    assert result.exit_code == 0, f"{result.output}\n{stderr_of(result)}\n{result.exception!r}"
    assert result.exception is None, repr(result.exception)
    return result


def assert_fails(result, *needles: str, code: int = 1) -> str:
    """Exit `code` cleanly: no traceback, one `error:` line on stderr naming every needle."""
    assert result.exit_code == code, f"{result.output}\n{result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    text = stderr_of(result)
    assert "Traceback" not in result.output and "Traceback" not in text
    lines = lines_of(text)
    assert len(lines) == 1, text
    assert lines[0].startswith("error: "), text
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


def temporaries(folder: Path) -> list[str]:
    """Leftovers of atomic writes: hidden files (`.NAME.xxxx`) anywhere under `folder`."""
    return sorted(p.name for p in folder.rglob(".*"))


# --- the command line as a subprocess -------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of CLI subprocesses: as many intra-op threads as this process uses (one,
    see tests/conftest.py), so that results computed here and there are the same bits."""
    threads = str(torch.get_num_threads())
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONUNBUFFERED="1")
    env.pop("TRANSINR_MAX_PIXELS", None)
    env.update(extra)
    return env


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "transinr_cli", *(str(arg) for arg in args)]


def train_command(run: Path, data: Path, *extra) -> list[str]:
    return cli(
        "train", "--preset", "tiny", "--dataset", "folder", "--data", data, "--steps", STEPS,
        "--seed", SEED, "--checkpoint-every", 1, "--workers", 0, "--device", "cpu", "--quiet",
        "--out", run, *extra,
    )  # fmt: skip


def resume_command(run: Path, *extra) -> list[str]:
    return cli(
        "train", "--out", run, "--resume", "--checkpoint-every", 1, "--workers", 0,
        "--device", "cpu", "--quiet", *extra,
    )  # fmt: skip


def start(command: list[str], **options) -> subprocess.Popen:
    """A subprocess in its own process group (a terminal's Ctrl-C goes to the whole group)."""
    return subprocess.Popen(
        command,
        env=options.pop("env", None) or cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **options,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"the command hung for {TIMEOUT} s: {process.args}\n{err}") from None
    return process.returncode, out, err


def run_ok(command: list[str], **options) -> str:
    code, out, err = finish(start(command, **options))
    assert code == 0, f"exit {code}: {command}\n{out}\n{err}"
    return out


# --- checkpoints ----------------------------------------------------------------------------


def checkpoint_step(path: Path) -> int | None:
    """The step recorded in a checkpoint's header (without reading its tensors); None when
    there is no file yet. A file that exists is always whole: a torn header fails the test."""
    try:
        with open(path, "rb") as stream:
            (size,) = struct.unpack("<Q", stream.read(8))
            header = json.loads(stream.read(size))
    except FileNotFoundError:
        return None
    return json.loads(header["__metadata__"]["train_state"])["step"]


def wait_for_step(run: Path, process: subprocess.Popen, after: int) -> tuple[int, float]:
    """Poll until `run`'s last checkpoint holds a step beyond `after`; returns the step and an
    estimate of the seconds per step (from the next step, while the process keeps running)."""
    deadline = time.monotonic() + TIMEOUT
    path = run / "last.safetensors"
    while (step := checkpoint_step(path)) is None or step <= after:
        if process.poll() is not None:
            raise AssertionError(f"training exited ({process.returncode}): {process.stderr.read()}")
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.002)
    seen = time.monotonic()
    while (following := checkpoint_step(path)) == step and process.poll() is None:
        assert time.monotonic() < deadline, "no further checkpoint written"
        time.sleep(0.002)
    return following or step, time.monotonic() - seen


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors that differ (or exist in only one of the two)."""
    names = a.keys() | b.keys()
    return sorted(k for k in names if k not in a or k not in b or not torch.equal(a[k], b[k]))


def optimizer_tensors(checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
    state = (checkpoint.optimizer_state or {}).get("state", {})
    return {f"{i}.{name}": t for i, values in state.items() for name, t in values.items()}


def untimed(history: list[dict]) -> list[dict]:
    """Validation history without its wall-clock seconds (which differ from run to run)."""
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


def assert_same_run(run: Path, reference: Path) -> None:
    """The two runs ended in the same state: model, Adam moments, step and validation."""
    for name in ("last.safetensors", "best.safetensors"):
        got, want = load_checkpoint(run / name), load_checkpoint(reference / name)
        assert got.train_state["step"] == want.train_state["step"] == STEPS, name
        assert same_tensors(got.model_state, want.model_state) == [], name
        assert same_tensors(optimizer_tensors(got), optimizer_tensors(want)) == [], name
        assert untimed(got.train_state["history"]) == untimed(want.train_state["history"]), name


def all_finite(checkpoint: Checkpoint) -> bool:
    return all(torch.isfinite(t).all() for t in checkpoint.model_state.values())


# --- files ----------------------------------------------------------------------------------


def png_bytes(array, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose IHDR claims `width` x `height` (a decompression bomb's
    header): a real 8 x 8 PNG with the size patched and the IHDR CRC recomputed."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size]), data[8 + size :]


def join_safetensors(header: dict | list | str, payload: bytes) -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, str) else header.encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + payload
