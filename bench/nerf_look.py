"""Novel views of held-out objects from NeRF models, side by side, to look at (issue 14).

    python bench/nerf_look.py --model nerf-chairs --model runs/x/best.safetensors \
        --set data/meshes:chairs:test --out experiments/nerf-chairs-views.png

One row per object (the first --objects of the split): its support view (view 0), then, for each
model, the novel views --queries rendered from that one view in one forward pass, then the true
views. Prints the PSNR of each model's renders over all rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.api import load_model  # noqa: E402
from models.core.rendering import psnr  # noqa: E402
from models.data.view_data import ViewDataset  # noqa: E402
from models.nerf.volume_rendering import render_view  # noqa: E402
from models.tasks.objectives import support_input  # noqa: E402

LABEL_HEIGHT = 18


def novel_views(model, images, poses, focal, queries: list[int]) -> torch.Tensor:
    """One forward pass on view 0, then the query views rendered: (Q, 3, H, W)."""
    config = model.checkpoint.config
    support = torch.zeros(1, 1, dtype=torch.long)
    weights = model.network(support_input(config, images[None], poses[None], focal[None], support))
    size = images.shape[-1]
    renders = [
        render_view(weights, config.inr, config.sampling, poses[q][None], size, size, focal.item())
        for q in queries
    ]
    return torch.cat(renders).permute(0, 3, 1, 2)  # (Q, 3, H, W)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="path or bundled name")
    parser.add_argument("--name", action="append", default=[], help="a label per --model")
    parser.add_argument("--set", required=True, help="ROOT:CATEGORY:SPLIT")
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--queries", default="7,19,31,43", help="view indices to render")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    root, category, split = args.set.rsplit(":", 2)
    queries = [int(q) for q in args.queries.split(",")]
    objects = ViewDataset(Path(root), category, split, args.objects, min_views=max(queries) + 1)
    models = [load_model(name, task="nerf", device="cpu") for name in args.model]
    names = args.name + args.model[len(args.name) :]
    rows, scores = [], [[] for _ in models]
    for index in range(len(objects)):
        images, poses, focal = objects[index]
        truth = images[queries]
        row = [images[0]]
        for number, model in enumerate(models):
            renders = novel_views(model, images, poses, focal, queries).clamp(0, 1)
            scores[number].append(psnr(renders, truth))
            row.extend(renders)
        row.extend(truth)
        rows.append(torch.cat(row, dim=2))  # (3, H, W * columns)
    sheet = (torch.cat(rows, dim=1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    size = images.shape[-1]
    picture = Image.new("RGB", (sheet.shape[1], sheet.shape[0] + LABEL_HEIGHT), "white")
    picture.paste(Image.fromarray(sheet), (0, LABEL_HEIGHT))
    draw = ImageDraw.Draw(picture)
    labels = ["support view", *names, "true views"]
    starts = [0, *(size * (1 + len(queries) * n) for n in range(len(models) + 1))]
    for label, start in zip(labels, starts, strict=True):
        draw.text((start + 4, 3), label, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out)
    for name, score in zip(names, scores, strict=True):
        mean = torch.cat(score).mean().item()
        print(f"{name}: {mean:.2f} dB over {len(objects)} objects x {len(queries)} views")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
