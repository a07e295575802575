"""Non-finite numbers never reach a file: training stops with a one-line error naming the step
and keeps the last good checkpoint; `.inr` writes refuse NaN, inf and float16 overflow."""

from __future__ import annotations

import math

import pytest
import torch
from reliability_support import (
    all_finite,
    assert_fails,
    assert_ok,
    checkpoint_step,
    invoke,
    temporaries,
)
from support import tiny_train_config

from models.core.presets import preset_config
from models.data.image_data import ImageDataset
from models.errors import TransInrError
from models.io.checkpoint import load_checkpoint, save_checkpoint
from models.tasks import objectives
from models.tasks.training import train


def train_tiny_in_process(run, image_folder, steps: int = 6):
    config = preset_config("tiny")
    train_set = ImageDataset("folder", image_folder, "train", config.image_size)
    val_set = ImageDataset("folder", image_folder, "val", config.image_size)
    train_config = tiny_train_config(steps=steps, checkpoint_every=1, val_every=2)
    return train(run, config, train_config, train_set, val_set, torch.device("cpu"))


def assert_every_checkpoint_finite(run):
    files = sorted(run.glob("*.safetensors"))
    assert files
    for path in files:
        assert all_finite(load_checkpoint(path)), path  # loading refuses non-finite weights too
    assert temporaries(run) == []


@pytest.fixture
def loss_turns_nan_at(monkeypatch):
    """Make the training loss NaN from the given (1-based) step on."""

    def install(bad_step: int):
        original = objectives.ImageLoss.__call__
        calls = {"count": 0}

        def patched(self, weights, images, generator=None, image_weights=None):
            calls["count"] += 1
            loss, psnr = original(self, weights, images, generator, image_weights)
            return (loss * math.nan if calls["count"] >= bad_step else loss), psnr

        monkeypatch.setattr(objectives.ImageLoss, "__call__", patched)

    return install


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path, image_folder, loss_turns_nan_at
):
    loss_turns_nan_at(4)
    run = tmp_path / "run"
    with pytest.raises(TransInrError) as error:
        train_tiny_in_process(run, image_folder)
    message = str(error.value)
    assert "\n" not in message
    assert "not finite at step 4" in message
    assert str(run / "last.safetensors") in message
    assert checkpoint_step(run / "last.safetensors") == 3  # the step before: nothing else lost
    assert checkpoint_step(run / "best.safetensors") == 2  # the validation at step 2
    assert_every_checkpoint_finite(run)


def test_nan_gradients_are_caught_before_any_checkpoint_write(tmp_path, image_folder, monkeypatch):
    # The loss stays finite but the gradients are NaN from step 3: the weights turn NaN, and
    # the checkpoint due after step 3 is refused, not written.
    original = objectives.ImageLoss.__call__
    calls = {"count": 0}

    def patched(self, weights, images, generator=None, image_weights=None):
        calls["count"] += 1
        if calls["count"] >= 3:
            weights[0].register_hook(lambda grad: torch.full_like(grad, math.nan))
        return original(self, weights, images, generator, image_weights)

    monkeypatch.setattr(objectives.ImageLoss, "__call__", patched)
    run = tmp_path / "run"
    with pytest.raises(TransInrError, match="not finite at step 3"):
        train_tiny_in_process(run, image_folder)
    assert checkpoint_step(run / "last.safetensors") == 2
    assert_every_checkpoint_finite(run)


def test_an_absurd_learning_rate_fails_with_one_line(tmp_path, image_folder):
    run = tmp_path / "run"
    result = invoke(
        "train", "--preset", "tiny", "--dataset", "folder", "--data", image_folder,
        "--steps", 10, "--lr", 1e30, "--warmup-steps", 0, "--checkpoint-every", 1,
        "--workers", 0, "--device", "cpu", "--out", run, "--quiet",
    )  # fmt: skip
    line = assert_fails(result, "not finite at step", "last.safetensors", "--lr")
    step = int(line.split("not finite at step ")[1].split(";")[0])
    assert checkpoint_step(run / "last.safetensors") == step - 1
    assert_every_checkpoint_finite(run)


def test_resume_takes_a_new_lr(tmp_path, image_folder):
    """The divergence message advises resuming with a lower --lr: --resume must apply it."""
    run = tmp_path / "run"
    common = ("--checkpoint-every", 1, "--workers", 0, "--device", "cpu", "--quiet")
    result = invoke(
        "train", "--preset", "tiny", "--dataset", "folder", "--data", image_folder,
        "--steps", 6, "--out", run, *common,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke("train", "--out", run, "--resume", "--steps", 9, "--lr", 1e-5, *common)
    assert result.exit_code == 0, result.output
    state = load_checkpoint(run / "last.safetensors").train_state
    assert state["step"] == 9 and state["train_config"]["lr"] == 1e-5


@pytest.fixture
def broken_models(tmp_path, tiny_checkpoint):
    """Two checkpoints with finite but absurd weights: one whose INRs come out NaN (its weight
    heads overflow), one whose INR biases are 1e6 (over float16's range)."""
    nan_model = tiny_checkpoint.build_model()
    big_bias = tiny_checkpoint.build_model()
    with torch.no_grad():
        for name, parameter in nan_model.named_parameters():
            if name.startswith("hypernetwork.heads"):
                parameter.mul_(1e30)
        big_bias.hypernetwork.base_weights[0][-1] = 1e6
    paths = {"nan": tmp_path / "nan.safetensors", "big": tmp_path / "big.safetensors"}
    save_checkpoint(paths["nan"], nan_model, tiny_checkpoint.config, {"step": 1})
    save_checkpoint(paths["big"], big_bias, tiny_checkpoint.config, {"step": 1})
    return paths


def test_encode_refuses_to_write_non_finite_weights(tmp_path, image_folder, broken_models):
    out = tmp_path / "out"
    image = image_folder / "img00.png"
    result = invoke("encode", image, "--model", broken_models["nan"], "-o", out / "a.inr", "-q")
    assert_fails(result, "not finite", "nothing written")
    result = invoke("encode", image, "--model", broken_models["big"], "-o", out / "b.inr",
                    "--dtype", "float16", "-q")  # fmt: skip
    assert_fails(result, "overflow", "float16", "--dtype float32")
    assert not out.exists() or sorted(p.name for p in out.rglob("*")) == []
    # float32 holds the big bias: written and readable
    assert_ok(invoke("encode", image, "--model", broken_models["big"], "-o", out / "b.inr", "-q"))
    assert (out / "b.inr").is_file()


def test_refine_that_diverges_writes_nothing(tmp_path, inr_copy, image_folder):
    before = inr_copy.read_bytes()
    result = invoke("refine", inr_copy, "--image", image_folder / "img00.png", "--steps", 3,
                    "--lr", 1e30, "-o", tmp_path / "refined.inr", "-q")  # fmt: skip
    assert_fails(result, "--lr 1e+30", "out of range")  # refused before any step
    assert not (tmp_path / "refined.inr").exists()
    assert inr_copy.read_bytes() == before
    assert temporaries(tmp_path) == []
