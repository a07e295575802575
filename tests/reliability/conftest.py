"""Fixtures of the reliability tests (tests/conftest.py's `image_folder`, `tiny_run` and the
rest apply here too)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from reliability_support import assert_ok, finish, invoke, start, train_command


class ReferenceRun:
    """An uninterrupted `transinr train` subprocess (tiny, 40 steps, checkpoint every step),
    started in the background: `path()` waits for it. Every interrupted-and-resumed run must end
    where it does, bit for bit."""

    def __init__(self, run: Path, data: Path):
        self.run = run
        self.process = start(train_command(run, data))

    def path(self) -> Path:
        code, out, err = finish(self.process)
        assert code == 0, f"the reference run failed ({code}): {out}\n{err}"
        return self.run


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, image_folder):
    """The reference run (read-only for tests); it runs while the test that asks for it does."""
    reference = ReferenceRun(tmp_path_factory.mktemp("reference") / "run", image_folder)
    yield reference
    if reference.process.poll() is None:
        reference.process.kill()
        reference.process.wait()


@pytest.fixture(scope="session")
def small_inr(tmp_path_factory, tiny_run, image_folder) -> Path:
    """A real .inr file made by `transinr encode` with the tiny model (read-only for tests)."""
    path = tmp_path_factory.mktemp("small-inr") / "face.inr"
    assert_ok(invoke("encode", image_folder / "img00.png", "--model", tiny_run, "-o", path, "-q"))
    return path


@pytest.fixture
def inr_copy(small_inr, tmp_path) -> Path:
    """A private copy of `small_inr`."""
    return Path(shutil.copy(small_inr, tmp_path / "face.inr"))
