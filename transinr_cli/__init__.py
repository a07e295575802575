"""The `transinr` command line: thin Typer commands over the `models` core."""
