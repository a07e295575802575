"""`transinr train` killed, interrupted or stopped: nothing is lost but the current step.

SIGKILL at random moments (mid-step, mid-checkpoint-write): `last.safetensors` is always a whole
checkpoint, a resumed run ends bit for bit where an uninterrupted one does, and the temporaries
of killed writes are removed on resume. Ctrl-C (SIGINT to the whole process group, as a terminal
sends it) and SIGTERM: the step finishes, `last` is written, exit 130, and the message names the
step and the command that resumes. A second Ctrl-C stops at once. `--checkpoint-every` and
`--checkpoint-minutes` decide when `last` is written.
"""

from __future__ import annotations

import inspect
import os
import random
import re
import shlex
import signal
import time

import pytest
import torch
from reliability_support import (
    STEPS,
    all_finite,
    assert_same_run,
    checkpoint_step,
    cli,
    finish,
    resume_command,
    start,
    temporaries,
    train_command,
    wait_for_step,
)
from support import tiny_train_config

from models.core.presets import preset_config
from models.data.image_data import ImageDataset
from models.io.checkpoint import load_checkpoint
from models.tasks.training import train
from transinr_cli.train import stop_on_signals

RESUME_HINT = re.compile(
    r"^interrupted at step (\d+); saved (.+); resume with: (transinr train --out .+ --resume)$"
)


def plant_stale_temporary(run, name: str = "last.safetensors") -> None:
    """What a write killed between its temporary file and the rename leaves behind."""
    data = (run / name).read_bytes()
    (run / f".{name}.k1ll3d").write_bytes(data[: len(data) // 2])


def test_sigkill_at_random_moments_then_resume_ends_as_an_uninterrupted_run(
    tmp_path, image_folder, reference_run
):
    rng = random.Random(1234)  # deterministic "random" moments: the same on every CI run
    run = tmp_path / "run"
    process = start(train_command(run, image_folder))
    killed_at = []
    for after in (1, 10, 19):  # three kills: past this step, at a random phase of a step
        step, seconds_per_step = wait_for_step(run, process, after)
        time.sleep(rng.uniform(0.0, seconds_per_step))  # mid-step or mid-checkpoint-write
        if process.poll() is not None:
            pytest.fail(f"training ended before kill {len(killed_at) + 1}; make the run longer")
        os.kill(process.pid, signal.SIGKILL)  # like the OOM killer or a pulled plug
        finish(process)
        assert process.returncode == -signal.SIGKILL
        # Never a half-written checkpoint where a reader looks: it loads, whole and finite.
        checkpoint = load_checkpoint(run / "last.safetensors")
        step = checkpoint.train_state["step"]
        assert after < step < STEPS
        assert all_finite(checkpoint)
        killed_at.append(step)
        leftovers = temporaries(run)  # the kill may have interrupted a write
        plant_stale_temporary(run)  # and one for sure
        process = start(resume_command(run))
        wait_for_step(run, process, step)  # the resumed run has written a checkpoint: by now
        now = temporaries(run)  # the stale temporaries are gone
        assert not set(leftovers + [".last.safetensors.k1ll3d"]) & set(now), (leftovers, now)

    # Then a double Ctrl-C: the second stops at once, whatever the run was doing.
    wait_for_step(run, process, 28)
    process.send_signal(signal.SIGINT)
    time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    code, _, err = finish(process)
    assert code == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    # "interrupted" (stopped at once), or the first request had already finished the step.
    assert lines == ["interrupted"] or RESUME_HINT.match(lines[0]), err
    checkpoint = load_checkpoint(run / "last.safetensors")
    assert 28 < checkpoint.train_state["step"] < STEPS
    assert all_finite(checkpoint)

    code, _, err = finish(start(resume_command(run)))
    assert code == 0, err
    assert temporaries(run) == [], killed_at
    assert sorted(p.name for p in run.iterdir()) == [
        "best.safetensors",
        "config.json",
        "last.safetensors",
    ]
    assert_same_run(run, reference_run.path())


def resume_hint(err: str, run) -> int:
    """The one stderr line of an interrupted run; returns the step it names."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    match = RESUME_HINT.match(lines[0])
    assert match, lines[0]
    assert match.group(2) == str(run / "last.safetensors")
    assert shlex.split(match.group(3)) == ["transinr", "train", "--out", str(run), "--resume"]
    return int(match.group(1))


def as_subprocess(hint_command: list[str], *extra) -> list[str]:
    """`transinr train ...` as printed -> this interpreter's `python -m transinr_cli train ...`."""
    assert hint_command[0] == "transinr"
    return cli(*hint_command[1:], *extra)


def test_ctrl_c_and_sigterm_finish_the_step_save_and_resume_exactly(
    tmp_path, image_folder, reference_run
):
    run = tmp_path / "run"
    # Ctrl-C in a terminal: SIGINT to the whole process group, data-loading workers included.
    process = start(train_command(run, image_folder, "--workers", 2))
    wait_for_step(run, process, 2)
    os.killpg(process.pid, signal.SIGINT)
    code, out, err = finish(process)
    assert code == 130, err
    first = resume_hint(err, run)
    assert out.strip() == ""
    assert load_checkpoint(run / "last.safetensors").train_state["step"] == first
    assert 2 < first < STEPS
    assert temporaries(run) == []
    command = shlex.split(RESUME_HINT.match(err.strip()).group(3))

    # SIGTERM (a scheduler, `kill`, `docker stop`) to the resumed run, started as printed.
    process = start(as_subprocess(command, "--quiet", "--checkpoint-every", 1, "--workers", 0))
    wait_for_step(run, process, first + 2)
    process.send_signal(signal.SIGTERM)
    code, out, err = finish(process)
    assert code == 130, err
    second = resume_hint(err, run)
    assert first + 2 < second < STEPS
    checkpoint = load_checkpoint(run / "last.safetensors")
    assert checkpoint.train_state["step"] == second
    assert all_finite(checkpoint)
    assert temporaries(run) == []

    # The printed command as it is (default workers and checkpoint cadence) runs to the end.
    code, out, err = finish(start(as_subprocess(command, "--quiet")))
    assert code == 0, err
    assert_same_run(run, reference_run.path())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_first_signal_asks_to_stop_the_second_stops_at_once(signum):
    previous = signal.getsignal(signum)
    with stop_on_signals() as stop_requested:
        assert not stop_requested()
        signal.raise_signal(signum)
        assert stop_requested()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signum)
    assert signal.getsignal(signum) is previous


def steps_written(tmp_path, image_folder, steps: int, **overrides) -> list[int | None]:
    """Train in-process; after each step, the step held by last.safetensors."""
    config = preset_config("tiny")
    train_set = ImageDataset("folder", image_folder, "train", config.image_size)
    val_set = ImageDataset("folder", image_folder, "val", config.image_size)
    seen = []
    run = tmp_path / "run"
    train(
        run,
        config,
        tiny_train_config(steps=steps, **overrides),
        train_set,
        val_set,
        torch.device("cpu"),
        on_progress=lambda progress: seen.append(checkpoint_step(run / "last.safetensors")),
    )
    return seen


def test_checkpoint_every_n_steps(tmp_path, image_folder):
    seen = steps_written(tmp_path, image_folder, 7, checkpoint_every=3, checkpoint_minutes=0)
    assert seen == [None, None, 3, 3, 3, 6, 7]


def test_checkpoint_every_m_minutes(tmp_path, image_folder):
    # A limit of a few microseconds has always passed by the end of a step: every step writes.
    seen = steps_written(tmp_path, image_folder, 4, checkpoint_every=1000, checkpoint_minutes=1e-7)
    assert seen == [1, 2, 3, 4]


def test_checkpoint_minutes_zero_is_off(tmp_path, image_folder):
    seen = steps_written(tmp_path, image_folder, 4, checkpoint_every=1000, checkpoint_minutes=0)
    assert seen == [None, None, None, 4]


def test_the_cli_checkpoints_every_10_minutes_by_default():
    from transinr_cli.train import train as train_command_function

    default = inspect.signature(train_command_function).parameters["checkpoint_minutes"].default
    assert default == 10.0
