"""The meta-learning loop (paper Sec. 3.3): observations -> weights -> render -> MSE.

Adam, lr x0.1 after 80% of the steps (the paper's recipe), full-image MSE, periodic validation,
atomic checkpoints (`last` and `best`) and exact resume (optimizer, RNG and data order are saved).
The loop reports through a callback and never prints.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from models.core.config import ModelConfig
from models.core.metalearner import build_meta_learner
from models.core.presets import preset_recipe
from models.data.loading import EpochSampler, guarded_loader
from models.data.view_augment import parse_augmentations
from models.errors import TransInrError
from models.io.checkpoint import Checkpoint, save_checkpoint
from models.io.safetensors_io import atomic_write
from models.tasks.devices import resolve_device  # noqa: F401  (re-exported)
from models.tasks.distributed import Distributed
from models.tasks.objectives import ImageObjective, NerfObjective


@dataclass
class TrainConfig:
    """How to train: steps, batch, optimiser and bookkeeping. Written into every checkpoint."""

    steps: int = 0  # 0: derived from epochs
    epochs: float = 30.0
    batch_size: int = 16
    lr: float = 1e-4
    lr_decay_at: float = 0.8  # lr x0.1 from this fraction of the steps on
    warmup_steps: int = 0
    budget_minutes: float = 0.0  # > 0: stop after this much training time (validation excluded)
    seed: int = 0
    val_every: int = 500
    val_images: int = 256
    checkpoint_every: int = 100  # write `last` every N steps ...
    checkpoint_minutes: float = 0.0  # ... and every M minutes of wall time (0: off)
    workers: int = 2
    precision: str = "fp32"  # fp32 | bf16 (autocast): see resolve_precision
    compile: bool = False  # torch.compile the model
    dataset: str = "celeba"
    data: str = ""
    # Images: "grid" trains on pixel centres (the paper); "continuous" on a jittered grid with
    # interpolated targets (models/tasks/objectives.py). input_size > 0: the encoder sees the images
    # downsampled to it and resized back, the loss is on the full images (a learned upscale).
    coordinates: str = "grid"
    input_size: int = 0
    flat_images: float = 0.0  # images: this share of each batch replaced by uniform colours
    flat_weight: float = 1.0  # images: the loss weight of those uniform images
    init_from: str = ""  # a checkpoint whose model weights start the run (fine-tuning)
    # View synthesis (Sec. 4.2): support views in, loss on rays of another view of the object.
    category: str = ""
    support_views: int = 1
    rays_per_object: int = 128
    foreground_epochs: float = 1.0  # half of the rays on the object while epoch < this
    augment: str = ""  # images: 'flip'; NeRF: 'mirror', 'colours' or both (view_augment.py)
    clip_grad: float = 0.0  # > 0: clip the gradients' global L2 norm to this before each step


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
    data_wait: float = 0.0  # fraction of the step spent waiting for the next batch


@dataclass
class TrainResult:
    steps: int
    final_val_psnr: float | None
    best_val_psnr: float
    seconds: float
    history: list[dict] = field(default_factory=list)
    interrupted: bool = False  # stopped on request; `last` holds the state to resume from
    data_wait: float = 0.0  # fraction of the training time spent waiting for data


PREFETCH_BUDGET = 1 << 30  # bytes of batches the loader workers may hold ahead of the loop


def prefetch_factor(train_set: Dataset, train_config: TrainConfig, world_size: int) -> int | None:
    """Batches each loader worker prepares ahead: 4, fewer when the items are so large (views
    of 512 px) that 4 would hold more than PREFETCH_BUDGET; None without workers."""
    if train_config.workers == 0:
        return None
    item_bytes = getattr(train_set, "item_bytes", 0)
    batch_bytes = max(1, item_bytes * (train_config.batch_size // world_size))
    return max(1, min(4, PREFETCH_BUDGET // (batch_bytes * train_config.workers)))


def learning_rate(config: TrainConfig, step: int, total_steps: int, seconds: float = 0.0) -> float:
    """Step-wise schedule: optional linear warm-up, then x0.1 from `lr_decay_at` of the run
    (of its steps, or of its time budget when it has one)."""
    lr = config.lr
    if config.warmup_steps and step < config.warmup_steps:
        lr *= (step + 1) / config.warmup_steps
    if config.budget_minutes > 0:
        decayed = seconds >= config.lr_decay_at * config.budget_minutes * 60
    else:
        decayed = step >= config.lr_decay_at * total_steps
    return lr * 0.1 if decayed else lr


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


def initialise_from(model: torch.nn.Module, path: Path) -> None:
    """Start from another checkpoint's model weights (same architecture; Fourier band, recipe
    and data may differ): fine-tuning, e.g. a bundled model retrained with a new band."""
    from models.io.checkpoint import load_checkpoint

    source = load_checkpoint(path)
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    found = {name: tuple(value.shape) for name, value in source.model_state.items()}
    if expected != found:
        raise TransInrError(
            f"--init-from {path}: its model ({source.config.preset}, {source.config.method}) "
            "does not have this model's layers and shapes; start from a checkpoint of the "
            "same preset and method"
        )
    model.load_state_dict({name: value.float() for name, value in source.model_state.items()})


def total_steps(config: TrainConfig, train_size: int) -> int:
    """--steps; else a time budget runs until spent; else --epochs of the training set."""
    if config.steps:
        return config.steps
    if config.budget_minutes > 0:
        return 10**9
    return max(1, math.ceil(config.epochs * train_size / config.batch_size))


def start_state(
    run_dir: Path, model_config: ModelConfig, train_config: TrainConfig, device: torch.device,
    resume: Checkpoint | None, ctx: Distributed,
) -> tuple[torch.nn.Module, torch.optim.Optimizer, dict]:  # fmt: skip
    """The model (seeded, or from --init-from, or the resumed checkpoint's), its Adam and the
    run's state (step, best validation, history, seconds); clears killed writes' temporaries
    and writes the run's config.json."""
    torch.manual_seed(train_config.seed)
    model = build_meta_learner(model_config)
    if train_config.init_from and resume is None:  # before any file is written: may refuse
        initialise_from(model, Path(train_config.init_from))
    model = model.to(device)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for pattern in (".*.safetensors.*", ".config.json.*"):  # temporaries of killed writes
            for stale in run_dir.glob(pattern):
                stale.unlink(missing_ok=True)
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
    if ctx.is_main:
        atomic_write(run_dir / "config.json", (model_config.to_json() + "\n").encode())
    return model, optimizer, state


def training_loader(
    train_set: Dataset, train_config: TrainConfig, step: int, device: torch.device,
    ctx: Distributed,
):  # fmt: skip
    """Batches in the seeded epoch order from `step` on (this rank's share under DDP)."""
    consumed = step * train_config.batch_size
    sampler = EpochSampler(
        len(train_set),
        train_config.seed,
        consumed // len(train_set),
        consumed % len(train_set),
        train_config.batch_size,
        ctx.rank,
        ctx.world_size,
    )
    return guarded_loader(
        train_set,
        batch_size=train_config.batch_size // ctx.world_size,
        sampler=sampler,
        num_workers=train_config.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=train_config.workers > 0,
        generator=torch.Generator(),  # the loader's base seed must not draw on the global RNG
        prefetch_factor=prefetch_factor(train_set, train_config, ctx.world_size),
    )


def build_objective(
    model_config: ModelConfig, train_config: TrainConfig, val_set: Dataset, device: torch.device
):
    """The task's loss and validation: rays of query views (NeRF) or pixels (images)."""
    if model_config.task == "nerf":
        return NerfObjective(
            model_config,
            device,
            val_set,
            train_config.val_images,
            train_config.support_views,
            train_config.rays_per_object,
            train_config.foreground_epochs,
            train_config.seed,
            parse_augmentations(train_config.augment),
        )
    return ImageObjective(
        model_config,
        device,
        val_set,
        train_config.val_images,
        train_config.coordinates,
        train_config.input_size,
        train_config.seed,
        train_config.flat_images,
        train_config.flat_weight,
    )


def write_checkpoint(
    path: Path, model: torch.nn.Module, model_config: ModelConfig, train_config: TrainConfig,
    optimizer: torch.optim.Optimizer, state: dict,
) -> None:  # fmt: skip
    """Save `last` or `best`; weights or Adam moments that are not finite are refused (the last
    finite checkpoint stays)."""
    moments = [v for group in optimizer.state.values() for v in group.values()]
    finite = all(torch.isfinite(p).all() for p in model.parameters()) and all(
        torch.isfinite(v).all() for v in moments if torch.is_tensor(v)
    )
    if not finite:
        raise TransInrError(
            f"training diverged: the weights are not finite at step {state['step']}; the "
            f"last finite checkpoint is {path.parent / 'last.safetensors'}: resume with a lower "
            "--lr (or start over with --overwrite if it was already diverging)"
        )
    payload = {**state, "train_config": asdict(train_config)}
    save_checkpoint(path, model, model_config, payload, optimizer)


def optimise_step(
    trained, objective, optimizer: torch.optim.Optimizer, batch, when: tuple[int, float, float],
    precision: str, device: torch.device, ctx: Distributed, run_dir: Path, clip_grad: float = 0.0,
) -> torch.Tensor:  # fmt: skip
    """One Adam step at `when` = (step, epoch, lr), the gradients' global norm clipped to
    `clip_grad` first if > 0. Returns the step's global sums (one collective): loss x items,
    PSNR, items, non-finite ranks; a non-finite loss on any rank stops every rank with the same
    one-line error."""
    step, epoch, lr = when
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(device, precision):
        loss, item_psnr = objective.loss(trained, batch, step, epoch)
    totals = ctx.all_reduce_sum(
        torch.tensor(
            [
                loss.item() * len(item_psnr),
                item_psnr.sum().item(),
                float(len(item_psnr)),
                float(not torch.isfinite(loss)),
            ],
            dtype=torch.float64,
        )
    )
    if totals[3] > 0:
        raise TransInrError(
            f"training diverged: the loss is not finite at step {step + 1}; the last "
            f"finite checkpoint is {run_dir / 'last.safetensors'}: resume with a lower --lr "
            "(or start over with --overwrite if it was already diverging)"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(trained.parameters(), clip_grad)
    optimizer.step()
    return totals


def record_validation(state: dict, val_psnr: float, progress: Progress, write) -> float:
    """Log a validation in the run's history and progress; a new best writes `best`."""
    state["history"].append(
        {"step": state["step"], "val_psnr": val_psnr, "seconds": round(state["seconds"], 1)}
    )
    progress.val_psnr = val_psnr
    if val_psnr > state["best_val_psnr"]:
        state["best_val_psnr"] = val_psnr
        write("best.safetensors")
    progress.best_val_psnr = state["best_val_psnr"]
    return val_psnr


def wrapped_for_training(
    model: torch.nn.Module, compile_model: bool, device: torch.device, ctx: Distributed
) -> torch.nn.Module:
    """The module the steps call: DDP under torchrun, torch.compile'd with --compile."""
    trained = model
    if ctx.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    return torch.compile(trained) if compile_model else trained


def validation_psnr(model: torch.nn.Module, objective, batch_size: int, ctx: Distributed) -> float:
    """Mean validation PSNR over every rank's share of the validation set."""
    model.eval()
    scores = objective.validate(model, batch_size, ctx.rank, ctx.world_size)
    model.train()
    totals = ctx.all_reduce_sum(torch.tensor([scores.sum().item(), float(len(scores))]))
    return (totals[0] / totals[1]).item()


def check_batch_split(batch_size: int, ctx: Distributed) -> None:
    """Under torchrun the batch is global: it must split evenly over the processes."""
    if batch_size % ctx.world_size:
        raise TransInrError(
            f"--batch-size {batch_size} does not split over {ctx.world_size} "
            "processes; use a multiple of the process count"
        )


class TimeBudget:
    """A run's training-time budget (--minutes, validation excluded). `seconds` is the training
    time all ranks agree on (their maximum): the lr schedule reads it."""

    def __init__(self, budget_minutes: float, seconds: float, ctx: Distributed) -> None:
        self.budget_minutes, self.seconds, self.ctx = budget_minutes, seconds, ctx

    def spent(self, seconds: float) -> bool:
        """Is the budget spent after this rank's `seconds` of training? Also agrees the seconds
        that the lr schedule reads."""
        if self.budget_minutes <= 0:
            return False
        agreed = torch.tensor([seconds], dtype=torch.float64)
        if self.ctx.enabled:  # ranks' clocks drift: every rank must decay and stop at the same step
            agreed = self.ctx.all_reduce_max(agreed)
        self.seconds = agreed.item()
        return self.seconds >= self.budget_minutes * 60


def step_progress(
    step: int, steps: int, totals: torch.Tensor, seconds: float, lr: float, wait: float
) -> Progress:
    """What a step reports: mean loss and PSNR over all ranks, items a second, data wait."""
    items = totals[2].item()
    return Progress(
        step,
        steps,
        (totals[0] / items).item(),
        (totals[1] / items).item(),
        items / max(seconds, 1e-9),
        lr=lr,
        data_wait=wait / max(seconds, 1e-9),
    )


def train(
    run_dir: Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    train_set: Dataset,
    val_set: Dataset,
    device: torch.device,
    resume: Checkpoint | None = None,
    on_progress: Callable[[Progress], None] = lambda progress: None,
    should_stop: Callable[[], bool] = lambda: False,
    distributed: Distributed | None = None,
) -> TrainResult:
    """Train (or resume) a meta-learner; writes `last` and `best` checkpoints in run_dir.

    `should_stop` is asked after every step (a signal handler sets it): the loop then writes
    `last` and returns with `interrupted` set, so a resumed run continues exactly.
    Under torchrun (`distributed`), `batch_size` is the global batch: each rank trains on its
    share, DDP averages the gradients, and only rank 0 writes checkpoints.
    """
    ctx = distributed or Distributed()
    check_batch_split(train_config.batch_size, ctx)
    model, optimizer, state = start_state(run_dir, model_config, train_config, device, resume, ctx)
    steps = total_steps(train_config, len(train_set))
    trained = wrapped_for_training(model, train_config.compile, device, ctx)
    loader = training_loader(train_set, train_config, state["step"], device, ctx)
    objective = build_objective(model_config, train_config, val_set, device)
    validate = functools.partial(validation_psnr, model, objective, train_config.batch_size, ctx)

    def write(name: str) -> None:
        if ctx.is_main:
            write_checkpoint(run_dir / name, model, model_config, train_config, optimizer, state)

    model.train()
    started, last_time, last_val = time.perf_counter(), time.perf_counter(), None
    last_write, batches, waited = time.monotonic(), loader, 0.0
    budget = TimeBudget(train_config.budget_minutes, state["seconds"], ctx)
    done = budget.spent(state["seconds"])
    while state["step"] < steps and not done:
        step = state["step"]
        batch = next(batches)
        wait = time.perf_counter() - last_time
        epoch = step * train_config.batch_size / len(train_set)
        lr = learning_rate(train_config, step, steps, budget.seconds)
        totals = optimise_step(
            trained, objective, optimizer, batch, (step, epoch, lr), train_config.precision,
            device, ctx, run_dir, train_config.clip_grad,
        )  # fmt: skip
        state["step"] = step + 1
        now = time.perf_counter()
        state["seconds"] += now - last_time
        waited += wait
        progress = step_progress(state["step"], steps, totals, now - last_time, lr, wait)
        last_time = now
        done = state["step"] == steps or budget.spent(state["seconds"])
        if state["step"] % train_config.val_every == 0 or done:
            last_val = record_validation(state, validate(), progress, write)
        minutes = (time.monotonic() - last_write) / 60.0
        stop = bool(ctx.all_reduce_sum(torch.tensor([float(should_stop())]))[0] > 0)
        due = state["step"] % train_config.checkpoint_every == 0 or done or stop
        if due or progress.val_psnr is not None or 0 < train_config.checkpoint_minutes <= minutes:
            write("last.safetensors")
            last_write = time.monotonic()
        on_progress(progress)
        last_time = time.perf_counter()
        if stop and not done:
            break
    else:
        if last_val is None:  # resumed a finished run
            last_val = validate()
    seconds = time.perf_counter() - started
    return TrainResult(
        steps=state["step"],
        final_val_psnr=last_val,
        best_val_psnr=state["best_val_psnr"],
        seconds=seconds,
        history=state["history"],
        interrupted=state["step"] < steps and not done,
        data_wait=waited / max(seconds, 1e-9),
    )


def recipe(preset: str, task: str = "image", **overrides) -> TrainConfig:
    """The preset's recipe (models/core/presets.py) with the given (non-None) overrides."""
    values = preset_recipe(preset, task)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)
