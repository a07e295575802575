"""The meta-learning loop (paper Sec. 3.3): observations -> weights -> render -> MSE.

Adam, lr x0.1 after 80% of the steps (the paper's recipe), full-image MSE, periodic validation,
atomic checkpoints (`last` and `best`) and exact resume (optimizer, RNG and data order are saved).
The loop reports through a callback and never prints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from models.checkpoint import Checkpoint, save_checkpoint
from models.config import ModelConfig
from models.data import EpochSampler
from models.errors import TransInrError
from models.metalearner import TransInr
from models.objectives import ImageLoss, ImageObjective, NerfObjective

__all__ = ["ImageLoss", "TrainConfig", "train", "recipe"]


@dataclass
class TrainConfig:
    """How to train: steps, batch, optimiser and bookkeeping. Written into every checkpoint."""

    steps: int = 0  # 0: derived from epochs
    epochs: float = 30.0
    batch_size: int = 16
    lr: float = 1e-4
    lr_decay_at: float = 0.8  # lr x0.1 from this fraction of the steps on
    warmup_steps: int = 0
    seed: int = 0
    val_every: int = 500
    val_images: int = 256
    checkpoint_every: int = 100
    workers: int = 2
    precision: str = "fp32"  # fp32 | bf16 (autocast): see resolve_precision
    dataset: str = "celeba"
    data: str = ""
    # View synthesis (Sec. 4.2): support views in, loss on rays of another view of the object.
    category: str = ""
    support_views: int = 1
    rays_per_object: int = 128
    foreground_epochs: float = 1.0  # half of the rays on the object while epoch < this


@dataclass
class Progress:
    """One report from the loop: a training step, or a validation."""

    step: int
    total_steps: int
    loss: float = math.nan
    psnr: float = math.nan
    items_per_second: float = math.nan  # images, or objects for NeRF
    val_psnr: float | None = None
    best_val_psnr: float | None = None
    lr: float = math.nan


@dataclass
class TrainResult:
    steps: int
    final_val_psnr: float
    best_val_psnr: float
    seconds: float
    history: list[dict] = field(default_factory=list)


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Step-wise schedule: optional linear warm-up, then x0.1 from `lr_decay_at` of the run."""
    lr = config.lr
    if config.warmup_steps and step < config.warmup_steps:
        lr *= (step + 1) / config.warmup_steps
    if step >= config.lr_decay_at * total_steps:
        lr *= 0.1
    return lr


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TransInrError(
            "--device cuda was given but no CUDA GPU is available; use --device cpu"
        )
    if name not in ("cpu", "cuda"):
        raise TransInrError(f"unknown --device '{name}'; choose auto, cpu or cuda")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' -> bf16 on CUDA GPUs that support it, fp32 elsewhere (CPU bf16 is opt-in)."""
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16" if cuda_bf16 else "fp32"
    if name not in ("fp32", "bf16"):
        raise TransInrError(f"unknown --precision '{name}'; choose auto, fp32 or bf16")
    return name


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """Mixed precision for the forward pass: matmuls in bf16, weights and loss in fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def total_steps(config: TrainConfig, train_size: int) -> int:
    if config.steps:
        return config.steps
    return max(1, math.ceil(config.epochs * train_size / config.batch_size))


def train(
    run_dir: Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    train_set: Dataset,
    val_set: Dataset,
    device: torch.device,
    resume: Checkpoint | None = None,
    on_progress: Callable[[Progress], None] = lambda progress: None,
) -> TrainResult:
    """Train (or resume) a meta-learner; writes `last` and `best` checkpoints in run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(train_config.seed)
    model = TransInr(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr, fused=True)
    state = {"step": 0, "best_val_psnr": -math.inf, "history": [], "seconds": 0.0}
    if resume is not None:
        model.load_state_dict(resume.model_state)
        if resume.optimizer_state is not None:
            try:
                optimizer.load_state_dict(resume.optimizer_state)
            except (ValueError, KeyError, RuntimeError) as error:
                raise TransInrError(
                    f"the checkpoint's optimizer state does not fit the model ({error}); "
                    "it is corrupt: start over with --overwrite"
                ) from None
        if resume.rng_state is not None:
            torch.set_rng_state(resume.rng_state)
        state.update({k: resume.train_state[k] for k in state if k in resume.train_state})
    steps = total_steps(train_config, len(train_set))
    (run_dir / "config.json").write_text(model_config.to_json() + "\n")

    consumed = state["step"] * train_config.batch_size
    sampler = EpochSampler(
        len(train_set), train_config.seed, consumed // len(train_set), consumed % len(train_set)
    )
    loader = DataLoader(
        train_set,
        batch_size=train_config.batch_size,
        sampler=sampler,
        num_workers=train_config.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=train_config.workers > 0,
        prefetch_factor=4 if train_config.workers > 0 else None,
    )
    if model_config.task == "nerf":
        objective = NerfObjective(
            model_config,
            device,
            val_set,
            train_config.val_images,
            train_config.support_views,
            train_config.rays_per_object,
            train_config.foreground_epochs,
            train_config.seed,
        )
    else:
        objective = ImageObjective(model_config, device, val_set, train_config.val_images)

    def validate() -> float:
        model.eval()
        score = objective.validate(model, train_config.batch_size)
        model.train()
        return score

    def write(name: str) -> None:
        payload = {**state, "train_config": asdict(train_config)}
        save_checkpoint(run_dir / name, model, model_config, payload, optimizer)

    model.train()
    started, last_time, last_val = time.perf_counter(), time.perf_counter(), None
    batches = iter(loader)
    while state["step"] < steps:
        step = state["step"]
        batch = next(batches)
        epoch = step * train_config.batch_size / len(train_set)
        lr = learning_rate(train_config, step, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast(device, train_config.precision):
            loss, item_psnr = objective.loss(model, batch, step, epoch)
        if not torch.isfinite(loss):
            raise TransInrError(
                f"training diverged: the loss is not finite at step {step + 1}; the last good "
                f"checkpoint is {run_dir / 'last.safetensors'}: resume with a lower --lr"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["step"] = step + 1
        now = time.perf_counter()
        state["seconds"] += now - last_time
        speed = len(item_psnr) / max(now - last_time, 1e-9)
        last_time = now
        progress = Progress(
            state["step"], steps, loss.item(), item_psnr.mean().item(), speed, lr=lr
        )
        done = state["step"] == steps
        if state["step"] % train_config.val_every == 0 or done:
            last_val = validate()
            state["history"].append({"step": state["step"], "val_psnr": last_val})
            progress.val_psnr = last_val
            if last_val > state["best_val_psnr"]:
                state["best_val_psnr"] = last_val
                write("best.safetensors")
            progress.best_val_psnr = state["best_val_psnr"]
        if (
            state["step"] % train_config.checkpoint_every == 0
            or done
            or progress.val_psnr is not None
        ):
            write("last.safetensors")
        on_progress(progress)
        last_time = time.perf_counter()
    if last_val is None:  # resumed a finished run
        last_val = validate()
    return TrainResult(
        steps=state["step"],
        final_val_psnr=last_val,
        best_val_psnr=state["best_val_psnr"],
        seconds=time.perf_counter() - started,
        history=state["history"],
    )


# Default training recipes per task and preset: the paper's for the paper presets (Adam 1e-4;
# images: batch 16, CelebA 30 epochs, Imagenette 400; views: batch 32 objects, 1000 epochs,
# 128 rays per object), faster ones for the CPU presets.
_PAPER_NERF = {"epochs": 1000.0, "batch_size": 32, "lr": 1e-4, "support_views": 1}
RECIPES: dict[str, dict[str, dict]] = {
    "image": {
        "celeba": {"epochs": 30.0, "batch_size": 16, "lr": 1e-4},
        "imagenette": {"epochs": 400.0, "batch_size": 16, "lr": 1e-4},
        "celeba89": {"epochs": 30.0, "batch_size": 16, "lr": 3e-4, "warmup_steps": 100},
        "tiny": {"epochs": 1.0, "batch_size": 16, "lr": 3e-3, "warmup_steps": 30},
    },
    "nerf": {
        **{name: dict(_PAPER_NERF) for name in ("chairs", "cars", "lamps")},
        **{
            f"{name}-2view": {**_PAPER_NERF, "support_views": 2}
            for name in ("chairs", "cars", "lamps")
        },
        "small": {"epochs": 200.0, "batch_size": 8, "lr": 3e-4, "warmup_steps": 100},
        "tiny": {"epochs": 20.0, "batch_size": 4, "lr": 1e-3, "warmup_steps": 20, "val_images": 2},
    },
}


def recipe(preset: str, task: str = "image", **overrides) -> TrainConfig:
    """The preset's default recipe with the given (non-None) overrides."""
    values = dict(RECIPES.get(task, {}).get(preset, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)
