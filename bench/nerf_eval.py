"""View synthesis as the paper's Tables 3 and 4 (issue 14): NeRF models on learnit folders.

    python bench/nerf_eval.py --model nerf-chairs --model runs/nerf-real/best.safetensors \
        --set chairs-meshes=/tmp/meshdata:chairs:test \
        --set benchs=../shared/data/shapenet-real:benchs:test

For each model and each set (NAME=ROOT:CATEGORY:SPLIT), with 1 and 2 support views
(--views): PSNR of full query renders from --pairs random support/query pairs per object (the
seed fixed, so every model sees the same pairs), in one forward pass and after --refine-steps
test-time steps at --refine-lr on the support views; and the all-white image's PSNR on the same
objects. Prints a markdown table; --json prints the rows.
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

from models.api import load_model  # noqa: E402
from models.data.view_data import ViewDataset  # noqa: E402
from models.tasks.evaluation import evaluate_views, white_image_psnr  # noqa: E402


def parse_set(text: str) -> tuple[str, Path, str, str]:
    """NAME=ROOT:CATEGORY:SPLIT -> its parts."""
    name, _, rest = text.partition("=")
    root, category, split = rest.rsplit(":", 2)
    return name, Path(root), category, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="path or bundled name")
    parser.add_argument("--set", action="append", required=True, help="NAME=ROOT:CATEGORY:SPLIT")
    parser.add_argument("--views", default="1,2")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--refine-steps", type=int, default=100)
    parser.add_argument("--refine-lr", type=float, default=1e-3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for model_name in args.model:
        model = load_model(model_name, task="nerf", device="cpu")
        for set_text in args.set:
            name, root, category, split = parse_set(set_text)
            for views in (int(v) for v in args.views.split(",")):
                if views > model.checkpoint.config.max_views:
                    continue
                objects = ViewDataset(root, category, split, args.limit, min_views=views + 1)
                start = time.perf_counter()
                result = evaluate_views(
                    model.network, objects, model.device, views, args.pairs,
                    args.refine_steps, args.refine_lr, seed=0,
                )  # fmt: skip
                rows.append(
                    {
                        "model": model_name,
                        "set": name,
                        "objects": len(objects),
                        "pairs": result.images,
                        "support_views": views,
                        "psnr": round(result.psnr, 2),
                        "psnr_refined": round(result.psnr_refined, 2)
                        if result.psnr_refined is not None
                        else None,
                        "all_white": round(white_image_psnr(objects, len(objects)), 2),
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows))
        return
    steps = args.refine_steps
    header = f"| model | set | objects (pairs) | support views | one pass | +{steps} steps |"
    print(header + " all white |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        refined = "-" if row["psnr_refined"] is None else f"{row['psnr_refined']:.2f}"
        print(
            f"| {row['model']} | {row['set']} | {row['objects']} ({row['pairs']}) | "
            f"{row['support_views']} | {row['psnr']:.2f} | {refined} | {row['all_white']:.2f} |"
        )


if __name__ == "__main__":
    main()
