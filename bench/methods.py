"""Trans-INR, IPC, spatial and the single vector at equal wall time on celeba-89 (issue 13).

    python bench/methods.py --minutes 20 --marks 8,20
    python bench/methods.py --minutes 0.5 --marks 0.25,0.5 --methods ipc --out /tmp/m  # smoke

Each method trains the `celeba89` preset from scratch for --minutes of training time (bf16,
batch 16, the preset's recipe; lr x0.1 at 80% of the budget), one after another in this process,
validating on 100 val faces every --val-every steps. The table gives, per method, the steps made
and the validation PSNR at each mark (the last validation at or before it: the curve of one run
read at 8 minutes is before its lr drop, so it understates a run budgeted for 8 minutes), and the
one-pass PSNR on the first 200 test faces at the end. The curves (validation PSNR against steps
and against seconds) go to OUT/psnr_vs_steps.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import Subset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from experiments import plot  # noqa: E402
from models.core.presets import preset_config  # noqa: E402
from models.data.image_data import ImageDataset  # noqa: E402
from models.io.checkpoint import load_checkpoint  # noqa: E402
from models.tasks.evaluation import evaluate_images  # noqa: E402
from models.tasks.training import recipe, train  # noqa: E402

CELEBA = ROOT.parent / "shared" / "data" / "celeba-89"


def run_method(method: str, minutes: float, out: Path, val_every: int) -> dict:
    """Train one method from scratch for `minutes`; its curve and test-split one-pass PSNR."""
    config = preset_config("celeba89", method=method)
    train_config = recipe(
        "celeba89",
        budget_minutes=minutes,
        val_every=val_every,
        val_images=100,
        precision="bf16",
        checkpoint_every=10**9,
        workers=1,
        data=str(CELEBA),
    )
    train_set = ImageDataset("celeba", CELEBA, "train", config.image_size)
    val_set = ImageDataset("celeba", CELEBA, "val", config.image_size)
    result = train(out, config, train_config, train_set, val_set, torch.device("cpu"))
    model = load_checkpoint(out / "last.safetensors").build_model()
    test_set = Subset(ImageDataset("celeba", CELEBA, "test", config.image_size), range(200))
    scores = evaluate_images(model, test_set, torch.device("cpu"), workers=0)
    curve = [(e["step"], e.get("seconds", 0.0), e["val_psnr"]) for e in result.history]
    return {"method": method, "steps": result.steps, "test_psnr": scores.psnr, "curve": curve}


def at_mark(curve: list[tuple[float, float, float]], minutes: float) -> tuple[int, float]:
    """(step, val PSNR) of the last validation at or before `minutes` of training time."""
    seen = [(step, psnr) for step, seconds, psnr in curve if seconds <= minutes * 60 * 1.02]
    return (int(seen[-1][0]), seen[-1][1]) if seen else (0, float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--marks", default="8,20")
    parser.add_argument("--methods", default="trans-inr,ipc,spatial,single-vector")
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "methods")
    args = parser.parse_args()
    if not CELEBA.is_dir():
        raise SystemExit(f"{CELEBA} is missing: this benchmark needs ../shared/data/celeba-89")
    marks = [float(mark) for mark in args.marks.split(",")]
    rows = []
    for method in args.methods.split(","):
        row = run_method(method, args.minutes, args.out / "runs" / method, args.val_every)
        rows.append(row)
        print(json.dumps(row), flush=True)
    plot(args.out)
    header = " | ".join(f"step, val dB at {mark:g} min" for mark in marks)
    print(f"| method | {header} | test dB (one pass, 200 faces) |")
    print("|---" * (len(marks) + 2) + "|")
    for row in rows:
        cells = " | ".join("{}, {:.2f}".format(*at_mark(row["curve"], mark)) for mark in marks)
        print(f"| {row['method']} | {cells} | {row['test_psnr']:.2f} |")
    print(f"curves: {args.out / 'psnr_vs_steps.png'}")


if __name__ == "__main__":
    main()
