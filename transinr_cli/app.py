"""The `transinr` command line. Commands parse arguments, call the core in `models`, and print."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from models import __version__
from transinr_cli.attention import attention
from transinr_cli.common import console, error_console, print_json_error
from transinr_cli.data import data_app
from transinr_cli.encode import encode
from transinr_cli.evaluate import evaluate
from transinr_cli.export import export
from transinr_cli.fit import fit
from transinr_cli.info import info
from transinr_cli.models_cmd import models_app
from transinr_cli.refine import refine
from transinr_cli.render import render
from transinr_cli.train import train


class OneLineErrors(TyperGroup):
    """Usage errors as one line on stderr (exit 2), instead of click's multi-line usage panel."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as error:
            if not standalone_mode:
                raise
            ctx = getattr(error, "ctx", None)
            where = f"see `{ctx.command_path} --help`" if ctx else ""
            if "--json" in (sys.argv[1:] if args is None else args):
                print_json_error(error.format_message(), where)
            else:
                where = f" ({where})" if where else ""
                error_console.print(f"error: {error.format_message()}{where}", markup=False)
            sys.exit(error.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            error_console.print("aborted", markup=False)
            sys.exit(130)
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code


app = typer.Typer(
    name="transinr",
    cls=OneLineErrors,
    help="Images or posed views -> complete INR weights in one Transformer forward pass.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(train)
app.command()(encode)
app.command()(render)
app.command()(refine)
app.command()(fit)
app.command("eval")(evaluate)
app.command()(info)
app.command()(attention)
app.command()(export)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")


@app.callback(invoke_without_command=True)
def version_callback(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"transinr {__version__}")
        raise typer.Exit()


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
