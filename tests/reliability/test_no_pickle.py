"""No pickle anywhere: no code path can unpickle a file (an arbitrary-code-execution hole).

Checkpoints and .inr files are safetensors with JSON metadata; this scans the source of the
package, the CLI, the benchmarks and the tests for every way to unpickle.
"""

from __future__ import annotations

import re
from pathlib import Path

from reliability_support import REPO_ROOT

FOLDERS = ("models", "transinr_cli", "bench", "tests")
FORBIDDEN = {
    "torch.load": re.compile(r"\btorch\s*\.\s*load\s*\("),
    "an import of a pickle module": re.compile(
        r"^\s*(import|from)\s+(c?pickle|_pickle|dill|cloudpickle)\b", re.M
    ),
    "a pickle-module load call": re.compile(
        r"\b(c?pickle|_pickle|dill|cloudpickle)\s*\.\s*loads?\s*\("
    ),
    "Unpickler": re.compile(r"\bUnpickler\b"),
    "np.load with allow_pickle": re.compile(r"\b(np|numpy)\s*\.\s*load\s*\([^)]*allow_pickle"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "joblib.load": re.compile(r"\bjoblib\s*\.\s*load\s*\("),
}


def python_files() -> list[Path]:
    this = Path(__file__).resolve()
    files = [p for folder in FOLDERS for p in sorted((REPO_ROOT / folder).rglob("*.py"))]
    return [p for p in files if p.resolve() != this and ".venv" not in p.parts]


def test_the_scan_covers_the_code():
    names = {p.relative_to(REPO_ROOT).as_posix() for p in python_files()}
    for expected in ("models/io/checkpoint.py", "models/io/inr_file.py", "transinr_cli/train.py",
                     "bench/speed.py", "tests/conftest.py"):  # fmt: skip
        assert expected in names
    assert "tests/reliability/test_no_pickle.py" not in names


def test_no_pickle_anywhere():
    found = []
    for path in python_files():
        text = path.read_text(encoding="utf-8")
        for what, pattern in FORBIDDEN.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(REPO_ROOT)}:{line}: {what}")
    assert found == [], "\n".join(found)
