"""`transinr fit`: an INR fitted to one image from scratch with Adam (the paper's baseline)."""

from __future__ import annotations

import json
import math
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from models.errors import TransInrError
from transinr_cli.common import (
    Device,
    DeviceOption,
    Dtype,
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


@handle_errors
def fit(
    image: Annotated[Path, typer.Argument(help="The image to fit (PNG, JPEG, ...).")],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Output .inr (default IMAGE-NAME.inr).")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, max=10_000_000, help="Adam steps.")] = 500,
    lr: Annotated[
        float | None,
        typer.Option(help="Adam learning rate (default 1e-3 relu, 3e-4 sine).", show_default=False),
    ] = None,
    preset: Annotated[
        str, typer.Option(help="Image preset whose INR architecture and input size to use.")
    ] = "celeba89",
    size: Annotated[
        int | None,
        typer.Option(help="Fit at size x size pixels (default the preset's).", show_default=False),
    ] = None,
    activation: Annotated[
        Activation,
        typer.Option(help="relu: the preset's Fourier-feature INR; sine: SIREN on raw (y, x)."),
    ] = Activation.relu,
    fit_mode: Annotated[Fit, typer.Option("--fit", help="Fit to the square input.")] = Fit.crop,
    dtype: Annotated[Dtype, typer.Option(help="Weights in the file.")] = Dtype.float32,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the random initialisation.")] = 0,
    max_pixels: MaxPixelsOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Fit a randomly initialised INR to one image with Adam: the baseline encode replaces."""
    import dataclasses

    from models.core.presets import preset_config
    from models.io.inr_file import save_inr
    from models.tasks.devices import resolve_device
    from models.tasks.fitting import DEFAULT_LR, fit_image_file

    if size is not None and not 1 <= size <= MAX_FIT_SIZE:
        raise TransInrError(
            f"--size {size} is out of range; use 1 to {MAX_FIT_SIZE} (every step renders the "
            "whole image)"
        )
    config = preset_config(preset, "image")
    inr = dataclasses.replace(config.inr, activation=activation.value)
    if activation is Activation.sine:
        inr.fourier_count = 0  # SIREN takes the raw coordinates
    learning_rate = DEFAULT_LR[activation.value] if lr is None else lr
    target = output_path(out, image, ".inr", several=False)
    check_output(target, overwrite)
    torch_device = resolve_device(device.value)
    # The bar starts with the first step: a bad image fails before it, as one error line.
    bar = progress_bar(quiet, "loss", "psnr", "speed")
    task_id = bar.add_task("fit", total=steps, loss="", psnr="", speed="")
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

    try:
        inr_file, seconds = fit_image_file(
            image,
            inr,
            size or config.image_size,
            steps,
            learning_rate,
            fit_mode.value,
            torch_device,
            max_pixels,
            None if quiet else show_step,
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
