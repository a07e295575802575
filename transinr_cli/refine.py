"""`transinr refine`: test-time optimisation of every weight of an .inr file (Sec. 4.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from models.errors import TransInrError
from transinr_cli.common import (
    Coordinates,
    Device,
    DeviceOption,
    FollowLinksOption,
    JsonOption,
    MaxPixelsOption,
    OverwriteOption,
    QuietOption,
    Schedule,
    check_output,
    ensure_parent,
    handle_errors,
    parse_indices,
    print_result,
    progress_bar,
)


def refine_settings(task: str, lr: float | None, schedule) -> object:
    """The task's default Adam settings with --lr and --schedule (models.api.refine_settings)."""
    from models.api import refine_settings as settings_for

    return settings_for(task, lr, None if schedule is None else schedule.value)


InrArgument = Annotated[Path, typer.Argument(help="The .inr file to refine.")]
ImageOption = Annotated[
    Path | None, typer.Option(help="Image INRs: the observed image (it was encoded from).")
]
ViewsOption = Annotated[
    Path | None, typer.Option(help="NeRF INRs: the object's views folder or transforms.json.")
]
ViewIdsOption = Annotated[
    str | None, typer.Option(help="NeRF: which views, e.g. 0,7 (default: the encoded ones).")
]
RaysOption = Annotated[
    int,
    typer.Option(
        min=1,
        max=1 << 24,
        help="NeRF: random rays a step (refused when a step would not fit in memory).",
    ),
]
StepsOption = Annotated[int, typer.Option(min=1, max=10_000_000, help="Adam steps.")]
LrOption = Annotated[
    float | None,
    typer.Option(
        help="Adam learning rate (default: images 1e-3, measured in bench/refine.py; "
        "NeRF 1e-4, the paper's)."
    ),
]
ScheduleOption = Annotated[
    Schedule | None,
    typer.Option(help="lr schedule: constant, or cosine to 0 (default: constant)."),
]
CoordinatesOption = Annotated[
    Coordinates,
    typer.Option(
        help="Image INRs: fit pixel centres (grid), or jittered sub-pixel positions with "
        "bicubic targets (continuous: smoother between pixels, a little lower PSNR on them)."
    ),
]
OutOption = Annotated[
    Path | None, typer.Option("-o", "--out", help="Output .inr (default NAME.refined.inr).")
]


@handle_errors
def refine(
    inr: InrArgument,
    image: ImageOption = None,
    views: ViewsOption = None,
    view_ids: ViewIdsOption = None,
    rays: RaysOption = 1024,
    steps: StepsOption = 100,
    lr: LrOption = None,
    schedule: ScheduleOption = None,
    coordinates: CoordinatesOption = Coordinates.grid,
    out: OutOption = None,
    max_pixels: MaxPixelsOption = None,
    follow_links: FollowLinksOption = False,
    overwrite: OverwriteOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Test-time optimisation of all INR weights on the observed pixels (or views)."""
    import torch

    from models.api import load_inr
    from models.api import refine as refine_inr

    inr_inr = load_inr(inr)
    task = inr_inr.task
    check_task_options(inr, task, image, views, view_ids, rays, coordinates, follow_links)
    target = out or inr.with_name(inr.stem + ".refined.inr")
    check_output(target, overwrite)
    refine_settings(task, lr, schedule)  # bad --lr refused before any work
    bar = progress_bar(quiet, "loss")  # started at the first step: errors come before it
    task_ids: list = []

    def show(step: int, loss: float) -> None:
        if not task_ids:
            bar.start()
            task_ids.append(bar.add_task("refine", total=steps, loss=""))
        bar.update(task_ids[0], completed=step, loss=f"loss {loss:.5f}")

    try:
        tuned = refine_inr(
            inr_inr, image if task == "image" else views, steps,
            lr=lr, schedule=None if schedule is None else schedule.value,
            coordinates=coordinates.value, view_ids=parse_indices(view_ids, "--view-ids"),
            rays=rays, max_pixels=max_pixels, follow_links=follow_links, device=device.value,
            on_step=show,
        )  # fmt: skip
    finally:
        bar.stop()
    before, after = tuned.header.psnr_before_refine, tuned.header.refined_psnr
    dtype = "float16" if inr_inr.file.weights[0].dtype == torch.float16 else "float32"
    ensure_parent(target)
    tuned.save(target, dtype)
    if as_json:
        print(
            json.dumps(
                {"output": str(target), "psnr_before": before, "psnr_after": after, "steps": steps}
            )
        )
    else:
        print_result(f"PSNR {before:.2f} dB -> {after:.2f} dB after {steps} steps; wrote {target}")


def check_task_options(
    inr: Path, task: str, image: Path | None, views: Path | None, view_ids: str | None,
    rays: int, coordinates: Coordinates, follow_links: bool,
) -> None:  # fmt: skip
    """The observations of the file's task (--image or --views), and only its options."""
    if task == "image" and views is not None:
        raise TransInrError(f"{inr} is an image INR; --views refines NeRF INRs, use --image")
    if task == "nerf" and image is not None:
        raise TransInrError(f"{inr} is a NeRF INR; --image refines image INRs, use --views")
    if task == "nerf" and coordinates != Coordinates.grid:
        raise TransInrError("--coordinates is for image INRs; drop it for NeRF files")
    if task == "nerf" and views is None:
        raise TransInrError(f"{inr} is a NeRF INR; give --views, the object's views folder")
    if task == "image" and image is None:
        raise TransInrError(f"{inr} is an image INR; give --image, the image it was encoded from")
    if task == "image" and (follow_links or view_ids is not None or rays != 1024):
        raise TransInrError("--view-ids, --rays and --follow-links are for NeRF INRs; drop them")
