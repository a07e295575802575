"""`transinr info`: metadata and parameter count of an .inr file or a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from transinr_cli.common import JsonOption, console, handle_errors


@handle_errors
def info(
    path: Annotated[Path, typer.Argument(help="An .inr file or a model checkpoint.")],
    as_json: JsonOption = False,
) -> None:
    """Print an .inr file's (or checkpoint's) metadata and parameter count."""
    from models.io.checkpoint import FORMAT_NAME as CHECKPOINT_FORMAT
    from models.io.inr_file import load_inr
    from models.io.inr_header import header_to_dict
    from models.io.safetensors_io import peek_format

    if not (path.is_dir() or peek_format(path) == CHECKPOINT_FORMAT):
        inr_file = load_inr(path)
        details = {
            "file": str(path),
            "format": "transinr.inr",
            "task": inr_file.task,
            "parameters": inr_file.parameter_count(),
            "dtype": str(inr_file.weights[0].dtype).replace("torch.", ""),
            "inr": inr_file.inr.__dict__,
            **header_to_dict(inr_file.header),
        }
    else:
        from models.io.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(path)
        details = {
            "file": str(path),
            "format": "transinr.checkpoint",
            "model_id": checkpoint.model_id,
            "task": checkpoint.config.task,
            "preset": checkpoint.config.preset,
            "parameters": sum(t.numel() for t in checkpoint.model_state.values()),
            "step": checkpoint.train_state.get("step"),
            "best_val_psnr": checkpoint.train_state.get("best_val_psnr"),
            "config": json.loads(checkpoint.config.to_json()),
        }
    if as_json:
        print(json.dumps(details))
        return
    from models.errors import printable

    table = Table(show_header=False, title=printable(str(path)))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # a narrow terminal folds a long value, never cuts it
    for key, value in details.items():  # strings from the file: escaped, never rich markup
        text = json.dumps(value) if isinstance(value, dict | list) else printable(str(value))
        table.add_row(key, Text(text))
    console.print(table)
