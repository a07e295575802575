"""Start-up cost of the command line (issue 15): what a user waits for beyond the work itself.

    python bench/startup.py --repeats 5

Each figure is the median wall time of --repeats fresh processes: `python -c "import torch"`
(the floor every torch program pays), `transinr --help`, a usage error (`transinr render` with
no file), `transinr encode` of one photo with the bundled model, and `transinr render` of the
result at 256 px. The goals: --help and usage errors under 0.8 s (they never import torch);
encode at most 0.5 s over `import torch` (plus its forward pass, printed beside it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "assets" / "examples" / "astronaut.jpg"


def wall(argv: list[str], repeats: int, ok_codes: tuple[int, ...] = (0,)) -> float:
    """Median seconds of `repeats` fresh runs of argv."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        completed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        if completed.returncode not in ok_codes:
            raise SystemExit(f"{' '.join(argv)} exited {completed.returncode}: {completed.stderr}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    transinr = str(Path(sys.executable).with_name("transinr"))
    with tempfile.TemporaryDirectory() as folder:
        inr, png = Path(folder) / "a.inr", Path(folder) / "a.png"
        encode = [transinr, "encode", str(PHOTO), "-o", str(inr), "--overwrite", "--json"]
        forward = json.loads(subprocess.run(encode, capture_output=True, text=True).stdout)
        rows = {
            "python -c 'import torch'": wall([sys.executable, "-c", "import torch"], args.repeats),
            "transinr --help": wall([transinr, "--help"], args.repeats),
            "transinr render (usage error)": wall([transinr, "render"], args.repeats, (2,)),
            "transinr encode (one photo)": wall(encode, args.repeats),
            "transinr render --size 256": wall(
                [transinr, "render", str(inr), "--size", "256", "-o", str(png), "--overwrite"],
                args.repeats,
            ),
        }
    floor = rows["python -c 'import torch'"]
    print("| command | median wall (s) | over `import torch` (s) |")
    print("|---|---|---|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} | {seconds - floor:+.2f} |")
    print(f"encode's forward pass: {forward['results'][0]['encode_seconds'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
