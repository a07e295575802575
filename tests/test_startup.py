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


ENCODE_PROBE = """
import sys
from typer.testing import CliRunner
from transinr_cli.app import app
result = CliRunner().invoke(app, ["encode", {photo!r}, "-o", {out!r}, "--quiet"])
assert result.exit_code == 0, result.output
print(sorted(m for m in ("torch._dynamo", "sympy", "torch.fx.experimental.symbolic_shapes")
             if m in sys.modules))
"""


def test_encode_does_not_import_dynamo_or_sympy(tmp_path):
    """Loading a model shape-checks it on the meta device; torch.cat / randn there import
    torch._dynamo and sympy (~1.5 s of start-up), so the model code must avoid them."""
    from pathlib import Path

    photo = Path(__file__).resolve().parent.parent / "assets" / "examples" / "astronaut.jpg"
    probe = ENCODE_PROBE.format(photo=str(photo), out=str(tmp_path / "a.inr"))
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split("\n")[-2] == "[]"


def test_standard_normal_matches_randn():
    import torch

    from models.core.initialisation import standard_normal

    torch.manual_seed(3)
    expected = torch.randn(17, 5)
    torch.manual_seed(3)
    assert torch.equal(standard_normal(17, 5), expected)
    with torch.device("meta"):
        assert standard_normal(4, 2).shape == (4, 2)
