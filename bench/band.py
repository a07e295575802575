"""Choosing the `celeba89` Fourier band (issue 12): short fine-tuning trials, one per band.

    python bench/band.py --steps 150 --ratios 1.0,0.75,0.5,0.35

Each trial starts from the same checkpoint (default: the bundled image model), sets the INR's
highest frequency to RATIO x the 89 px Nyquist rate (44.5), fine-tunes --steps steps with
continuous coordinates, then reports: validation PSNR on the pixel grid (200 val faces), and the
smoothness figures of bench/quality.py (4x render vs bicubic upsampling of the native render,
99.5th percentile of |difference| in /255; the raw function, no anti-aliasing) on 24 test faces.
Trials run one after another in this process; each writes its run under --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.quality import BUNDLED, CELEBA, section_smooth, test_faces  # noqa: E402
from models.data.image_data import ImageDataset  # noqa: E402
from models.io.checkpoint import load_checkpoint  # noqa: E402
from models.tasks.training import recipe, train  # noqa: E402


def trial(start: Path, ratio: float, steps: int, out: Path, lr: float) -> dict:
    config = load_checkpoint(start).config
    config = dataclasses.replace(config, inr=dataclasses.replace(config.inr))
    config.inr.fourier_max = ratio * config.image_size / 2.0
    train_config = recipe(
        config.preset,
        steps=steps,
        lr=lr,
        warmup_steps=20,
        val_every=steps,
        val_images=200,
        init_from=str(start),
        precision="bf16",
        checkpoint_every=steps,
        data=str(CELEBA),
    )
    train_set = ImageDataset("celeba", CELEBA, "train", config.image_size)
    val_set = ImageDataset("celeba", CELEBA, "val", config.image_size)
    started = time.perf_counter()
    result = train(out, config, train_config, train_set, val_set, torch.device("cpu"))
    model = load_checkpoint(out / "last.safetensors").build_model().eval()
    with torch.inference_mode():
        smooth = section_smooth(model, test_faces(24))
    return {
        "ratio": ratio,
        "fourier_max": config.inr.fourier_max,
        "val_psnr": result.final_val_psnr,
        "p99_5_raw": smooth["p99_5_raw"],
        "p99_5_antialiased": smooth["p99_5_antialiased"],
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=Path, default=BUNDLED)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--ratios", default="1.0,0.75,0.5,0.35")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "band")
    args = parser.parse_args()
    rows = []
    for ratio in (float(r) for r in args.ratios.split(",")):
        row = trial(args.start, ratio, args.steps, args.out / f"ratio-{ratio}", args.lr)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| top frequency / Nyquist | fourier_max | val PSNR (dB) | p99.5 raw | p99.5 AA |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['ratio']} | {row['fourier_max']:.2f} | {row['val_psnr']:.2f} | "
            f"{row['p99_5_raw']:.0f} | {row['p99_5_antialiased']:.0f} |"
        )


if __name__ == "__main__":
    main()
