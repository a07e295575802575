"""`transinr eval`: PSNR as the paper defines it, with and without test-time refinement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from models.errors import TransInrError
from transinr_cli.common import (
    Dataset,
    Device,
    DeviceOption,
    FollowLinksOption,
    JsonOption,
    LazyTask,
    MaxPixelsOption,
    QuietOption,
    Split,
    Task,
    check_category,
    check_number,
    console,
    handle_errors,
    load_model,
    progress_bar,
)

TASK_NAMES = {"image": "an image", "nerf": "a NeRF"}


def print_nerf_table(summary: dict, refine_steps: int) -> None:
    """The human-readable table of a NeRF evaluation (the paper's Tables 3 and 4)."""
    support_views = summary["support_views"]
    table = Table(
        title=f"{summary['model']} on {summary['category']} {summary['split']}: "
        f"{summary['objects']} objects, {summary['pairs']} support/query pairs"
    )
    table.add_column("method")
    table.add_column(
        f"{support_views} view{'s' if support_views > 1 else ''} (PSNR dB)", justify="right"
    )
    table.add_row("Trans-INR", f"{summary['psnr']:.2f}")
    if summary["psnr_refined"] is not None:
        table.add_row(f"Trans-INR + {refine_steps} TTO steps", f"{summary['psnr_refined']:.2f}")
    if "baseline_psnr" in summary:
        table.add_row("all-white image (baseline)", f"{summary['baseline_psnr']:.2f}")
    console.print(table)


ModelOption = Annotated[Path | None, typer.Option(help="Checkpoint or run folder.")]
TaskOption = Annotated[Task, typer.Option(help="image or nerf (must match the model).")]
CategoryOption = Annotated[
    str,
    typer.Option(
        help="NeRF: object category, the folder under --data (chairs, lamps; "
        "shapenet-real's benchs, cups, vases; ...)."
    ),
]
SupportViewsOption = Annotated[
    int, typer.Option(min=1, max=64, help="NeRF: support views per pair.")
]
PairsOption = Annotated[
    int,
    typer.Option(min=1, max=100_000, help="NeRF: support/query pairs per object (paper: 100)."),
]
SeedOption = Annotated[
    int, typer.Option(min=0, max=1_000_000_000, help="NeRF: seed of the support/query pairs.")
]
BaselineOption = Annotated[
    bool,
    typer.Option(
        help="Also score the trivial baseline: the mean training image (NeRF: all white)."
    ),
]
DatasetOption = Annotated[Dataset, typer.Option(help="Data set layout of --data.")]
DataOption = Annotated[Path | None, typer.Option(help="Data set root folder.")]
SplitOption = Annotated[
    Split,
    typer.Option(
        help="Which split to score; images also all: every image of --data (a folder's "
        "own 80/10/10 split ignored)."
    ),
]
RefineStepsOption = Annotated[
    int, typer.Option(min=0, max=1_000_000, help="Also score after K refinement steps.")
]
RefineLrOption = Annotated[
    float | None,
    typer.Option(
        help="Refinement learning rate (default: as `refine`: images 1e-3, constant "
        "schedule, NeRF 1e-4)."
    ),
]
LimitOption = Annotated[int, typer.Option(min=0, help="Score only the first N images.")]
InputSizeOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Images: score upscaling: encode each image downsampled to this size, score "
        "the INR on the full image (--baseline adds bicubic upsampling).",
    ),
]
BatchSizeOption = Annotated[int, typer.Option(min=1, max=4096)]
WorkersOption = Annotated[int, typer.Option(min=0, max=64)]


@handle_errors
def evaluate(
    model: ModelOption = None,
    task: TaskOption = Task.image,
    category: CategoryOption = "chairs",
    support_views: SupportViewsOption = 1,
    pairs: PairsOption = 1,
    seed: SeedOption = 0,
    baseline: BaselineOption = False,
    dataset: DatasetOption = Dataset.celeba,
    data: DataOption = None,
    split: SplitOption = Split.test,
    refine_steps: RefineStepsOption = 0,
    refine_lr: RefineLrOption = None,
    limit: LimitOption = 0,
    input_size: InputSizeOption = None,
    batch_size: BatchSizeOption = 16,
    workers: WorkersOption = 2,
    max_pixels: MaxPixelsOption = None,
    follow_links: FollowLinksOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """PSNR of a meta-learner on a split, as the paper defines it (Tables 1-4)."""
    from models.api import Model
    from models.api import evaluate as score
    from models.tasks.devices import resolve_device

    if data is None:
        raise typer.BadParameter("give --data, the data set folder")
    check_number("--refine-lr", refine_lr, 0, 100, "1e-3", above=True)
    if task == Task.image and follow_links:
        raise TransInrError("--follow-links is for --task nerf (views); drop it")
    torch_device = resolve_device(device.value)
    checkpoint, meta_learner = load_model(model, torch_device)
    check_model_task(checkpoint, task.value)
    options = {"split": split.value, "limit": limit, "refine_steps": refine_steps,
               "refine_lr": refine_lr, "baseline": baseline, "max_pixels": max_pixels}  # fmt: skip
    if task == Task.nerf:
        options.update(category=check_category(category), support_views=support_views,
                       pairs=pairs, seed=seed, follow_links=follow_links)  # fmt: skip
    else:
        options.update(dataset=dataset.value, input_size=input_size, batch_size=batch_size,
                       workers=workers)  # fmt: skip
    with progress_bar(quiet) as bar:
        result = score(
            Model(checkpoint, meta_learner, torch_device), data, **options,
            on_progress=LazyTask(bar, "eval").update,
        )  # fmt: skip
    if task == Task.nerf:
        summary = nerf_summary(checkpoint, result, options)
    else:
        summary = image_summary(checkpoint, result, dataset.value, data, split.value, input_size)
    if baseline:
        summary["baseline_psnr"] = result.baseline_psnr
    if as_json:
        print(json.dumps(summary))
    elif task == Task.nerf:
        print_nerf_table(summary, refine_steps)
    else:
        print_image_table(summary, input_size)


def nerf_summary(checkpoint, result, options: dict) -> dict:
    """The JSON `eval` prints for a NeRF model."""
    return {
        "model": checkpoint.model_id,
        "task": "nerf",
        "category": options["category"],
        "split": options["split"],
        "objects": result.objects,
        "pairs": result.images,
        "support_views": options["support_views"],
        "psnr": result.psnr,
        "psnr_refined": result.psnr_refined,
        "refine_steps": result.refine_steps,
    }


def image_summary(checkpoint, result, dataset: str, data: Path, split: str, input_size) -> dict:
    """The JSON `eval` prints for an image model."""
    return {
        "model": checkpoint.model_id,
        "dataset": dataset,
        "split": split,
        "images": result.images,
        "psnr": result.psnr,
        "psnr_refined": result.psnr_refined,
        "refine_steps": result.refine_steps,
        "input_size": input_size or checkpoint.config.image_size,
    }


def print_image_table(summary: dict, input_size: int | None) -> None:
    """The human-readable table of an image evaluation."""
    table = Table(
        title=f"{summary['model']} on {summary['dataset']} {summary['split']} "
        f"({summary['images']} images)"
    )
    table.add_column("method")
    table.add_column("PSNR (dB)", justify="right")
    scale = f" from {input_size} px inputs" if input_size else ""
    table.add_row(f"Trans-INR (one forward pass){scale}", f"{summary['psnr']:.2f}")
    if summary["psnr_refined"] is not None:
        steps = summary["refine_steps"]
        table.add_row(f"+ {steps} refinement steps", f"{summary['psnr_refined']:.2f}")
    if "baseline_psnr" in summary:
        name = (
            f"bicubic upsampling of the {input_size} px input"
            if input_size
            else "mean training image"
        )
        table.add_row(f"{name} (baseline)", f"{summary['baseline_psnr']:.2f}")
    console.print(table)


def check_model_task(checkpoint, task: str) -> None:
    """The model must be of --task."""
    if checkpoint.config.task != task:
        raise TransInrError(
            f"model {checkpoint.model_id} is {TASK_NAMES[checkpoint.config.task]} model, not "
            f"{TASK_NAMES[task]} one; use --task {checkpoint.config.task}"
        )
