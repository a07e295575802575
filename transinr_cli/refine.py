"""`transinr refine`: test-time optimisation of every weight of an .inr file (Sec. 4.2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from models.errors import TransInrError
from transinr_cli.common import (
    Coordinates,
    Device,
    DeviceOption,
    JsonOption,
    MaxPixelsOption,
    OverwriteOption,
    QuietOption,
    Schedule,
    check_output,
    console,
    ensure_parent,
    handle_errors,
    parse_indices,
    progress_bar,
)


def image_objective(
    inr_file, image: Path, device, max_pixels: int | None = None, coordinates: str = "grid"
) -> tuple[Callable, Callable]:
    """Loss and PSNR on the observed pixels of the image, fitted as at encode time."""
    from models.encoding import fitted_observation
    from models.refinement import check_refine_target, image_loss, observed_psnr

    fitted, mask, (height, width) = fitted_observation(inr_file.header, image, max_pixels)
    observed = fitted[None].to(device)

    def measure(weights) -> float:
        return observed_psnr(weights, inr_file.inr, observed, mask).item()

    check_refine_target(inr_file.header, height, width, measure(inr_file.batched(device)))
    return image_loss(inr_file.inr, observed, mask, coordinates), measure


def nerf_objective(inr_file, views: Path, view_ids: str | None, rays: int, device):
    """The paper's TTO: `rays` random rays of the support views a step; PSNR on 1024 rays."""
    from models.config import RaySampling
    from models.encoding import support_ray_psnr
    from models.refinement import view_loss
    from models.view_data import load_views

    header = inr_file.header
    chosen = parse_indices(view_ids, "--view-ids") or header.support_views or [0]
    posed = load_views(views, chosen)
    sampling = RaySampling(header.near, header.far, header.samples)

    def measure(weights) -> float:
        return support_ray_psnr(weights, inr_file.inr, sampling, posed, device)

    return view_loss(inr_file.inr, sampling, posed, rays, device=device), measure


def refine_settings(task: str, lr: float | None, schedule) -> object:
    """The task's default Adam settings, with --lr and --schedule applied and checked."""
    import math

    from models.refinement import RefineSettings

    defaults = RefineSettings() if task == "image" else RefineSettings(1e-4, "constant")
    if lr is not None and not (math.isfinite(lr) and 0 < lr <= 100):
        raise TransInrError(f"--lr {lr} is out of range; use a positive rate up to 100, e.g. 1e-3")
    return RefineSettings(
        defaults.lr if lr is None else lr,
        defaults.schedule if schedule is None else schedule.value,
        defaults.betas,
    )


@handle_errors
def refine(
    inr: Annotated[Path, typer.Argument(help="The .inr file to refine.")],
    image: Annotated[
        Path | None, typer.Option(help="Image INRs: the observed image (it was encoded from).")
    ] = None,
    views: Annotated[
        Path | None, typer.Option(help="NeRF INRs: the object's views folder or transforms.json.")
    ] = None,
    view_ids: Annotated[
        str | None, typer.Option(help="NeRF: which views, e.g. 0,7 (default: the encoded ones).")
    ] = None,
    rays: Annotated[int, typer.Option(min=1, help="NeRF: random rays a step.")] = 1024,
    steps: Annotated[int, typer.Option(min=1, help="Adam steps.")] = 100,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Adam learning rate (default: images 1e-3, measured in bench/refine.py; "
            "NeRF 1e-4, the paper's)."
        ),
    ] = None,
    schedule: Annotated[
        Schedule | None,
        typer.Option(help="lr schedule: constant, or cosine to 0 (default: constant)."),
    ] = None,
    coordinates: Annotated[
        Coordinates,
        typer.Option(
            help="Image INRs: fit pixel centres (grid), or jittered sub-pixel positions with "
            "bicubic targets (continuous: smoother between pixels, a little lower PSNR on them)."
        ),
    ] = Coordinates.grid,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Output .inr (default NAME.refined.inr).")
    ] = None,
    max_pixels: MaxPixelsOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Test-time optimisation of all INR weights on the observed pixels (or views)."""
    from models.inr_file import InrFile, load_inr, save_inr
    from models.inr_header import with_refinement
    from models.refinement import refine_and_check
    from models.training import resolve_device

    inr_file = load_inr(inr)
    if inr_file.task == "image" and views is not None:
        raise TransInrError(f"{inr} is an image INR; --views refines NeRF INRs, use --image")
    if inr_file.task == "nerf" and image is not None:
        raise TransInrError(f"{inr} is a NeRF INR; --image refines image INRs, use --views")
    if inr_file.task == "nerf" and coordinates != Coordinates.grid:
        raise TransInrError("--coordinates is for image INRs; drop it for NeRF files")
    if inr_file.task == "nerf" and views is None:
        raise TransInrError(f"{inr} is a NeRF INR; give --views, the object's views folder")
    if inr_file.task == "image" and image is None:
        raise TransInrError(f"{inr} is an image INR; give --image, the image it was encoded from")
    target = out or inr.with_name(inr.stem + ".refined.inr")
    check_output(target, overwrite)
    torch_device = resolve_device(device.value)
    weights = inr_file.batched(torch_device)
    if inr_file.task == "nerf":
        loss_fn, measure = nerf_objective(inr_file, views, view_ids, rays, torch_device)
    else:
        loss_fn, measure = image_objective(
            inr_file, image, torch_device, max_pixels, coordinates.value
        )
    settings = refine_settings(inr_file.task, lr, schedule)
    with progress_bar(quiet, "loss") as bar:
        task_id = bar.add_task("refine", total=steps, loss="")
        tuned, before, after = refine_and_check(
            weights,
            loss_fn,
            measure,
            steps,
            settings,
            on_step=lambda step, loss: bar.update(task_id, completed=step, loss=f"loss {loss:.5f}"),
            keep_best=inr_file.task == "image",  # NeRF: a loss on random rays; measure decides
        )
    header = with_refinement(inr_file.header, steps, settings.lr, settings.schedule, before, after)
    dtype = "float16" if str(inr_file.weights[0].dtype) == "torch.float16" else "float32"
    ensure_parent(target)
    tuned_file = InrFile([w[0].cpu() for w in tuned], inr_file.inr, inr_file.task, header)
    save_inr(tuned_file, target, dtype)
    if as_json:
        print(
            json.dumps(
                {"output": str(target), "psnr_before": before, "psnr_after": after, "steps": steps}
            )
        )
    else:
        console.print(f"PSNR {before:.2f} dB -> {after:.2f} dB after {steps} steps; wrote {target}")
