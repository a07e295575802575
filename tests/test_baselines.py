"""The paper's baselines as `train --method`: Learned Init (MAML from a learned INR
initialisation) and the single-vector hypernetwork; checked against hand computations."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from support import REPO_ROOT
from test_cli import assert_fails, assert_ok, invoke, json_of

from models.core.baselines import LearnedInit
from models.core.config import ModelConfig
from models.core.metalearner import TransInr, build_meta_learner, parameter_breakdown
from models.core.presets import preset_config
from models.core.rendering import render_pixels
from models.errors import TransInrError
from models.io.checkpoint import load_checkpoint, save_checkpoint


def learned_init_config(**overrides) -> ModelConfig:
    return preset_config("tiny", method="learned-init", **overrides)


def images(batch: int = 3, size: int = 32) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def hand_sgd(model: LearnedInit, observations: torch.Tensor) -> list[torch.Tensor]:
    """k SGD steps on each image alone, spelled out."""
    config, results = model.config, []
    for image in observations:
        weights = [w.detach().clone()[None].requires_grad_(True) for w in model.initial_weights]
        for _ in range(config.inner_steps):
            prediction = render_pixels(weights, config.inr, config.image_size, config.image_size)
            target = image.permute(1, 2, 0).reshape(1, -1, 3)
            loss = (prediction - target).pow(2).mean()
            grads = torch.autograd.grad(loss, weights)
            weights = [
                (w - config.inner_lr * g).detach().requires_grad_(True)
                for w, g in zip(weights, grads, strict=True)
            ]
        results.append([w.detach()[0] for w in weights])
    return [torch.stack(layer) for layer in zip(*results, strict=True)]


def test_learned_init_is_k_sgd_steps_per_image():
    torch.manual_seed(0)
    model = LearnedInit(learned_init_config(inner_steps=3, inner_lr=0.5)).eval()
    observations = images()
    adapted = model(observations)
    for got, expected in zip(adapted, hand_sgd(model, observations), strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        assert not got.requires_grad  # eval: plain weights, like Trans-INR's


def test_learned_init_adapts_under_inference_mode_and_lowers_the_loss():
    torch.manual_seed(0)
    model = LearnedInit(learned_init_config(inner_steps=5, inner_lr=1.0)).eval()
    observations = images()
    with torch.inference_mode():
        adapted = model(observations)
    start = [w.expand(len(observations), -1, -1) for w in model.initial_weights]
    with torch.no_grad():
        before = model.inner_loss(start, observations, 0)
        after = model.inner_loss(adapted, observations, 0)
    assert after < 0.9 * before


def test_second_order_gradients_differ_from_first_order():
    torch.manual_seed(0)
    second = LearnedInit(learned_init_config(inner_steps=2, inner_lr=1.0)).train()
    first = LearnedInit(learned_init_config(inner_steps=2, inner_lr=1.0, first_order=True)).train()
    first.load_state_dict(second.state_dict())
    observations = images()
    gradients = []
    for model in (second, first):
        target = observations.permute(0, 2, 3, 1).reshape(3, -1, 3)
        prediction = render_pixels(model(observations), model.config.inr, 32, 32)
        (prediction - target).pow(2).mean().backward()
        gradients.append(model.initial_weights[0].grad.clone())
    assert torch.isfinite(gradients[0]).all() and gradients[0].abs().sum() > 0
    assert not torch.allclose(gradients[0], gradients[1], atol=1e-7)


def test_single_vector_uses_one_token_for_every_layer():
    config = preset_config("tiny", method="single-vector")
    model = TransInr(config)
    assert model.hypernetwork.weight_tokens.shape == (1, config.dim)
    assert config.group_counts() == [1] * config.inr.depth
    weights = model(images(2))
    assert [tuple(w.shape[1:]) for w in weights] == [
        (i + 1, o) for i, o in config.inr.layer_shapes()
    ]
    # G = 1 Trans-INR has one token per layer; the single vector shares one for all of them.
    per_layer = TransInr(preset_config("tiny", groups=1))
    difference = sum(p.numel() for p in per_layer.parameters()) - sum(
        p.numel() for p in model.parameters()
    )
    assert difference == (config.inr.depth - 1) * config.dim
    # Every layer's weights change when the one token changes.
    with torch.no_grad():
        before = model(images(1))
        model.hypernetwork.weight_tokens.add_(torch.randn(1, config.dim))
        after = model(images(1))
    assert all(not torch.allclose(b[:, :-1], a[:, :-1]) for b, a in zip(before, after, strict=True))


def test_methods_round_trip_through_checkpoints(tmp_path):
    for method in ("learned-init", "single-vector"):
        config = preset_config("tiny", method=method, inner_steps=4)
        model = build_meta_learner(config)
        save_checkpoint(tmp_path / f"{method}.safetensors", model, config, {"step": 1})
        loaded = load_checkpoint(tmp_path / f"{method}.safetensors")
        assert loaded.config.method == method and loaded.config.inner_steps == 4
        rebuilt = loaded.build_model()
        assert type(rebuilt) is type(model)
        assert parameter_breakdown(rebuilt)["total"] == parameter_breakdown(model)["total"]


def test_bad_method_configs_are_rejected():
    with pytest.raises(TransInrError, match="unknown --method"):
        preset_config("tiny", method="reptile")
    data = json.loads(preset_config("tiny").to_json())
    for key, value in (("method", "nope"), ("inner_steps", 0), ("inner_lr", -1.0)):
        with pytest.raises(TransInrError, match="corrupt"):
            ModelConfig.from_dict({**data, key: value})
    # Checkpoints written before the field existed read as Trans-INR.
    old = {k: v for k, v in data.items() if k not in ("method", "inner_steps", "inner_lr")}
    assert ModelConfig.from_dict(old).method == "trans-inr"
    assert dataclasses.replace(preset_config("tiny")).method == "trans-inr"


def test_cli_trains_a_learned_init_that_encode_and_eval_accept(tmp_path, image_folder):
    run = tmp_path / "li"
    dry = assert_ok(invoke("train", "--preset", "tiny", "--method", "learned-init", "--dry-run"))
    assert "Learned Init" in dry.stdout and "inner SGD steps" in dry.stdout
    result = json_of(
        invoke(
            "train", "--dataset", "folder", "--data", image_folder, "--preset", "tiny",
            "--method", "learned-init", "--inner-steps", "2", "--inner-lr", "0.5",
            "--steps", "4", "--batch-size", "4", "--workers", "0", "--val-every", "2",
            "--out", run, "--json", "--quiet",
        )
    )  # fmt: skip
    assert result["steps"] == 4
    assert load_checkpoint(run).config.method == "learned-init"
    image = REPO_ROOT / "assets" / "examples" / "astronaut.jpg"
    encoded = json_of(invoke("encode", image, "--model", run, "-o", tmp_path / "a.inr", "--json"))
    assert encoded["results"][0]["psnr"] > 5
    scores = json_of(
        invoke(
            "eval", "--model", run, "--dataset", "folder", "--data", image_folder,
            "--limit", "4", "--workers", "0", "--json", "--quiet",
        )
    )  # fmt: skip
    assert scores["images"] == 4 and scores["psnr"] > 5
    assert_fails(invoke("train", "--method", "maml", "--dry-run"), "maml", code=2)


def test_time_budget_schedule_and_stop(tmp_path, image_folder):
    from models.tasks.training import TrainConfig, learning_rate, total_steps

    config = TrainConfig(lr=1.0, budget_minutes=1.0)
    assert total_steps(config, 100) == 10**9  # the budget, not the epochs, ends the run
    assert learning_rate(config, 5, 10**9, seconds=47.9) == 1.0
    assert learning_rate(config, 5, 10**9, seconds=48.0) == pytest.approx(0.1)
    assert total_steps(TrainConfig(steps=7, budget_minutes=1.0), 100) == 7  # --steps caps
    run = tmp_path / "budget"
    result = json_of(
        invoke(
            "train", "--dataset", "folder", "--data", image_folder, "--preset", "tiny",
            "--minutes", "0.02", "--batch-size", "4", "--workers", "0", "--val-every", "1000",
            "--out", run, "--json", "--quiet",
        )
    )  # fmt: skip
    history = load_checkpoint(run / "last.safetensors").train_state["history"]
    assert result["steps"] > 1 and history[-1]["step"] == result["steps"]
    assert 1.2 <= history[-1]["seconds"] < 5.0  # stopped once 1.2 s of training were spent


def test_budget_keeps_warmup_and_resume_with_steps_replaces_the_budget(tmp_path, image_folder):
    from models.tasks.training import TrainConfig, learning_rate

    config = TrainConfig(lr=1.0, warmup_steps=10, budget_minutes=1.0)
    assert learning_rate(config, 0, 10**9, seconds=0.0) == pytest.approx(0.1)  # warm-up first
    assert learning_rate(config, 50, 10**9, seconds=50.0) == pytest.approx(0.1)  # then decay
    run = tmp_path / "budget"
    common = ("--batch-size", "4", "--workers", "0", "--val-every", "1000", "--json", "--quiet")
    first = json_of(
        invoke("train", "--dataset", "folder", "--data", image_folder, "--preset", "tiny",
               "--minutes", "0.005", "--out", run, *common)
    )  # fmt: skip
    resumed = json_of(
        invoke("train", "--out", run, "--resume", "--steps", first["steps"] + 3, *common)
    )
    assert resumed["steps"] == first["steps"] + 3


def test_options_that_would_be_ignored_are_refused(tmp_path, tiny_run):
    assert_fails(
        invoke("train", "--preset", "tiny", "--inner-steps", "3", "--dry-run"), "learned-init"
    )
    assert_fails(
        invoke(
            "train", "--preset", "tiny", "--method", "learned-init", "--groups", "4", "--dry-run"
        ),
        "groups",
    )
    assert_fails(
        invoke(
            "train", "--preset", "tiny", "--method", "learned-init", "--inner-lr", "0", "--dry-run"
        ),
        "inner-lr",
    )
    assert_fails(
        invoke("train", "--out", tiny_run, "--resume", "--method", "single-vector"),
        "fixed by the checkpoint",
    )
