"""`transinr train`: meta-learn a Transformer hypernetwork on images or posed views."""

from __future__ import annotations

import contextlib
import json
import signal
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
        console.print(
            f"tokens: {config.data_token_count} data{per} + {config.weight_token_count} weight; "
            f"INR layers {config.inr.layer_shapes()}"
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


@handle_errors
def train(
    task: Annotated[Task, typer.Option(help="What the meta-learner builds INRs of.")] = Task.image,
    dataset: Annotated[
        Dataset, typer.Option(help="Image data set layout of --data.")
    ] = Dataset.celeba,
    category: Annotated[
        Category, typer.Option(help="NeRF: object category (learnit layout).")
    ] = Category.chairs,
    data: Annotated[
        Path | None,
        typer.Option(help="Data set root. NeRF default: a generated synthetic set (cached)."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Model preset. image: celeba, imagenette, celeba89, tiny; "
            "nerf: chairs, cars, lamps (+ -2view), small, tiny."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/PRESET).")] = None,
    epochs: Annotated[
        float | None, typer.Option(help="Epochs (default: the preset's recipe).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(min=1, max=10**9, help="Steps; overrides --epochs.")
    ] = None,
    minutes: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Time budget: stop after this much training time (validation excluded); "
            "the lr drops x0.1 at 80% of it; overrides --epochs, --steps still caps.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, max=4096, help="Images (or objects) per step.")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    warmup_steps: Annotated[
        int | None, typer.Option(min=0, max=10**9, help="Linear lr warm-up.")
    ] = None,
    groups: Annotated[
        int | None, typer.Option(min=1, max=65536, help="Weight groups G per INR layer.")
    ] = None,
    method: Annotated[
        Method,
        typer.Option(
            help="trans-inr; ipc (one low-rank generated layer, Kim et al. 2023); or a "
            "baseline: learned-init (MAML) or single-vector (one latent)."
        ),
    ] = Method.trans_inr,
    inner_steps: Annotated[
        int | None, typer.Option(min=1, max=100, help="learned-init: inner SGD steps (default 2).")
    ] = None,
    inner_lr: Annotated[
        float | None, typer.Option(min=0, help="learned-init: inner SGD lr (default 1.0).")
    ] = None,
    first_order: Annotated[
        bool, typer.Option(help="learned-init: first-order MAML (no second derivatives).")
    ] = False,
    coordinates: Annotated[
        Coordinates | None,
        typer.Option(
            help="Images: train on pixel centres (grid, the paper) or on jittered sub-pixel "
            "positions with interpolated targets (continuous). Default: the preset's recipe."
        ),
    ] = None,
    input_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Images: a learned upscale: encode each image downsampled to this size (and "
            "resized back), score the INR on the full image.",
        ),
    ] = None,
    flat_images: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Images: the share of each batch replaced by uniform colours, so plain inputs "
            "encode plain. Default: the preset's recipe.",
        ),
    ] = None,
    flat_weight: Annotated[
        float | None,
        typer.Option(
            help="Images: the loss weight of those uniform images (their error is small, so "
            "weight 1 leaves a faint face on plain inputs). Default: the preset's recipe.",
        ),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option(help="Start from this checkpoint's model weights (same preset): fine-tune."),
    ] = None,
    support_views: Annotated[
        int | None, typer.Option(min=1, help="NeRF: support views per object.")
    ] = None,
    augment: Annotated[
        str | None,
        typer.Option(
            help="Augment the training data. Images: 'flip' (mirrored left-right at random). "
            "NeRF: 'mirror' (mirror-image objects), 'colours' (RGB channels permuted) or "
            "'mirror,colours'. Default: none.",
        ),
    ] = None,
    rays_per_object: Annotated[
        int | None, typer.Option(min=1, max=1 << 20, help="NeRF: query rays per object a step.")
    ] = None,
    synthetic_objects: Annotated[
        int, typer.Option(min=2, max=100_000, help="NeRF without --data: objects to generate.")
    ] = 200,
    seed: Annotated[
        int,
        typer.Option(min=0, max=1_000_000, help="Seed of the initialisation and data order."),
    ] = 0,
    val_every: Annotated[int, typer.Option(min=1, max=10**9, help="Validate every N steps.")] = 500,
    val_images: Annotated[
        int | None, typer.Option(min=1, max=100_000, help="Validation images (NeRF: objects).")
    ] = None,
    checkpoint_every: Annotated[
        int, typer.Option(min=1, max=10**9, help="Write last every N steps.")
    ] = 100,
    checkpoint_minutes: Annotated[
        float, typer.Option(min=0, help="Also write last every M minutes (0: off).")
    ] = 10.0,
    limit: Annotated[
        int, typer.Option(min=0, max=10**9, help="Use only the first N training images / objects.")
    ] = 0,
    workers: Annotated[
        int, typer.Option(min=0, max=64, help="Background data-loading workers.")
    ] = 2,
    max_pixels: MaxPixelsOption = None,
    follow_links: FollowLinksOption = False,
    precision: Annotated[Precision, typer.Option(help="bf16 autocast or fp32.")] = Precision.auto,
    compile_model: Annotated[
        bool, typer.Option("--compile", help="torch.compile the model (slow first steps).")
    ] = False,
    device: DeviceOption = Device.auto,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its last checkpoint.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Start over, replacing the run already in --out.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Build the model, print its summary, exit.")
    ] = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train a Trans-INR meta-learner on an image data set or on posed views of objects."""
    from models.tasks import train_setup
    from models.tasks.training import resolve_device, resolve_precision

    check_numbers(epochs, minutes, lr, inner_lr, flat_images, checkpoint_minutes, flat_weight)
    checkpoint = None
    if resume:
        if out is None:
            raise typer.BadParameter("--resume needs --out RUN_DIR, the run to continue")
        fixed = (inner_steps, inner_lr, first_order, groups, coordinates, input_size, init_from,
                 flat_images, flat_weight, augment)  # fmt: skip
        lengths = {"steps": steps, "epochs": epochs, "lr": lr, "budget_minutes": minutes}
        checkpoint, config, train_config = train_setup.resumed_run(
            out,
            preset,
            lengths,
            method != Method.trans_inr or any(fixed) or flat_images or flat_weight,
        )
    else:
        preset = preset or train_setup.default_preset(task.value, category.value, dataset.value)
        model_options = {"groups": groups, "inner_steps": inner_steps, "inner_lr": inner_lr,
                         "first_order": first_order or None}  # fmt: skip
        recipe_options = {
            "steps": steps, "epochs": epochs, "budget_minutes": minutes,
            "batch_size": batch_size, "lr": lr, "warmup_steps": warmup_steps,
            "support_views": support_views, "rays_per_object": rays_per_object,
            "val_images": val_images, "coordinates": coordinates.value if coordinates else None,
            "input_size": input_size, "flat_images": flat_images, "flat_weight": flat_weight,
            "init_from": str(init_from) if init_from else None, "augment": augment,
        }  # fmt: skip
        config, train_config = train_setup.new_run(
            task.value, preset, method.value, model_options, recipe_options, seed
        )
    if dry_run:
        print_summary(config, as_json)
        return
    from models.tasks.distributed import from_environment

    distributed, torch_device = from_environment(resolve_device(device.value))
    quiet = quiet or not distributed.is_main  # only rank 0 shows progress and prints
    finished = False  # a rank that failed must not wait for the others at shutdown
    try:
        if not (resume and precision == Precision.auto):  # a resumed run keeps its precision
            train_config.precision = resolve_precision(precision.value, torch_device)
        train_config.val_every, train_config.checkpoint_every = val_every, checkpoint_every
        train_config.checkpoint_minutes = checkpoint_minutes
        train_config.workers, train_config.compile = workers, compile_model
        run_dir = out or Path("runs") / config.preset
        train_setup.check_run_dir(run_dir, resume, overwrite)
        if data is None and train_config.data:
            data = Path(train_config.data)  # a resumed run's data
        reading = {"max_pixels": max_pixels, "follow_links": follow_links}
        if config.task == "nerf":
            train_set, val_set = nerf_sets(
                config, train_config, data, category.value, limit, reading, synthetic_objects,
                distributed, torch_device, quiet,
            )  # fmt: skip
        else:
            dataset_name = train_config.dataset if resume else dataset.value
            train_set, val_set = image_sets(
                config, train_config, data, dataset_name, limit, reading
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
