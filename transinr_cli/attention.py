"""`transinr attention`: where each INR layer's weight tokens attend in an image (Fig. 7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from models.errors import TransInrError
from transinr_cli.common import (
    Device,
    DeviceOption,
    Fit,
    JsonOption,
    MaxPixelsOption,
    OverwriteOption,
    QuietOption,
    check_output,
    ensure_parent,
    handle_errors,
    load_model,
    print_result,
)


@handle_errors
def attention(
    image: Annotated[Path, typer.Argument(help="An image file.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output figure, a .png file.")],
    model: Annotated[
        Path | None,
        typer.Option(
            help="Image checkpoint or run folder (default: the bundled Trans-INR face model)."
        ),
    ] = None,
    tokens: Annotated[
        int, typer.Option(min=1, help="Weight tokens shown per INR layer (most focused first).")
    ] = 3,
    fit: Annotated[Fit, typer.Option(help="Fit the image to the model's square input.")] = Fit.crop,
    cell: Annotated[int, typer.Option(min=1, help="Size of each figure cell in pixels.")] = 178,
    max_pixels: MaxPixelsOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Draw the last-layer attention of each INR layer's weight tokens on an image (Fig. 7)."""
    from models.api import Model, attention_map
    from models.io.bundle import ATTENTION_MODEL
    from models.io.images import encode_png
    from models.io.safetensors_io import atomic_write
    from models.tasks.devices import resolve_device

    if out.suffix.lower() != ".png":
        raise TransInrError(f"the figure is written as PNG; name the output .png, not '{out.name}'")
    check_output(out, overwrite)
    torch_device = resolve_device(device.value)
    checkpoint, meta_learner = load_model(
        model, torch_device, "image", quiet or as_json, default_name=ATTENTION_MODEL
    )
    figure, chosen = attention_map(
        Model(checkpoint, meta_learner, torch_device), image, tokens=tokens, fit=fit.value,
        cell=cell, max_pixels=max_pixels,
    )  # fmt: skip
    ensure_parent(out)
    atomic_write(out, encode_png(figure))
    layers = len(chosen)
    if as_json:
        print(json.dumps({"output": str(out), "layers": layers, "tokens": chosen}))
    else:
        height, width = figure.shape[:2]
        print_result(
            f"{image} -> {out}  {width}x{height}  {layers} INR layers, "
            f"{tokens} weight tokens each (most focused)"
        )
