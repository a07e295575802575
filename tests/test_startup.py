"""Start-up: `--help` and usage errors must not import torch (issue 15's friction list)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from typer.testing import CliRunner
from transinr_cli.app import app
result = CliRunner().invoke(app, {args!r})
assert result.exit_code == {code}, result.output
print("torch" in sys.modules, "numpy" in sys.modules)
"""


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["render", "--help"], 0),
        (["train", "--help"], 0),
        (["encode"], 2),  # a usage error: no input
        (["render", "x.inr", "--bit-depth", "nope"], 2),
    ],
)
def test_help_and_usage_errors_do_not_import_torch(args, code):
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args, code=code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["False", "False"]
