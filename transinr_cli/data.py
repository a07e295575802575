"""`transinr data synth` and `transinr data mesh`: procedural objects ray-traced, or real meshes
(OBJ, Sweet Home 3D libraries) rasterised, into the learnit layout."""

from __future__ import annotations

import json
import re
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from models.errors import TransInrError
from transinr_cli.common import (
    Category,
    JsonOption,
    QuietOption,
    console,
    error_console,
    handle_errors,
    progress_bar,
)

if TYPE_CHECKING:
    from models.data.meshes import MeshDataset


class Up(str, Enum):
    y = "y"
    z = "z"


data_app = typer.Typer(
    help="Data sets: posed views of synthetic objects or of real meshes.", no_args_is_help=True
)


def generate(root: Path, category: str, objects: int, seed: int, extent: float, quiet: bool):
    """Write a synthetic set with a progress bar; returns the object ids."""
    from models.data.synth import write_dataset

    with progress_bar(quiet) as bar:
        task_id = bar.add_task(f"synth {category}", total=objects)
        return write_dataset(
            root,
            category,
            objects,
            seed=seed,
            extent=extent,
            on_object=lambda index: bar.advance(task_id),
        )


def synthetic_default(category: str, objects: int, quiet: bool, writer: bool = True) -> Path:
    """The synthetic set `train --task nerf` uses without --data (models.tasks.train_setup's
    synthetic_data: generated once, then reused), said on stderr, with a progress bar while it
    is generated (`writer=False`: only its path, for the ranks that wait while rank 0 writes
    it)."""
    from models.data.view_data import splits_file
    from models.tasks.train_setup import synthetic_data, synthetic_root

    root = synthetic_root(category, objects)
    if not writer:
        return root
    if splits_file(root, category).is_file():  # written last: the set is complete
        if not quiet:
            error_console.print(f"using synthetic {category} in {root}", markup=False)
        return root
    if not quiet:
        error_console.print(
            f"generating {objects} synthetic {category} into {root} (once)", markup=False
        )
    with progress_bar(quiet) as bar:
        task_id = bar.add_task(f"synth {category}", total=objects)
        return synthetic_data(category, objects, on_object=lambda index: bar.advance(task_id))


@data_app.command()
@handle_errors
def synth(
    category: Annotated[Category, typer.Option(help="What to build.")] = Category.chairs,
    objects: Annotated[int, typer.Option(min=1, help="How many objects.")] = 100,
    out: Annotated[Path, typer.Option("--out", "-o", help="Data set root folder.")] = Path(
        "data/synthetic"
    ),
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same files.")] = 0,
    extent: Annotated[
        float,
        typer.Option(min=0.1, max=1.2, help="Largest half extent of each object (ShapeNet: 1)."),
    ] = 1.0,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Build procedural objects and ray-trace 50 posed 128x128 views of each (learnit layout)."""
    import time

    from models.data.view_data import splits_file

    started = time.perf_counter()
    ids = generate(out, category.value, objects, seed, extent, quiet)
    seconds = time.perf_counter() - started
    summary = {
        "root": str(out),
        "category": category.value,
        "objects": len(ids),
        "splits": str(splits_file(out, category.value)),
        "seconds": seconds,
        "objects_per_second": len(ids) / seconds,
    }
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(
            f"wrote {len(ids)} {category.value} to {out / category.value} in {seconds:.1f} s "
            f"({len(ids) / seconds:.1f} objects/s); splits in {summary['splits']}"
        )


def parse_split(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> the train, val and test shares (they must sum to 1)."""
    try:
        shares = tuple(float(part) for part in text.split(","))
    except ValueError:
        shares = ()
    if len(shares) != 3 or min(shares) < 0 or abs(sum(shares) - 1) > 1e-6 or shares[0] <= 0:
        raise TransInrError(
            f"--split {text} is not three shares train,val,test summing to 1; e.g. 0.8,0.1,0.1"
        )
    return shares[0], shares[1], shares[2]


def render_meshes(src: Path, out: Path, category: str, options: dict, quiet: bool) -> MeshDataset:
    """Render the meshes with a progress bar (one step a mesh, its name beside the bar)."""
    from models.data.meshes import write_mesh_dataset

    with progress_bar(quiet, "mesh") as bar:
        task_id = bar.add_task(f"mesh {category}", total=None, mesh="")

        def started(count: int) -> None:
            bar.update(task_id, total=count)

        def done(label: str) -> None:
            bar.update(task_id, advance=1, mesh=label)

        return write_mesh_dataset(src, out, category, on_start=started, on_object=done, **options)


@data_app.command()
@handle_errors
def mesh(
    src: Annotated[Path, typer.Argument(help="An OBJ file, a .sh3f library, or a folder of them.")],
    category: Annotated[
        str,
        typer.Option(help="Category folder (plural, e.g. chairs, lamps); picks library models."),
    ] = "chairs",
    out: Annotated[Path, typer.Option("--out", "-o", help="Data set root folder.")] = Path(
        "data/meshes"
    ),
    views: Annotated[
        int, typer.Option(min=1, max=1000, help="Views per object (training reads views 0-24).")
    ] = 50,
    size: Annotated[int, typer.Option(min=8, max=1024, help="View width and height.")] = 128,
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same cameras, same files.")] = 0,
    split: Annotated[
        str, typer.Option(help="Train,val,test shares of the objects.")
    ] = "0.8,0.1,0.1",
    up: Annotated[Up, typer.Option(help="Up axis of loose OBJ files (libraries: Y).")] = Up.y,
    turn: Annotated[
        float,
        typer.Option(
            min=-360,
            max=360,
            help="Degrees to turn every mesh about its up axis, counter-clockwise seen from "
            "above, so that its front faces +y as ShapeNet's (e.g. 180 for OBJ files that "
            "face +z).",
        ),
    ] = 0.0,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Render real meshes (OBJ with MTL colours and textures, Sweet Home 3D .sh3f furniture
    libraries) into 128x128 posed views in the learnit layout, like the real ShapeNet renders."""
    import time

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", category):
        raise TransInrError(f"--category {category!r} is not a folder name like chairs or lamps")
    shares = parse_split(split)
    options = {"seed": seed, "views": views, "size": size, "fractions": shares}
    options["y_up"], options["turn"] = up == Up.y, turn
    started = time.perf_counter()
    result = render_meshes(src, out, category, options, quiet)
    seconds = time.perf_counter() - started
    report_meshes(result, out, category, seconds, as_json)


def report_meshes(
    result: MeshDataset, out: Path, category: str, seconds: float, as_json: bool
) -> None:
    """Print what was rendered and each skipped mesh (one line each); exit 1 if none was."""
    skipped = [{"source": s.source, "reason": s.reason} for s in result.skipped]
    rendered = len(result.ids)
    if as_json:
        summary = {
            "root": str(out),
            "category": category,
            "objects": rendered,
            "skipped": skipped,
            "splits": str(result.splits_path) if rendered else None,
            "split_sizes": {name: len(ids) for name, ids in result.splits.items()},
            "seconds": seconds,
            "seconds_per_object": sum(result.seconds) / rendered if rendered else None,
        }
        if not rendered:
            summary["error"] = f"no {category} mesh could be rendered"
        print(json.dumps(summary))
    else:
        for item in result.skipped:
            error_console.print(f"skipped {item.source}: {item.reason}", markup=False)
        if rendered:
            sizes = ", ".join(f"{len(ids)} {name}" for name, ids in result.splits.items())
            console.print(
                f"wrote {rendered} {category} to {out / category} in {seconds:.1f} s "
                f"({sum(result.seconds) / rendered:.1f} s each), skipped {len(skipped)}; "
                f"splits ({sizes}) in {result.splits_path}",
                markup=False,
            )
    if not rendered:
        if not as_json:
            error_console.print(
                f"error: no {category} mesh could be rendered ({len(skipped)} skipped)",
                markup=False,
            )
        raise typer.Exit(1)
