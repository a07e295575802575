"""`transinr encode`: images, or posed views of an object, into .inr files in one forward pass."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from models.errors import TransInrError
from transinr_cli.common import (
    Device,
    DeviceOption,
    Dtype,
    DtypeOption,
    Fit,
    FollowLinksOption,
    JsonOption,
    MaxPixelsOption,
    OverwriteOption,
    QuietOption,
    check_output,
    ensure_parent,
    error_console,
    handle_errors,
    is_views_source,
    load_model,
    output_path,
    parse_indices,
    print_result,
    progress_bar,
)

InputsArgument = Annotated[
    list[Path],
    typer.Argument(
        help="Image files or folders of images (searched recursively), or one object's "
        "views: a learnit folder or its transforms.json."
    ),
]
OutOption = Annotated[
    Path | None, typer.Option("-o", "--out", help="OUT.inr, or a folder for several inputs.")
]
ModelOption = Annotated[
    Path | None,
    typer.Option(help="Checkpoint or run folder (default: the bundled model of the task)."),
]
ViewsOption = Annotated[
    str | None, typer.Option(help="Views: which views to use, e.g. 0,7 (default 0).")
]
FitOption = Annotated[Fit, typer.Option(help="Images: fit to the model's square input.")]
RefineStepsOption = Annotated[
    int,
    typer.Option(
        min=0,
        max=100_000,
        help="Images: then refine each INR this many Adam steps against its input "
        "(batched; refine's defaults), recording the PSNR before and after.",
    ),
]
RefineLrOption = Annotated[
    float | None, typer.Option(help="With --refine-steps: the learning rate (default 1e-3).")
]


@handle_errors
def encode(
    inputs: InputsArgument,
    out: OutOption = None,
    model: ModelOption = None,
    views: ViewsOption = None,
    fit: FitOption = Fit.crop,
    dtype: DtypeOption = Dtype.float32,
    refine_steps: RefineStepsOption = 0,
    refine_lr: RefineLrOption = None,
    max_pixels: MaxPixelsOption = None,
    follow_links: FollowLinksOption = False,
    overwrite: OverwriteOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Encode images (or posed views) into .inr files: one forward pass, no gradient steps."""
    from models.tasks.devices import resolve_device
    from transinr_cli.refine import refine_settings

    view_indices = parse_indices(views, "--views")
    view_inputs = [path for path in inputs if is_views_source(path)]
    check_kind_options(inputs, view_inputs, view_indices, follow_links, refine_steps, refine_lr)
    settings = refine_settings("image", refine_lr, None)
    inputs, targets = planned_targets(inputs, bool(view_inputs), out, overwrite)
    torch_device = resolve_device(device.value)
    checkpoint, meta_learner = load_model(
        model, torch_device, "nerf" if view_inputs else "image", quiet or as_json
    )
    reading = {"max_pixels": max_pixels, "follow_links": follow_links}
    encoded = encode_all(
        inputs, bool(view_inputs), meta_learner, checkpoint, view_indices, fit, torch_device,
        reading, quiet, as_json,
    )  # fmt: skip
    refine_time = 0.0
    if refine_steps:
        refine_time = refine_all(encoded, inputs, refine_steps, settings, torch_device, quiet)
    results = save_all(
        inputs, targets, encoded, bool(view_inputs), dtype, refine_steps, refine_time, as_json
    )
    if as_json:
        task = encoded[-1][0].task
        print(json.dumps({"model": checkpoint.model_id, "task": task, "results": results}))


def planned_targets(
    inputs: list[Path], views: bool, out: Path | None, overwrite: bool
) -> tuple[list[Path], list[Path]]:
    """The inputs (a folder's images listed) and the .inr file each becomes: distinct, and
    none that exists unless --overwrite."""
    if not views:
        inputs, targets = image_targets(inputs, out)
    else:
        names = [path.parent if path.suffix == ".json" else path for path in inputs]
        check_inr_target(out, len(inputs) > 1)
        targets = [output_path(out, name, ".inr", len(inputs) > 1) for name in names]
    counts = Counter(targets)
    clashes = sorted(str(t) for t, count in counts.items() if count > 1)
    if clashes:
        raise TransInrError(
            f"several inputs would be written to {clashes[0]}; give them distinct file names"
        )
    for target in targets:
        check_output(target, overwrite)
    return inputs, targets


def encode_all(
    inputs: list[Path], views: bool, meta_learner, checkpoint, view_indices: list[int] | None,
    fit: Fit, device, reading: dict, quiet: bool, as_json: bool,
) -> list[tuple]:  # fmt: skip
    """(.inr file, seconds) of each input, under a progress bar from 4 inputs on; each image's
    note of what it left out of the picture."""
    from models.tasks.encoding import encode_image_file, encode_views_file

    encoded = []
    with progress_bar(quiet or len(inputs) < 4) as bar:
        task_id = bar.add_task("encode", total=len(inputs))
        for source in inputs:
            if views:
                encoded.append(
                    encode_views_file(
                        meta_learner,
                        checkpoint,
                        source,
                        view_indices,
                        device,
                        reading["max_pixels"],
                        reading["follow_links"],
                    )
                )
            else:
                encoded.append(
                    encode_image_file(
                        meta_learner, checkpoint, source, fit.value, device, reading["max_pixels"]
                    )
                )
                if not quiet and not as_json:
                    note_input(source, encoded[-1][0].header)
            bar.advance(task_id)
    return encoded


def save_all(
    inputs: list[Path], targets: list[Path], encoded: list[tuple], views: bool, dtype: Dtype,
    refine_steps: int, refine_time: float, as_json: bool,
) -> list[dict]:  # fmt: skip
    """Write each .inr file, printing its result line (not with --json); the results."""
    from models.io.inr_file import save_inr

    results = []
    for source, target, (inr_file, seconds) in zip(inputs, targets, encoded, strict=True):
        ensure_parent(target)
        save_inr(inr_file, target, dtype.value)
        result = {
            ("views" if views else "image"): str(source),
            "inr": str(target),
            "encode_seconds": seconds,
            "psnr": inr_file.header.encode_psnr,
        }
        if refine_steps:
            result["refined_psnr"] = inr_file.header.refined_psnr
            result["refine_seconds"] = refine_time / len(inputs)
        results.append(result)
        if not as_json:
            print_result(result_line(source, target, inr_file.header, seconds, views))
    return results


def check_kind_options(
    inputs: list[Path], view_inputs: list[Path], view_indices, follow_links: bool,
    refine_steps: int, refine_lr: float | None,
) -> None:  # fmt: skip
    """Images or views, not both; each kind's options only with it."""
    if view_inputs and len(view_inputs) != len(inputs):
        raise TransInrError("give either images or views folders to one encode, not both")
    if not view_inputs and view_indices is not None:
        raise TransInrError("--views chooses views of an object folder; images take no --views")
    if not view_inputs and follow_links:
        raise TransInrError("--follow-links is for views folders; images take no --follow-links")
    if view_inputs and (refine_steps or refine_lr is not None):
        raise TransInrError(
            "--refine-steps is for images; refine a NeRF with `transinr refine FILE --views DIR`"
        )


def check_inr_target(out: Path | None, several: bool) -> None:
    """-o is an .inr file for one input, a folder for several; nothing else."""
    if out is None or out.is_dir() or out.suffix == "":
        return
    if out.suffix != ".inr":
        raise TransInrError(
            f"-o {out}: encode writes .inr files; name it {out.with_suffix('.inr')} (to get an "
            "image, `transinr render` the .inr)"
        )
    if several:
        raise TransInrError(
            f"several inputs need an output folder, not the file {out}; use -o {out.stem}/"
        )


def image_targets(inputs: list[Path], out: Path | None) -> tuple[list[Path], list[Path]]:
    """Image files, and folders searched recursively for images, with the .inr each becomes:
    files as before; a folder's images under -o OUTDIR, mirroring the folder's layout."""
    from models.data.image_data import IMAGE_SUFFIXES

    sources, targets = [], []
    folders = [path for path in inputs if path.is_dir()]
    if folders and out is None:
        raise TransInrError(f"encoding the folder {folders[0]} needs an output folder: -o OUTDIR/")
    several = len(inputs) > 1 or bool(folders)
    check_inr_target(out, several)
    for path in inputs:
        if not path.is_dir():
            sources.append(path)
            targets.append(output_path(out, path, ".inr", several))
            continue
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise TransInrError(f"no images found in the folder {path}; check the path")
        root = out / path.name if len(folders) > 1 else out
        for image in found:
            sources.append(image)
            targets.append(root / image.relative_to(path).with_suffix(".inr"))
    return sources, targets


def note_input(source: Path, header) -> None:
    """Say what of the picture was encoded when some of it was left out (never silently)."""
    if header.fit is not None and header.fit.discards_pixels:
        error_console.print(
            f"note: {source}: encoded {header.input_region} (--fit pad keeps the whole picture)",
            markup=False,
            highlight=False,
        )


def refine_all(encoded, inputs, steps: int, settings, device, quiet: bool) -> float:
    """Refine the encoded image INRs in place, with a progress bar; returns the seconds."""
    import time

    from models.tasks.encoding import refine_encoded_images

    started = time.perf_counter()
    with progress_bar(quiet) as bar:
        task_id = bar.add_task("refine", total=steps * len(inputs))
        refine_encoded_images(
            [inr_file for inr_file, _ in encoded],
            inputs,
            steps,
            settings,
            device,
            on_step=lambda images: bar.advance(task_id, images),
        )
    return time.perf_counter() - started


def result_line(source: Path, target: Path, header, seconds: float, views: bool) -> str:
    """One line per input: the file written, the encode time and the PSNR, labelled."""
    line = f"{source} -> {target}  encode {seconds * 1000:.0f} ms  PSNR {header.encode_psnr:.2f} dB"
    if views:
        return line + "  (1024 rays of the support views)"
    if header.refined_psnr is not None:
        line += f" -> {header.refined_psnr:.2f} dB after {header.refine_steps} refinement steps"
    size = header.input_size
    where = "crop" if header.fit is not None and header.fit.mode == "crop" else "input"
    return line + f"  (on the {size}x{size} {where})"
