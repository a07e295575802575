"""`transinr data synth`: procedural objects ray-traced into the learnit layout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from transinr_cli.common import (
    Category,
    JsonOption,
    QuietOption,
    console,
    error_console,
    handle_errors,
    progress_bar,
)

data_app = typer.Typer(help="Data sets: generate synthetic posed views.", no_args_is_help=True)


def cache_root() -> Path:
    """Where generated data sets are kept: $TRANSINR_CACHE, else ~/.cache/transinr."""
    return Path(os.environ.get("TRANSINR_CACHE") or Path.home() / ".cache" / "transinr")


def generate(root: Path, category: str, objects: int, seed: int, extent: float, quiet: bool):
    """Write a synthetic set with a progress bar; returns the object ids."""
    from models.synth import write_dataset

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
    """The synthetic set `train --task nerf` uses without --data: generated once, then reused
    (`writer=False`: only its path, for the ranks that wait while rank 0 writes it)."""
    from models.view_data import splits_file

    root = cache_root() / "synthetic" / f"{category}-{objects}-seed0"
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
    generate(root, category, objects, 0, 1.0, quiet)
    return root


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

    from models.view_data import splits_file

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
