"""`transinr export`: an .inr file as a browser viewer (html), an ONNX graph, or a mesh."""

from __future__ import annotations

import json
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
    InrFileArgument,
    JsonOption,
    LazyTask,
    OverwriteOption,
    QuietOption,
    check_output,
    handle_errors,
    print_result,
    progress_bar,
)


class ExportFormat(str, Enum):
    html = "html"
    onnx = "onnx"
    ply = "ply"
    obj = "obj"


MESH_OPTIONS = ("--resolution", "--threshold", "--extent")


@handle_errors
def export(
    inr: InrFileArgument,
    fmt: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="html: a self-contained WebGL2 viewer; onnx: the INR as an ONNX graph; "
            "ply / obj: a NeRF's mesh by marching cubes. Default: from -o's suffix.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Output file (default: NAME.FORMAT).")
    ] = None,
    resolution: Annotated[
        int | None, typer.Option(help="Mesh: density grid points per side, 8 to 512 (128).")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Mesh: density of the surface (default: that which makes one of the file's "
            "sample intervals a quarter opaque)."
        ),
    ] = None,
    extent: Annotated[
        float | None,
        typer.Option(help="Mesh: half side of the cube meshed (default: the scene bounds)."),
    ] = None,
    dtype: Annotated[
        Dtype | None,
        typer.Option(help="html: weights embedded as float32 or float16 (default: the file's)."),
    ] = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Export an .inr file: a browser viewer (html), an ONNX graph, or a NeRF's mesh (ply, obj)."""
    from models.api import Inr
    from models.api import export as write_export
    from models.io.inr_file import load_inr
    from models.tasks.export import SUFFIXES, check_suffix, format_of

    chosen = format_of(fmt.value if fmt else None, out)
    check_options(chosen, resolution, threshold, extent, dtype)
    target = out or Path(inr.stem + SUFFIXES[chosen][0])
    check_suffix(chosen, target)
    check_output(target, overwrite)
    inr_file = load_inr(inr)
    started = time.perf_counter()
    with progress_bar(quiet or chosen not in ("ply", "obj")) as bar:
        summary = write_export(
            Inr(inr_file), target, chosen, name=inr.name, dtype=dtype.value if dtype else None,
            resolution=resolution or 128, threshold=threshold, extent=extent,
            device=device.value, on_slices=LazyTask(bar, "density grid", resolution or 128).advance,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    if as_json:
        print(json.dumps({"output": str(target), **summary, "seconds": seconds}))
    else:
        print_result(f"{inr} -> {target}  {describe(chosen, summary)}  {seconds:.2f} s")


def check_options(chosen: str, resolution, threshold, extent, dtype) -> None:
    """Mesh options only for meshes, --dtype only for html."""
    mesh_values = (resolution, threshold, extent)
    if chosen not in ("ply", "obj") and any(value is not None for value in mesh_values):
        raise TransInrError(
            f"{', '.join(MESH_OPTIONS)} are for mesh exports (--format ply or obj); drop them"
        )
    if dtype is not None and chosen != "html":
        raise TransInrError("--dtype is for --format html; drop it")


def describe(chosen: str, summary: dict) -> str:
    """One line on what was written: size, and a mesh's vertex and face counts."""
    size = summary["bytes"]
    shown = f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"
    if chosen in ("ply", "obj"):
        return f"{chosen}, {summary['vertices']} vertices, {summary['faces']} faces, {shown}"
    return f"{chosen}, {shown}"
