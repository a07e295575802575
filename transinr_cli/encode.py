"""`transinr encode`: images, or posed views of an object, into .inr files in one forward pass."""

from __future__ import annotations

import json
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
    console,
    ensure_parent,
    handle_errors,
    is_views_source,
    load_model,
    output_path,
    parse_indices,
)


@handle_errors
def encode(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Image files, or one object's views: a learnit folder or its transforms.json."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="OUT.inr, or a folder for several inputs.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Checkpoint or run folder (default: the bundled model of the task)."),
    ] = None,
    views: Annotated[
        str | None, typer.Option(help="Views: which views to use, e.g. 0,7 (default 0).")
    ] = None,
    fit: Annotated[Fit, typer.Option(help="Images: fit to the model's square input.")] = Fit.crop,
    dtype: Annotated[Dtype, typer.Option(help="Weights in the file.")] = Dtype.float32,
    max_pixels: MaxPixelsOption = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Encode images (or posed views) into .inr files: one forward pass, no gradient steps."""
    from models.encoding import encode_image_file, encode_views_file
    from models.inr_file import save_inr
    from models.training import resolve_device

    view_indices = parse_indices(views, "--views")
    view_inputs = [path for path in inputs if is_views_source(path)]
    if view_inputs and len(view_inputs) != len(inputs):
        raise TransInrError("give either images or views folders to one encode, not both")
    if not view_inputs and view_indices is not None:
        raise TransInrError("--views chooses views of an object folder; images take no --views")
    torch_device = resolve_device(device.value)
    checkpoint, meta_learner = load_model(
        model, torch_device, "nerf" if view_inputs else "image", quiet or as_json
    )
    several = len(inputs) > 1
    names = [path.parent if path.suffix == ".json" else path for path in inputs]
    targets = [output_path(out, name, ".inr", several) for name in names]
    clashes = sorted({str(t) for t in targets if targets.count(t) > 1})
    if clashes:
        raise TransInrError(
            f"several inputs would be written to {clashes[0]}; give them distinct file names"
        )
    for target in targets:
        check_output(target, overwrite)
    results = []
    for source, target in zip(inputs, targets, strict=True):
        if view_inputs:
            inr_file, seconds = encode_views_file(
                meta_learner, checkpoint, source, view_indices, torch_device
            )
        else:
            inr_file, seconds = encode_image_file(
                meta_learner, checkpoint, source, fit.value, torch_device, max_pixels
            )
        ensure_parent(target)
        save_inr(inr_file, target, dtype.value)
        psnr = inr_file.info["encode_psnr"]
        results.append(
            {
                ("views" if view_inputs else "image"): str(source),
                "inr": str(target),
                "encode_seconds": seconds,
                "psnr": psnr,
            }
        )
        if not as_json and not quiet:
            console.print(
                f"{source} -> {target}  encode {seconds * 1000:.0f} ms  PSNR {psnr:.2f} dB"
                + ("  (1024 rays of the support views)" if view_inputs else "")
            )
    if as_json:
        print(json.dumps({"model": checkpoint.model_id, "task": inr_file.task, "results": results}))
