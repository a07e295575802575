"""`transinr fit`: an INR fitted to one image from scratch with Adam (the paper's baseline)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID

from models.errors import TransInrError
from transinr_cli.common import (
    Device,
    DeviceOption,
    Dtype,
    DtypeOption,
    Fit,
    JsonOption,
    MaxPixelsOption,
    OverwriteOption,
    QuietOption,
    check_output,
    ensure_parent,
    handle_errors,
    output_path,
    print_result,
    progress_bar,
)

MAX_FIT_SIZE = 4096


class Activation(str, Enum):
    relu = "relu"
    sine = "sine"


ImageArgument = Annotated[Path, typer.Argument(help="The image to fit (PNG, JPEG, ...).")]
OutOption = Annotated[
    Path | None, typer.Option("-o", "--out", help="Output .inr (default IMAGE-NAME.inr).")
]
StepsOption = Annotated[int, typer.Option(min=1, max=10_000_000, help="Adam steps.")]
LrOption = Annotated[
    float | None,
    typer.Option(help="Adam learning rate (default 1e-3 relu, 3e-4 sine).", show_default=False),
]
PresetOption = Annotated[
    str, typer.Option(help="Image preset whose INR architecture and input size to use.")
]
SizeOption = Annotated[
    int | None,
    typer.Option(help="Fit at size x size pixels (default the preset's).", show_default=False),
]
ActivationOption = Annotated[
    Activation,
    typer.Option(help="relu: the preset's Fourier-feature INR; sine: SIREN on raw (y, x)."),
]
FitOption = Annotated[Fit, typer.Option("--fit", help="Fit to the square input.")]
SeedOption = Annotated[int, typer.Option(min=0, help="Seed of the random initialisation.")]


@handle_errors
def fit(
    image: ImageArgument,
    out: OutOption = None,
    steps: StepsOption = 500,
    lr: LrOption = None,
    preset: PresetOption = "celeba89",
    size: SizeOption = None,
    activation: ActivationOption = Activation.relu,
    fit_mode: FitOption = Fit.crop,
    dtype: DtypeOption = Dtype.float32,
    seed: SeedOption = 0,
    max_pixels: MaxPixelsOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Fit a randomly initialised INR to one image with Adam: the baseline encode replaces."""
    from models.io.inr_file import save_inr
    from models.tasks.devices import resolve_device
    from models.tasks.fitting import DEFAULT_LR, baseline_inr, fit_image_file

    if size is not None and not 1 <= size <= MAX_FIT_SIZE:
        raise TransInrError(
            f"--size {size} is out of range; use 1 to {MAX_FIT_SIZE} (every step renders the "
            "whole image)"
        )
    inr, preset_size = baseline_inr(preset, activation.value)
    learning_rate = DEFAULT_LR[activation.value] if lr is None else lr
    target = output_path(out, image, ".inr", several=False)
    check_output(target, overwrite)
    torch_device = resolve_device(device.value)
    # The bar starts with the first step: a bad image fails before it, as one error line.
    bar = progress_bar(quiet, "loss", "psnr", "speed")
    task_id = bar.add_task("fit", total=steps, loss="", psnr="", speed="")
    try:
        inr_file, seconds = fit_image_file(
            image,
            inr,
            size or preset_size,
            steps,
            learning_rate,
            fit_mode.value,
            torch_device,
            max_pixels,
            None if quiet else step_reporter(bar, task_id),
            seed,
        )
    finally:
        bar.stop()
    ensure_parent(target)
    save_inr(inr_file, target, dtype.value)
    psnr = inr_file.header.psnr
    if as_json:
        result = {
            "image": str(image),
            "inr": str(target),
            "steps": steps,
            "seconds": seconds,
            "psnr": psnr,
            "activation": activation.value,
        }
        print(json.dumps(result))
    else:
        print_result(
            f"{image} -> {target}  fit {steps} steps in {seconds:.1f} s  PSNR {psnr:.2f} dB"
        )


def step_reporter(bar: Progress, task_id: TaskID) -> Callable[[int, float], None]:
    """The fit's on_step: starts the bar at the first step, then shows the loss, the PSNR and
    the steps a second."""
    first_step_time: list[float] = []

    def show_step(step: int, mse: float) -> None:
        if not first_step_time:
            bar.start()
            first_step_time.append(time.perf_counter())
        elapsed = time.perf_counter() - first_step_time[0]
        speed = f"{(step - 1) / elapsed:.1f} steps/s" if step > 1 and elapsed > 0 else ""
        bar.update(
            task_id,
            completed=step,
            loss=f"loss {mse:.5f}",
            psnr=f"{-10.0 * math.log10(max(mse, 1e-12)):.2f} dB",
            speed=speed,
        )

    return show_step
