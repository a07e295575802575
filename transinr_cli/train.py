"""`transinr train`: meta-learn a Transformer hypernetwork on images or posed views."""

from __future__ import annotations

import contextlib
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from models.errors import TransInrError
from transinr_cli.common import (
    Category,
    Coordinates,
    Dataset,
    Device,
    DeviceOption,
    FollowLinksOption,
    JsonOption,
    MaxPixelsOption,
    Method,
    Precision,
    QuietOption,
    Task,
    check_number,
    console,
    error_console,
    handle_errors,
    progress_bar,
)
from transinr_cli.data import synthetic_default

PAPER_NERF_PRESETS = ("chairs", "cars", "lamps", "chairs-2view", "cars-2view", "lamps-2view")
# The recipe options a resumed run takes from its checkpoint (train_setup.FIXED_ON_RESUME).
FIXED_RECIPE_OPTIONS = (
    "coordinates", "input_size", "flat_images", "flat_weight", "init_from", "augment",
)  # fmt: skip

TaskOption = Annotated[Task, typer.Option(help="What the meta-learner builds INRs of.")]
DatasetOption = Annotated[Dataset, typer.Option(help="Image data set layout of --data.")]
CategoryOption = Annotated[Category, typer.Option(help="NeRF: object category (learnit layout).")]
DataOption = Annotated[
    Path | None,
    typer.Option(help="Data set root. NeRF default: a generated synthetic set (cached)."),
]
PresetOption = Annotated[
    str | None,
    typer.Option(
        help="Model preset. image: celeba, imagenette, celeba89, tiny; "
        "nerf: chairs, cars, lamps (+ -2view), small, tiny."
    ),
]
RunDirOption = Annotated[Path | None, typer.Option(help="Run folder (default runs/PRESET).")]
EpochsOption = Annotated[float | None, typer.Option(help="Epochs (default: the preset's recipe).")]
StepsOption = Annotated[
    int | None, typer.Option(min=1, max=10**9, help="Steps; overrides --epochs.")
]
MinutesOption = Annotated[
    float | None,
    typer.Option(
        min=0,
        help="Time budget: stop after this much training time (validation excluded); "
        "the lr drops x0.1 at 80% of it; overrides --epochs, --steps still caps.",
    ),
]
BatchSizeOption = Annotated[
    int | None, typer.Option(min=1, max=4096, help="Images (or objects) per step.")
]
LrOption = Annotated[float | None, typer.Option(help="Adam learning rate.")]
WarmupStepsOption = Annotated[int | None, typer.Option(min=0, max=10**9, help="Linear lr warm-up.")]
GroupsOption = Annotated[
    int | None, typer.Option(min=1, max=65536, help="Weight groups G per INR layer.")
]
MethodOption = Annotated[
    Method,
    typer.Option(
        help="trans-inr; ipc (one low-rank generated layer, Kim et al. 2023); spatial (a grid "
        "of first-layer shifts, one cell block per patch; images); or a "
        "baseline: learned-init (MAML) or single-vector (one latent)."
    ),
]
InnerStepsOption = Annotated[
    int | None, typer.Option(min=1, max=100, help="learned-init: inner SGD steps (default 2).")
]
InnerLrOption = Annotated[
    float | None, typer.Option(min=0, help="learned-init: inner SGD lr (default 1.0).")
]
FirstOrderOption = Annotated[
    bool, typer.Option(help="learned-init: first-order MAML (no second derivatives).")
]
CoordinatesOption = Annotated[
    Coordinates | None,
    typer.Option(
        help="Images: train on pixel centres (grid, the paper) or on jittered sub-pixel "
        "positions with interpolated targets (continuous). Default: the preset's recipe."
    ),
]
InputSizeOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Images: a learned upscale: encode each image downsampled to this size (and "
        "resized back), score the INR on the full image.",
    ),
]
FlatImagesOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Images: the share of each batch replaced by uniform colours, so plain inputs "
        "encode plain. Default: the preset's recipe.",
    ),
]
FlatWeightOption = Annotated[
    float | None,
    typer.Option(
        help="Images: the loss weight of those uniform images (their error is small, so "
        "weight 1 leaves a faint face on plain inputs). Default: the preset's recipe.",
    ),
]
ClipGradOption = Annotated[
    float | None,
    typer.Option(
        help="Clip the gradients' global L2 norm to this before each step (default: off)."
    ),
]
InitFromOption = Annotated[
    Path | None,
    typer.Option(help="Start from this checkpoint's model weights (same preset): fine-tune."),
]
SupportViewsOption = Annotated[
    int | None, typer.Option(min=1, help="NeRF: support views per object.")
]
AugmentOption = Annotated[
    str | None,
    typer.Option(
        help="Augment the training data. Images: 'flip' (mirrored left-right at random). "
        "NeRF: 'mirror' (mirror-image objects), 'colours' (RGB channels permuted) or "
        "'mirror,colours'. Default: none.",
    ),
]
ForegroundEpochsOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        help="NeRF: half of each object's query rays on the object (not the white background) "
        "for this many epochs. Default: the preset's recipe (1; the paper's data has thousands "
        "of objects: with tens, an epoch is a few steps).",
    ),
]
RaysPerObjectOption = Annotated[
    int | None, typer.Option(min=1, max=1 << 20, help="NeRF: query rays per object a step.")
]
SyntheticObjectsOption = Annotated[
    int, typer.Option(min=2, max=100_000, help="NeRF without --data: objects to generate.")
]
SeedOption = Annotated[
    int,
    typer.Option(min=0, max=1_000_000, help="Seed of the initialisation and data order."),
]
ValEveryOption = Annotated[int, typer.Option(min=1, max=10**9, help="Validate every N steps.")]
ValImagesOption = Annotated[
    int | None, typer.Option(min=1, max=100_000, help="Validation images (NeRF: objects).")
]
CheckpointEveryOption = Annotated[
    int, typer.Option(min=1, max=10**9, help="Write last every N steps.")
]
CheckpointMinutesOption = Annotated[
    float, typer.Option(min=0, help="Also write last every M minutes (0: off).")
]
LimitOption = Annotated[
    int, typer.Option(min=0, max=10**9, help="Use only the first N training images / objects.")
]
WorkersOption = Annotated[int, typer.Option(min=0, max=64, help="Background data-loading workers.")]
PrecisionOption = Annotated[Precision, typer.Option(help="bf16 autocast or fp32.")]
CompileOption = Annotated[
    bool, typer.Option("--compile", help="torch.compile the model (slow first steps).")
]
ResumeOption = Annotated[
    bool, typer.Option(help="Continue the run in --out from its last checkpoint.")
]
StartOverOption = Annotated[
    bool, typer.Option(help="Start over, replacing the run already in --out.")
]
DryRunOption = Annotated[bool, typer.Option(help="Build the model, print its summary, exit.")]


def print_summary(config, as_json: bool) -> None:
    """The --dry-run output: parameters per part and in total."""
    from models.core.metalearner import build_meta_learner, parameter_breakdown

    counts = parameter_breakdown(build_meta_learner(config))
    if as_json:
        summary = {"preset": config.preset, "task": config.task, "parameters": counts}
        print(json.dumps({**summary, "config": json.loads(config.to_json())}))
        return
    names = {
        "trans-inr": "Trans-INR",
        "learned-init": "Learned Init",
        "single-vector": "Single vector",
        "ipc": "IPC",
        "spatial": "Spatial",
    }
    table = Table(title=f"{names[config.method]} preset '{config.preset}' (task {config.task})")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    per = " per view" if config.task == "nerf" else ""
    if config.method == "learned-init":
        console.print(
            f"{config.inner_steps} inner SGD steps of lr {config.inner_lr}"
            f"{' (first order)' if config.first_order else ''}; "
            f"INR layers {config.inr.layer_shapes()}"
        )
    else:
        grid = config.inr.shift_grid
        grid_text = f"; shift grid {grid} x {grid} x {config.inr.width}" if grid else ""
        console.print(
            f"tokens: {config.data_token_count} data{per} + {config.weight_token_count} weight; "
            f"INR layers {config.inr.layer_shapes()}{grid_text}"
        )
    console.print(f"total parameters: {counts['total']:,}")


def check_numbers(
    epochs, minutes, lr, inner_lr, flat_images, checkpoint_minutes, flat_weight=None
) -> None:
    """The float options: finite and in range (typer's min / max let NaN through)."""
    check_number("--epochs", epochs, 0, 1e6, "30", above=True)
    check_number("--minutes", minutes, 0, 1e6, "10")
    check_number("--lr", lr, 0, 1e30, "1e-3", above=True)
    check_number("--inner-lr", inner_lr, 0, 1e6, "1.0", above=True)
    check_number("--flat-images", flat_images, 0, 1, "0.0625")
    check_number("--flat-weight", flat_weight, 0, 1e6, "10", above=True)
    check_number("--checkpoint-minutes", checkpoint_minutes, 0, 1e6, "10")


@contextlib.contextmanager
def stop_on_signals():
    """While training: Ctrl-C or SIGTERM asks the loop to checkpoint and stop after the current
    step; a second Ctrl-C stops at once (the last checkpoint stays)."""
    requested = False

    def request(signum, frame) -> None:
        nonlocal requested
        if requested:
            raise KeyboardInterrupt
        requested = True

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: requested
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def nerf_sets(
    config, train_config, data, category: str, limit: int, reading: dict,
    synthetic_objects: int, distributed, device, quiet: bool,
) -> tuple:  # fmt: skip
    """The NeRF training and validation objects (models.tasks.train_setup.nerf_sets): --data,
    else (a new run) a generated synthetic set, made once by rank 0 and cached."""
    from models.tasks import train_setup

    def synthetic(chosen: str) -> Path:  # rank 0 generates the set, the others wait for it
        root = synthetic_default(chosen, synthetic_objects, quiet, writer=distributed.is_main)
        distributed.barrier()
        return root

    sets = train_setup.nerf_sets(
        config, train_config, data, category, device, limit, reading, synthetic
    )
    if device.type == "cpu" and config.preset in PAPER_NERF_PRESETS and not quiet:
        error_console.print(
            f"note: '{config.preset}' is the paper's 44M-parameter model, slow on a CPU; "
            "--preset small trains there in hours",
            markup=False,
        )
    return sets


def image_sets(config, train_config, data, dataset: str, limit: int, reading: dict) -> tuple:
    """The training and validation images of --data (a resumed run's, without it)."""
    from models.tasks import train_setup

    if data is None:
        raise typer.BadParameter("give --data, the data set folder (or use --dry-run)")
    if reading["follow_links"]:
        raise TransInrError("--follow-links is for --task nerf (views); drop it")
    train_config.dataset, train_config.data = dataset, str(data)
    size = config.image_size
    return train_setup.image_sets(
        dataset, data, size, limit, reading["max_pixels"], train_config.augment
    )


def train_with_progress(
    run_dir: Path, config, train_config, train_set, val_set, device, checkpoint, distributed,
    quiet: bool, keep: bool,
):  # fmt: skip
    """models.tasks.training.train under a progress bar (steps, loss, PSNR, validation, speed),
    stopping cleanly on SIGINT / SIGTERM; a failed new run leaves no run folder."""
    from models.tasks import train_setup
    from models.tasks.training import total_steps
    from models.tasks.training import train as run_training

    unit = "obj/s" if config.task == "nerf" else "img/s"
    steps_total = total_steps(train_config, len(train_set))
    with progress_bar(quiet, "loss", "psnr", "val", "speed") as bar:
        task_id = bar.add_task(
            "train",
            total=steps_total if steps_total < 10**9 else None,  # None: a time budget
            completed=checkpoint.train_state.get("step", 0) if checkpoint else 0,
            **dict.fromkeys(("loss", "psnr", "val", "speed"), ""),
        )
        val_text = ""

        def on_progress(progress) -> None:
            nonlocal val_text
            if progress.val_psnr is not None:
                val_text = f"val {progress.val_psnr:.2f} dB"
            bar.update(
                task_id,
                completed=progress.step,
                loss=f"loss {progress.loss:.4f}",
                psnr=f"PSNR {progress.psnr:.2f} dB",
                val=val_text,
                speed=f"{progress.items_per_second:.1f} {unit}",
            )

        with stop_on_signals() as stop_requested, train_setup.no_leftovers(run_dir, keep):
            return run_training(
                run_dir, config, train_config, train_set, val_set, device, checkpoint,
                on_progress, stop_requested, distributed,
            )  # fmt: skip


def stop_interrupted(result, run_dir: Path, distributed) -> None:
    """A run stopped by Ctrl-C or SIGTERM: rank 0 says where its last checkpoint is and how to
    resume; every rank exits with 130."""
    if distributed.is_main:
        error_console.print(
            f"interrupted at step {result.steps}; saved {run_dir / 'last.safetensors'}; "
            f"resume with: transinr train --out {run_dir} --resume",
            markup=False,
        )
    raise typer.Exit(130)


def print_result(run_dir, config, train_config, result, device, distributed, as_json) -> None:
    """The run's summary: JSON with --json, else one line."""
    summary = {
        "run_dir": str(run_dir),
        "task": config.task,
        "preset": config.preset,
        "steps": result.steps,
        "val_psnr": result.final_val_psnr,
        "best_val_psnr": result.best_val_psnr,
        "seconds": result.seconds,
        "precision": train_config.precision,
        "device": str(device),
        "processes": distributed.world_size,
        "data_wait": result.data_wait,
    }
    if as_json:
        print(json.dumps(summary))
        return
    console.print(
        f"trained {result.steps} steps in {result.seconds:.0f} s; validation PSNR "
        f"{result.final_val_psnr:.2f} dB (best {result.best_val_psnr:.2f}); "
        f"{100 * result.data_wait:.1f}% of the time waiting for data; "
        f"checkpoints in {run_dir}"
    )


@dataclass
class DataOptions:
    """Where and how much training data to read, as given on the command line."""

    data: Path | None  # None: a resumed run's data, or (NeRF) a generated synthetic set
    dataset: str
    category: str
    limit: int
    synthetic_objects: int
    reading: dict  # max_pixels, follow_links


def run_settings(
    resume: bool, out: Path | None, preset: str | None, task: Task, category: Category,
    dataset: Dataset, method: Method, seed: int, model_options: dict, recipe_options: dict,
) -> tuple:  # fmt: skip
    """The checkpoint (None for a new run), model config and train config: with --resume the
    run in --out continued (only its length, lr and --clip-grad may change), else a new run of
    --preset (default: the paper's for the task) with the given options."""
    from models.tasks import train_setup

    if resume:
        if out is None:
            raise typer.BadParameter("--resume needs --out RUN_DIR, the run to continue")
        fixed = [*model_options.values(), *(recipe_options[key] for key in FIXED_RECIPE_OPTIONS)]
        changeable = ("steps", "epochs", "lr", "budget_minutes", "clip_grad")
        lengths = {key: recipe_options[key] for key in changeable}
        return train_setup.resumed_run(
            out, preset, lengths, method != Method.trans_inr or any(fixed)
        )
    preset = preset or train_setup.default_preset(task.value, category.value, dataset.value)
    config, train_config = train_setup.new_run(
        task.value, preset, method.value, model_options, recipe_options, seed
    )
    return None, config, train_config


def training_sets(
    config, train_config, options: DataOptions, resume: bool, distributed, device, quiet: bool
) -> tuple:
    """The training and validation sets: NeRF objects or images, of --data (a resumed run's,
    without it)."""
    data = options.data
    if data is None and train_config.data:
        data = Path(train_config.data)  # a resumed run's data
    if config.task == "nerf":
        return nerf_sets(
            config, train_config, data, options.category, options.limit, options.reading,
            options.synthetic_objects, distributed, device, quiet,
        )  # fmt: skip
    dataset = train_config.dataset if resume else options.dataset
    return image_sets(config, train_config, data, dataset, options.limit, options.reading)


def train_run(
    run_dir: Path, config, train_config, checkpoint, options: DataOptions, precision: Precision,
    device: Device, resume: bool, overwrite: bool, quiet: bool, as_json: bool,
) -> None:  # fmt: skip
    """Read the data and train, in this process or in each of torchrun's; rank 0 shows the
    progress and prints the result. A rank that failed does not wait for the others at
    shutdown."""
    from models.tasks import train_setup
    from models.tasks.distributed import from_environment
    from models.tasks.training import resolve_device, resolve_precision

    distributed, torch_device = from_environment(resolve_device(device.value))
    quiet = quiet or not distributed.is_main  # only rank 0 shows progress and prints
    finished = False  # a rank that failed must not wait for the others at shutdown
    try:
        if not (resume and precision == Precision.auto):  # a resumed run keeps its precision
            train_config.precision = resolve_precision(precision.value, torch_device)
        train_setup.check_run_dir(run_dir, resume, overwrite)
        train_set, val_set = training_sets(
            config, train_config, options, resume, distributed, torch_device, quiet
        )
        if overwrite and not resume and distributed.is_main:
            train_setup.clear_run_dir(run_dir)
        distributed.barrier()  # every rank has checked the run folder before rank 0 writes

        result = train_with_progress(
            run_dir, config, train_config, train_set, val_set, torch_device, checkpoint,
            distributed, quiet, keep=resume or not distributed.is_main,
        )  # fmt: skip
        if result.interrupted:
            stop_interrupted(result, run_dir, distributed)
        if distributed.is_main:
            print_result(run_dir, config, train_config, result, torch_device, distributed, as_json)
        finished = True
    finally:
        distributed.shutdown(finished)


@handle_errors
def train(
    task: TaskOption = Task.image,
    dataset: DatasetOption = Dataset.celeba,
    category: CategoryOption = Category.chairs,
    data: DataOption = None,
    preset: PresetOption = None,
    out: RunDirOption = None,
    epochs: EpochsOption = None,
    steps: StepsOption = None,
    minutes: MinutesOption = None,
    batch_size: BatchSizeOption = None,
    lr: LrOption = None,
    warmup_steps: WarmupStepsOption = None,
    groups: GroupsOption = None,
    method: MethodOption = Method.trans_inr,
    inner_steps: InnerStepsOption = None,
    inner_lr: InnerLrOption = None,
    first_order: FirstOrderOption = False,
    coordinates: CoordinatesOption = None,
    input_size: InputSizeOption = None,
    flat_images: FlatImagesOption = None,
    flat_weight: FlatWeightOption = None,
    clip_grad: ClipGradOption = None,
    init_from: InitFromOption = None,
    support_views: SupportViewsOption = None,
    augment: AugmentOption = None,
    rays_per_object: RaysPerObjectOption = None,
    foreground_epochs: ForegroundEpochsOption = None,
    synthetic_objects: SyntheticObjectsOption = 200,
    seed: SeedOption = 0,
    val_every: ValEveryOption = 500,
    val_images: ValImagesOption = None,
    checkpoint_every: CheckpointEveryOption = 100,
    checkpoint_minutes: CheckpointMinutesOption = 10.0,
    limit: LimitOption = 0,
    workers: WorkersOption = 2,
    max_pixels: MaxPixelsOption = None,
    follow_links: FollowLinksOption = False,
    precision: PrecisionOption = Precision.auto,
    compile_model: CompileOption = False,
    device: DeviceOption = Device.auto,
    resume: ResumeOption = False,
    overwrite: StartOverOption = False,
    dry_run: DryRunOption = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train a Trans-INR meta-learner on an image data set or on posed views of objects."""
    check_numbers(epochs, minutes, lr, inner_lr, flat_images, checkpoint_minutes, flat_weight)
    check_number("--foreground-epochs", foreground_epochs, 0, 1e9, "1")
    check_number("--clip-grad", clip_grad, 0, 1e9, "1.0", above=True)
    model_options = {"groups": groups, "inner_steps": inner_steps, "inner_lr": inner_lr,
                     "first_order": first_order or None}  # fmt: skip
    recipe_options = {
        "steps": steps, "epochs": epochs, "budget_minutes": minutes,
        "batch_size": batch_size, "lr": lr, "warmup_steps": warmup_steps,
        "support_views": support_views, "rays_per_object": rays_per_object,
        "foreground_epochs": foreground_epochs, "val_images": val_images,
        "coordinates": coordinates.value if coordinates else None,
        "input_size": input_size, "flat_images": flat_images, "flat_weight": flat_weight,
        "init_from": str(init_from) if init_from else None, "augment": augment,
        "clip_grad": clip_grad,
    }  # fmt: skip
    checkpoint, config, train_config = run_settings(
        resume, out, preset, task, category, dataset, method, seed, model_options, recipe_options
    )
    if dry_run:
        print_summary(config, as_json)
        return
    train_config.val_every, train_config.checkpoint_every = val_every, checkpoint_every
    train_config.checkpoint_minutes = checkpoint_minutes
    train_config.workers, train_config.compile = workers, compile_model
    reading = {"max_pixels": max_pixels, "follow_links": follow_links}
    options = DataOptions(data, dataset.value, category.value, limit, synthetic_objects, reading)
    run_dir = out or Path("runs") / config.preset
    train_run(
        run_dir, config, train_config, checkpoint, options, precision, device, resume, overwrite,
        quiet, as_json,
    )  # fmt: skip
