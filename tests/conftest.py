"""Shared fixtures: a folder of small synthetic images and a tiny meta-learner trained once.

Everything trained here uses the `tiny` preset, `workers=0` and an explicit step count, so the
whole suite stays fast on a 2-core CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from support import make_image_folder, train_tiny

from models.core.config import ModelConfig
from models.core.metalearner import TransInr
from models.core.presets import preset_config
from models.io.checkpoint import Checkpoint, load_checkpoint

# One intra-op thread: the tiny models gain nothing from more, and with 2 threads on 2 busy cores
# OpenMP oversubscription makes each step many times slower. Override with TRANSINR_TEST_THREADS.
torch.set_num_threads(int(os.environ.get("TRANSINR_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """A folder data set of 40 synthetic PNGs (read-only for tests: copy before changing)."""
    return make_image_folder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, image_folder) -> Path:
    """A run folder holding a tiny meta-learner trained for a few steps (read-only for tests)."""
    return train_tiny(tmp_path_factory.mktemp("tiny-run"), image_folder)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Checkpoint:
    return load_checkpoint(tiny_run / "last.safetensors")


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    return preset_config("tiny")


@pytest.fixture
def tiny_model(tiny_checkpoint) -> TransInr:
    return tiny_checkpoint.build_model().eval()
