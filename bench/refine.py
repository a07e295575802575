"""Refinement against fitting from scratch, and the sweep that chose refine's defaults (issue 13).

    python bench/refine.py                        # the bundled image model, 8 test faces
    python bench/refine.py --model runs/c89 --images 32 --steps 100

For the first --images faces of the celeba-89 test split, each batch of faces is encoded
(one forward pass) and refined for --steps Adam steps with each setting of the sweep (learning
rate x schedule x betas); and the same faces are fitted from a random initialisation of the
same INR for the same number of steps with the same settings (fit's default is lr 1e-3,
constant).
Prints the PSNR on the 89 px faces of every row, and refine's default against fit's best: the
gap must be >= 3 dB. Single-threaded unless --threads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.quality import BUNDLED, CELEBA, encode, test_faces  # noqa: E402
from models.core.inr import init_weights  # noqa: E402
from models.io.checkpoint import load_checkpoint  # noqa: E402
from models.tasks.fitting import DEFAULT_LR  # noqa: E402
from models.tasks.refinement import (  # noqa: E402
    RefineSettings,
    image_loss,
    observed_psnr,
    refine_report,
)

SWEEP = (  # (lr, schedule, betas): the rates around fit's default, both schedules, one beta2
    (3e-4, "constant", (0.9, 0.999)),
    (1e-3, "constant", (0.9, 0.999)),
    (3e-3, "constant", (0.9, 0.999)),
    (1e-3, "cosine", (0.9, 0.999)),
    (3e-3, "cosine", (0.9, 0.999)),
    (1e-3, "cosine", (0.9, 0.99)),
)


def run(weights, inr, faces, steps: int, settings: RefineSettings) -> tuple[float, float]:
    """Mean PSNR after refinement, and seconds per image."""
    started = time.perf_counter()
    refined = refine_report(weights, image_loss(inr, faces), steps, settings)
    seconds = (time.perf_counter() - started) / len(faces)
    return observed_psnr(refined.weights, inr, faces).mean().item(), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=BUNDLED)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not CELEBA.is_dir():
        sys.exit(f"error: {CELEBA} not found; this benchmark reads the celeba-89 faces there")
    torch.set_num_threads(args.threads)
    model = load_checkpoint(args.model).build_model().eval()
    inr = model.config.inr
    faces = test_faces(args.images, model.config.image_size)
    encoded = [w.clone() for w in encode(model, faces)]
    one_pass = observed_psnr(encoded, inr, faces).mean().item()
    torch.manual_seed(0)
    scratch = init_weights(inr, batch=len(faces))
    rows = []
    for lr, schedule, betas in SWEEP:
        settings = RefineSettings(lr, schedule, betas)
        refined, seconds = run(encoded, inr, faces, args.steps, settings)
        fitted, _ = run(scratch, inr, faces, args.steps, settings)
        rows.append(
            {"lr": lr, "schedule": schedule, "betas": list(betas),
             "refine": refined, "fit": fitted, "seconds_per_image": seconds}
        )  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    default = RefineSettings()
    chosen = next(
        row
        for row in rows
        if (row["lr"], row["schedule"], tuple(row["betas"]))
        == (default.lr, default.schedule, default.betas)
    )
    fit_default = next(
        row["fit"]
        for row in rows
        if (row["lr"], row["schedule"], tuple(row["betas"]))
        == (DEFAULT_LR["relu"], "constant", (0.9, 0.999))
    )
    best_fit = max(row["fit"] for row in rows)
    summary = {
        "model": str(args.model),
        "images": len(faces),
        "steps": args.steps,
        "one_pass": one_pass,
        "rows": rows,
        "refine_default": chosen["refine"],
        "fit_default": fit_default,
        "fit_best": best_fit,
        "gap_over_best_fit": chosen["refine"] - best_fit,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{len(faces)} celeba-89 test faces, {args.steps} Adam steps; one pass {one_pass:.2f} dB")
    print("| lr | schedule | betas | refine from encode (dB) | fit from scratch (dB) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['lr']:g} | {row['schedule']} | {row['betas'][0]}, {row['betas'][1]} | "
            f"{row['refine']:.2f} | {row['fit']:.2f} |"
        )
    print(
        f"refine's default ({default.lr:g}, {default.schedule}, betas {default.betas}): "
        f"{chosen['refine']:.2f} dB; fit's default (lr {DEFAULT_LR['relu']:g}, constant): "
        f"{fit_default:.2f} dB; fit's best row: {best_fit:.2f} dB; gap over the best fit: "
        f"{chosen['refine'] - best_fit:+.2f} dB ({chosen['seconds_per_image']:.2f} s per image)"
    )


if __name__ == "__main__":
    main()
