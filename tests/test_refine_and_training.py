"""Test-time refinement, the training loop, checkpoints and exact resume (tiny preset)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from support import tiny_train_config

from models.core.inr import init_weights
from models.core.metalearner import TransInr, build_meta_learner
from models.core.presets import preset_config
from models.data.image_data import ImageDataset
from models.errors import TransInrError
from models.io.checkpoint import load_checkpoint
from models.tasks.refinement import image_loss, observed_psnr, refine
from models.tasks.training import TrainConfig, learning_rate, total_steps, train


def smooth_images(batch: int, size: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(batch)
    ys = torch.linspace(-1, 1, size)[:, None]
    xs = torch.linspace(-1, 1, size)[None, :]
    images = []
    for _ in range(batch):
        a, b, c = torch.rand(3, generator=generator) * 3
        images.append(
            torch.stack([0.5 + 0.4 * torch.sin(a * ys + b * xs + c * k) for k in range(3)])
        )
    return torch.stack(images)


def distinct_weights(batch: int):
    torch.manual_seed(3)
    config = preset_config("tiny").inr
    return [w + 0.05 * torch.randn_like(w) for w in init_weights(config, batch)]


def test_refinement_lowers_the_loss():
    config = preset_config("tiny").inr
    images = smooth_images(1)
    weights = distinct_weights(1)
    loss_fn = image_loss(config, images)
    before = loss_fn(weights, 0).item()
    losses = []
    tuned = refine(weights, loss_fn, steps=30, lr=1e-2, on_step=lambda s, v: losses.append(v))
    after = loss_fn(tuned, 0).item()
    assert len(losses) == 30
    assert after < 0.5 * before
    assert observed_psnr(tuned, config, images) > observed_psnr(weights, config, images)
    # The input weights are not modified in place.
    assert all(not w.requires_grad for w in tuned)
    assert not torch.equal(tuned[0], weights[0])


def test_refinement_keeps_each_items_best_weights_and_flags_divergence():
    from models.tasks.refinement import RefineSettings, refine_report

    config = preset_config("tiny").inr
    images = smooth_images(2)
    weights = distinct_weights(2)
    loss_fn = image_loss(config, images)
    start = loss_fn(weights, 0).detach()
    wild = refine_report(weights, loss_fn, 15, RefineSettings(lr=10.0, schedule="constant"))
    assert bool(wild.diverged.all())
    assert torch.all(wild.best_loss <= start + 1e-7)  # never worse than the input
    final = loss_fn(wild.weights, 0).detach()
    assert torch.allclose(final, wild.best_loss, rtol=1e-5)
    for index in range(2):  # an item kept at step 0 returns exactly its input
        if wild.best_step[index] == 0:
            pairs = zip(wild.weights, weights, strict=True)
            assert all(torch.equal(a[index], b[index]) for a, b in pairs)
    calm = refine_report(weights, loss_fn, 15, RefineSettings(lr=1e-3))
    assert not bool(calm.diverged.any()) and torch.all(calm.best_loss < start)
    assert torch.all(calm.best_step > 0)


def test_cosine_schedule_ends_at_zero_and_is_reported_per_step():
    from models.tasks.refinement import RefineSettings, refine_report

    config = preset_config("tiny").inr
    images = smooth_images(1)
    weights = distinct_weights(1)
    rates = []

    class Spy(torch.optim.Adam):
        def step(self, closure=None):
            rates.append(self.param_groups[0]["lr"])
            return super().step(closure)

    original = torch.optim.Adam
    torch.optim.Adam = Spy
    try:
        refine_report(weights, image_loss(config, images), 4, RefineSettings(2e-3, "cosine"))
    finally:
        torch.optim.Adam = original
    assert rates == pytest.approx([2e-3, 2e-3 * (0.5 + 0.5 * math.cos(math.pi / 4)), 1e-3,
                                   2e-3 * (0.5 + 0.5 * math.cos(3 * math.pi / 4))])  # fmt: skip


def test_batched_refinement_equals_per_image_refinement():
    config = preset_config("tiny").inr
    images = smooth_images(2)
    weights = distinct_weights(2)
    copy = [w.clone() for w in weights]
    together = refine(weights, image_loss(config, images), steps=8, lr=1e-3)
    alone = refine([w[:1] for w in weights], image_loss(config, images[:1]), steps=8, lr=1e-3)
    for a, b in zip(together, alone, strict=True):
        assert torch.allclose(a[:1], b, atol=1e-5)
    other = refine([w[1:] for w in weights], image_loss(config, images[1:]), steps=8, lr=1e-3)
    for a, b in zip(together, other, strict=True):
        assert torch.allclose(a[1:], b, atol=1e-5)
    assert all(torch.equal(w, c) for w, c in zip(weights, copy, strict=True))


def test_masked_loss_ignores_unobserved_pixels():
    config = preset_config("tiny").inr
    images = smooth_images(1)
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[4:12] = True
    changed = images.clone()
    changed[:, :, :4] = 1.0 - changed[:, :, :4]
    weights = distinct_weights(1)
    same = image_loss(config, images, mask)(weights, 0)
    assert torch.equal(same, image_loss(config, changed, mask)(weights, 0))
    assert not torch.equal(
        image_loss(config, images)(weights, 0), image_loss(config, changed)(weights, 0)
    )
    assert torch.allclose(
        observed_psnr(weights, config, images, mask), observed_psnr(weights, config, changed, mask)
    )


def test_learning_rate_decays_tenfold_after_80_percent():
    config = TrainConfig(lr=1e-3, lr_decay_at=0.8, warmup_steps=0)
    rates = [learning_rate(config, step, 10) for step in range(10)]
    assert rates[:8] == [1e-3] * 8
    assert rates[8:] == pytest.approx([1e-4, 1e-4])
    long_run = [learning_rate(config, step, 1000) for step in (0, 799, 800, 999)]
    assert long_run == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])


def test_learning_rate_warm_up_is_linear():
    config = TrainConfig(lr=1e-3, warmup_steps=4)
    assert [learning_rate(config, s, 100) for s in range(5)] == pytest.approx(
        [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3]
    )


def test_total_steps_from_epochs():
    assert total_steps(TrainConfig(steps=7), 1000) == 7
    assert total_steps(TrainConfig(epochs=2.0, batch_size=16), 100) == math.ceil(200 / 16)


def datasets(image_folder: Path):
    size = preset_config("tiny").image_size
    return (
        ImageDataset("folder", image_folder, "train", size),
        ImageDataset("folder", image_folder, "val", size),
    )


def test_training_writes_last_and_best_checkpoints(tiny_run, tiny_checkpoint):
    assert (tiny_run / "last.safetensors").is_file()
    assert (tiny_run / "best.safetensors").is_file()
    assert (tiny_run / "config.json").is_file()
    assert not list(tiny_run.glob(".*"))  # no temporary files left behind
    assert tiny_checkpoint.config == preset_config("tiny")
    assert tiny_checkpoint.train_state["step"] == 4
    assert tiny_checkpoint.train_state["train_config"]["steps"] == 4
    assert tiny_checkpoint.optimizer_state is not None
    best = load_checkpoint(tiny_run)  # a run folder resolves to best.safetensors
    assert math.isfinite(best.train_state["best_val_psnr"])
    torch.manual_seed(0)  # the same initialisation as the run (seed 0) ...
    fresh = TransInr(tiny_checkpoint.config)
    changed = [
        not torch.equal(tensor, fresh.state_dict()[name])
        for name, tensor in tiny_checkpoint.model_state.items()
    ]
    assert all(changed)  # ... and every tensor moved in training


def test_training_reports_progress_with_the_schedule(tmp_path, image_folder):
    train_set, val_set = datasets(image_folder)
    config = tiny_train_config(steps=5, warmup_steps=0, lr=1e-3, val_every=2)
    reports = []
    result = train(
        tmp_path / "run", preset_config("tiny"), config, train_set, val_set,
        torch.device("cpu"), on_progress=reports.append,
    )  # fmt: skip
    assert [p.step for p in reports] == [1, 2, 3, 4, 5]
    assert [p.lr for p in reports] == pytest.approx([1e-3] * 4 + [1e-4])
    assert all(math.isfinite(p.loss) and p.loss > 0 for p in reports)
    assert [p.step for p in reports if p.val_psnr is not None] == [2, 4, 5]
    assert result.steps == 5
    assert [h["step"] for h in result.history] == [2, 4, 5]
    assert result.best_val_psnr == max(h["val_psnr"] for h in result.history)


class Stop(Exception):
    pass


def stop_at(step: int):
    def on_progress(progress):
        if progress.step == step:
            raise Stop

    return on_progress


def model_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.safetensors").model_state


def test_interrupted_run_resumes_exactly(tmp_path, image_folder):
    train_set, val_set = datasets(image_folder)
    config = preset_config("tiny")
    cpu = torch.device("cpu")
    settings = {"steps": 6, "batch_size": 4, "checkpoint_every": 1}
    train(tmp_path / "straight", config, tiny_train_config(**settings), train_set, val_set, cpu)
    with pytest.raises(Stop):
        train(
            tmp_path / "resumed", config, tiny_train_config(**settings), train_set, val_set,
            cpu, on_progress=stop_at(3),
        )  # fmt: skip
    halfway = load_checkpoint(tmp_path / "resumed" / "last.safetensors")
    assert halfway.train_state["step"] == 3
    result = train(
        tmp_path / "resumed", config, tiny_train_config(**settings), train_set, val_set, cpu,
        resume=halfway,
    )  # fmt: skip
    assert result.steps == 6
    straight, resumed = model_state(tmp_path / "straight"), model_state(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


def test_three_steps_then_resume_to_six_equals_six_steps(tmp_path, image_folder):
    # No warm-up and no decay inside the run, so the schedule does not depend on the total.
    train_set, val_set = datasets(image_folder)
    config = preset_config("tiny")
    cpu = torch.device("cpu")
    common = {"batch_size": 4, "warmup_steps": 0, "lr_decay_at": 1.0}
    six = tiny_train_config(steps=6, **common)
    train(tmp_path / "straight", config, six, train_set, val_set, cpu)
    train(
        tmp_path / "resumed", config, tiny_train_config(steps=3, **common), train_set, val_set, cpu
    )
    first = load_checkpoint(tmp_path / "resumed" / "last.safetensors")
    assert first.train_state["step"] == 3
    train(tmp_path / "resumed", config, six, train_set, val_set, cpu, resume=first)
    straight, resumed = model_state(tmp_path / "straight"), model_state(tmp_path / "resumed")
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
    assert load_checkpoint(tmp_path / "resumed" / "last.safetensors").train_state["step"] == 6


def test_resuming_a_finished_run_trains_no_more(tmp_path, image_folder, tiny_checkpoint):
    train_set, val_set = datasets(image_folder)
    result = train(
        tmp_path / "again", tiny_checkpoint.config, tiny_train_config(), train_set, val_set,
        torch.device("cpu"), resume=tiny_checkpoint,
    )  # fmt: skip
    assert result.steps == 4
    assert math.isfinite(result.final_val_psnr)


def test_diverging_training_raises_a_user_error(tmp_path, image_folder):
    train_set, val_set = datasets(image_folder)
    with pytest.raises(TransInrError, match="diverged"):
        train(
            tmp_path / "run", preset_config("tiny"), tiny_train_config(lr=math.inf, steps=3),
            train_set, val_set, torch.device("cpu"),
        )  # fmt: skip


def test_clip_grad_bounds_the_gradient_before_adam(tmp_path, image_folder):
    """Adam's step is about lr whatever the gradient's scale, unless the gradient is far below
    its eps: clipping the global norm to 1e-12 leaves the weights almost where they started,
    while an unclipped step moves them by about the lr."""
    from support import train_tiny

    from models.io.checkpoint import load_checkpoint

    def moved(run: str, **overrides) -> float:
        path = train_tiny(tmp_path / run, image_folder, steps=1, lr=1e-3, warmup_steps=0,
                          seed=3, **overrides)  # fmt: skip
        state = load_checkpoint(path / "last.safetensors").model_state
        torch.manual_seed(3)
        start = build_meta_learner(preset_config("tiny")).state_dict()
        return max((state[k] - start[k]).abs().max().item() for k in start)

    free, clipped = moved("free"), moved("clipped", clip_grad=1e-12)
    assert free > 5e-4 and clipped < 1e-5, (free, clipped)
