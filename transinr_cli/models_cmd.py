"""`transinr models`: the bundled default models with their cards, and the local runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from transinr_cli.common import JsonOption, OverwriteOption, check_output, console, handle_errors

models_app = typer.Typer(
    help="Bundled default models (with their cards) and local runs.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _local_models(runs: Path) -> list[dict]:
    """Checkpoints of local runs: RUNS/*/best.safetensors (or last), with their training state."""
    from models.errors import TransInrError
    from models.io.checkpoint import load_checkpoint

    found = []
    for run_dir in sorted(path for path in runs.glob("*") if path.is_dir()):
        for name in ("best.safetensors", "last.safetensors"):
            path = run_dir / name
            if not path.is_file():
                continue
            try:
                checkpoint = load_checkpoint(path)
            except TransInrError as error:
                found.append({"file": str(path), "error": str(error)})
                break
            state = checkpoint.train_state
            found.append(
                {
                    "file": str(path),
                    "model_id": checkpoint.model_id,
                    "task": checkpoint.config.task,
                    "preset": checkpoint.config.preset,
                    "parameters": sum(t.numel() for t in checkpoint.model_state.values()),
                    "step": state.get("step"),
                    "best_val_psnr": state.get("best_val_psnr"),
                }
            )
            break
    return found


@models_app.callback()
@handle_errors
def models(
    ctx: typer.Context,
    runs: Annotated[
        Path, typer.Option(help="Folder of local runs (train's --out default parent).")
    ] = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """List the bundled default models, with their cards, and the local runs' checkpoints."""
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import asdict

    from models.io.bundle import DEFAULT_MODELS, bundled_cards, bundled_dir

    cards = bundled_cards()
    local = _local_models(runs) if runs.is_dir() else []
    if as_json:
        bundled = [{**asdict(card), "path": str(card.path)} for card in cards]
        print(json.dumps({"bundled": bundled, "local": local}))
        return
    defaults = set(DEFAULT_MODELS.values())
    table = Table(title=f"bundled models ({bundled_dir()})")
    for column in ("name", "task", "preset", "parameters", "PSNR", "refined", "trained"):
        table.add_column(column)
    for card in cards:
        evaluation, training = card.evaluation, card.training
        refine = evaluation.get("refine", evaluation)  # image cards score refinement apart
        refined, refine_steps = refine.get("psnr_refined"), refine.get("refine_steps")
        table.add_row(
            card.name + (" (default)" if card.name in defaults else ""),
            card.task,
            card.preset,
            f"{card.parameters:,}",
            f"{evaluation.get('psnr', float('nan')):.2f} dB",
            (
                f"{refine['psnr']:.2f} -> {refined:.2f} dB ({refine_steps} steps, "
                f"{refine.get('images') or refine.get('objects')} items)"
            )
            if refined
            else "-",
            f"{training.get('steps')} steps, {training.get('wall_seconds', 0) / 3600:.1f} h",
        )
    console.print(table if cards else f"no bundled models in {bundled_dir()}")
    for card in cards:
        console.print(
            f"[bold]{card.name}[/bold]: trained on {card.training.get('data')}", highlight=False
        )
        console.print(f"  train: {card.training.get('command')}", markup=False, highlight=False)
        console.print(f"  eval:  {card.evaluation.get('command')}", markup=False, highlight=False)
        console.print(
            f"  on {card.training.get('hardware')}; card: {card.path.with_suffix('.json')}",
            markup=False,
            highlight=False,
        )
    if local:
        table = Table(title=f"local runs ({runs})")
        for column in ("file", "task", "preset", "parameters", "step", "best val PSNR"):
            table.add_column(column)
        for entry in local:
            if "error" in entry:
                table.add_row(entry["file"], "unreadable", entry["error"], "", "", "")
                continue
            best = entry["best_val_psnr"]
            table.add_row(
                entry["file"],
                entry["task"],
                entry["preset"],
                f"{entry['parameters']:,}",
                str(entry["step"]),
                f"{best:.2f} dB" if isinstance(best, float) and best > -1e9 else "-",
            )
        console.print(table)


@models_app.command("export")
@handle_errors
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint or run folder to slim down.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="OUT.safetensors")],
    dtype: Annotated[str, typer.Option(help="float16 or float32 weights.")] = "float16",
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Write a slim copy of a checkpoint (weights only, float16 by default) for sharing."""
    import torch

    from models.errors import TransInrError
    from models.io.bundle import export_model

    dtypes = {"float16": torch.float16, "float32": torch.float32}
    if dtype not in dtypes:
        raise TransInrError(f"--dtype {dtype} is not supported; use float16 or float32")
    check_output(out, overwrite)
    result = export_model(checkpoint, out, dtypes[dtype])
    result.pop("train_state")
    if as_json:
        print(json.dumps({"file": str(out), **result}))
    else:
        console.print(
            f"{checkpoint} -> {out}  {result['bytes'] / 2**20:.1f} MiB  "
            f"{result['parameters']:,} parameters  sha256 {result['sha256']}",
            markup=False,
            highlight=False,
        )
