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


def evaluate_nerf(
    checkpoint,
    model,
    data: Path,
    category: str,
    split: str,
    support_views: int,
    pairs: int,
    refine_steps: int,
    refine_lr: float | None,
    seed: int,
    limit: int,
    device,
    quiet: bool,
    as_json: bool,
    baseline: bool = False,
    max_pixels: int | None = None,
    follow_links: bool = False,
) -> None:
    """The layout of the paper's Tables 3 and 4: PSNR of full query renders, per view count."""
    from models.data.view_data import ViewDataset
    from models.nerf.volume_rendering import check_ray_batch
    from models.tasks.evaluation import evaluate_views

    config = checkpoint.config
    if support_views > config.max_views:
        raise TransInrError(
            f"--support-views {support_views} is more than this model allows ({config.max_views})"
        )
    if refine_steps:
        check_ray_batch(config.inr, config.sampling.samples, 1024, "refinement with rays")
    objects = ViewDataset(
        data, category, split, limit, min_views=support_views + 1, max_pixels=max_pixels,
        follow_links=follow_links,
    )  # fmt: skip
    with progress_bar(quiet) as bar:
        task_id = bar.add_task("eval", total=len(objects) * pairs)
        result = evaluate_views(
            model,
            objects,
            device,
            support_views,
            pairs,
            refine_steps,
            refine_lr,
            seed,
            on_pair=lambda: bar.advance(task_id),
        )
    summary = {
        "model": checkpoint.model_id,
        "task": "nerf",
        "category": category,
        "split": split,
        "objects": len(objects),
        "pairs": result.images,
        "support_views": support_views,
        "psnr": result.psnr,
        "psnr_refined": result.psnr_refined,
        "refine_steps": result.refine_steps,
    }
    if baseline:
        from models.tasks.evaluation import white_image_psnr

        summary["baseline_psnr"] = white_image_psnr(objects, len(objects))
    if as_json:
        print(json.dumps(summary))
        return
    table = Table(
        title=f"{checkpoint.model_id} on {category} {split}: {len(objects)} objects, "
        f"{result.images} support/query pairs"
    )
    table.add_column("method")
    table.add_column(
        f"{support_views} view{'s' if support_views > 1 else ''} (PSNR dB)", justify="right"
    )
    table.add_row("Trans-INR", f"{result.psnr:.2f}")
    if result.psnr_refined is not None:
        table.add_row(f"Trans-INR + {refine_steps} TTO steps", f"{result.psnr_refined:.2f}")
    if baseline:
        table.add_row("all-white image (baseline)", f"{summary['baseline_psnr']:.2f}")
    console.print(table)


@handle_errors
def evaluate(
    model: Annotated[Path | None, typer.Option(help="Checkpoint or run folder.")] = None,
    task: Annotated[Task, typer.Option(help="image or nerf (must match the model).")] = Task.image,
    category: Annotated[
        str,
        typer.Option(
            help="NeRF: object category, the folder under --data (chairs, lamps; "
            "shapenet-real's benchs, cups, vases; ...)."
        ),
    ] = "chairs",
    support_views: Annotated[
        int, typer.Option(min=1, max=64, help="NeRF: support views per pair.")
    ] = 1,
    pairs: Annotated[
        int,
        typer.Option(min=1, max=100_000, help="NeRF: support/query pairs per object (paper: 100)."),
    ] = 1,
    seed: Annotated[
        int, typer.Option(min=0, max=1_000_000_000, help="NeRF: seed of the support/query pairs.")
    ] = 0,
    baseline: Annotated[
        bool,
        typer.Option(
            help="Also score the trivial baseline: the mean training image (NeRF: all white)."
        ),
    ] = False,
    dataset: Annotated[Dataset, typer.Option(help="Data set layout of --data.")] = Dataset.celeba,
    data: Annotated[Path | None, typer.Option(help="Data set root folder.")] = None,
    split: Annotated[Split, typer.Option(help="Which split to score.")] = Split.test,
    refine_steps: Annotated[
        int, typer.Option(min=0, max=1_000_000, help="Also score after K refinement steps.")
    ] = 0,
    refine_lr: Annotated[
        float | None,
        typer.Option(
            help="Refinement learning rate (default: as `refine`: images 1e-3, constant "
            "schedule, NeRF 1e-4)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Score only the first N images.")] = 0,
    input_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Images: score upscaling: encode each image downsampled to this size, score "
            "the INR on the full image (--baseline adds bicubic upsampling).",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=4096)] = 16,
    workers: Annotated[int, typer.Option(min=0, max=64)] = 2,
    max_pixels: MaxPixelsOption = None,
    follow_links: FollowLinksOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """PSNR of a meta-learner on a split, as the paper defines it (Tables 1-4)."""
    from models.data.image_data import ImageDataset
    from models.tasks.devices import resolve_device
    from models.tasks.evaluation import evaluate_images

    if data is None:
        raise typer.BadParameter("give --data, the data set folder")
    check_number("--refine-lr", refine_lr, 0, 100, "1e-3", above=True)
    if task == Task.image and follow_links:
        raise TransInrError("--follow-links is for --task nerf (views); drop it")
    torch_device = resolve_device(device.value)
    checkpoint, meta_learner = load_model(model, torch_device)
    check_model_fits(checkpoint, task.value, input_size, refine_steps)
    if task == Task.nerf:
        evaluate_nerf(
            checkpoint,
            meta_learner,
            data,
            check_category(category),
            split.value,
            support_views,
            pairs,
            refine_steps,
            refine_lr,
            seed,
            limit,
            torch_device,
            quiet,
            as_json,
            baseline,
            max_pixels,
            follow_links,
        )
        return
    images = ImageDataset(
        dataset.value, data, split.value, checkpoint.config.image_size, limit, max_pixels
    )
    with progress_bar(quiet) as bar:
        task_id = bar.add_task("eval", total=len(images))
        result = evaluate_images(
            meta_learner,
            images,
            torch_device,
            batch_size,
            refine_steps,
            refine_lr,
            workers,
            on_batch=lambda count: bar.advance(task_id, count),
            input_size=input_size or 0,
        )
    summary = image_summary(checkpoint, result, dataset.value, data, split.value, input_size)
    if baseline:
        summary["baseline_psnr"] = image_baseline(images, dataset.value, data, input_size)
    if as_json:
        print(json.dumps(summary))
    else:
        print_image_table(summary, input_size)


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


def image_baseline(images, dataset: str, data: Path, input_size: int | None) -> float:
    """--baseline: bicubic upsampling of the small inputs, or the mean training image."""
    from models.data.image_data import ImageDataset
    from models.tasks.evaluation import bicubic_upscale_psnr, mean_image_psnr

    if input_size:
        return bicubic_upscale_psnr(images, input_size)
    train_set = ImageDataset(dataset, data, "train", images.size)
    return mean_image_psnr(train_set, images)


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


def check_model_fits(checkpoint, task: str, input_size: int | None, refine_steps: int) -> None:
    """The model must be of --task, and --input-size must be a one-pass image score below the
    model's input size."""
    if checkpoint.config.task != task:
        raise TransInrError(
            f"model {checkpoint.model_id} is {TASK_NAMES[checkpoint.config.task]} model, not "
            f"{TASK_NAMES[task]} one; use --task {checkpoint.config.task}"
        )
    if input_size is None:
        return
    if task == "nerf" or refine_steps:
        raise TransInrError(
            "--input-size scores one-pass image upscaling; drop --refine-steps (and use "
            "--task image)"
        )
    if input_size > checkpoint.config.image_size:
        raise TransInrError(
            f"--input-size {input_size} is larger than the model's input "
            f"({checkpoint.config.image_size}); use a smaller size"
        )
