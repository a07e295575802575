"""The paper's experiments at small scale (Tables 1-4, the speed comparison, Fig. 7), on data we
have: ../shared/data/celeba-89 and synthetic chairs. Every number comes from a `transinr`
command that this script runs and writes down, so anyone can rerun a single cell.

    python bench/experiments.py                       # everything, about 2 hours on 2 cores
    python bench/experiments.py --only table1,speed   # sections: table1 table2 views speed
                                                      #           attention plot
    python bench/experiments.py --quick               # tiny models, seconds per run (smoke)

Sections
  table1     Trans-INR vs Learned Init vs the single-vector hypernetwork on celeba-89, each
             trained for the same wall-time budget (`train --minutes`), scored on the test split.
  table2     weight groups G = 1, 4, 16, 64 at the same budget (Trans-INR, celeba-89).
  views      synthetic chairs, 1 and 2 support views, without and with 100 test-time steps,
             Trans-INR vs Learned Init (Tables 3 and 4).
  speed      encode (one forward pass) vs Learned Init's inner steps vs fitting from scratch
             until the encode PSNR is matched: seconds per image and the "times faster" figure.
  attention  `transinr attention` of the table1 Trans-INR model on the bundled astronaut photo.
  plot       validation PSNR against training steps for every run above (one PNG).

Results go to OUT (default experiments/): results.md (the tables, budgets and commands),
results.json, psnr_vs_steps.png, attention.png; runs under OUT/runs (not committed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CELEBA = ROOT.parent / "shared" / "data" / "celeba-89"
ASTRONAUT = ROOT / "assets" / "examples" / "astronaut.jpg"


class FitReached(Exception):
    """Stops a fit once it matches the encode PSNR."""


class Runner:
    """Runs transinr commands, records each with its JSON output."""

    def __init__(self, out: Path, quick: bool):
        self.out, self.quick = out, quick
        self.commands: list[dict] = []
        self.transinr = str(Path(sys.executable).with_name("transinr"))

    def __call__(self, *args: str) -> dict:
        argv = [str(arg) for arg in args]
        shown = "transinr " + shlex.join(argv)
        shown = shown.replace(f"{ROOT.parent}/shared/", "../shared/").replace(f"{ROOT}/", "")
        print(f"+ {shown}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        completed = subprocess.run(
            [self.transinr, *argv], cwd=ROOT, capture_output=True, text=True, check=False
        )
        if completed.returncode != 0 or not completed.stdout.strip():
            raise SystemExit(f"failed ({completed.returncode}): {shown}\n{completed.stderr}")
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        self.commands.append({"command": shown, "seconds": round(time.perf_counter() - started, 1)})
        return result


def image_data(quick: bool) -> list[str]:
    if quick:
        return ["--dataset", "folder", "--data", str(ROOT / "assets" / "examples" / "photos")]
    if not CELEBA.is_dir():
        raise SystemExit(f"{CELEBA} is missing: the image tables need ../shared/data/celeba-89")
    return ["--dataset", "celeba", "--data", str(CELEBA)]


def train_image(run: Runner, name: str, minutes: float, *extra: str) -> dict:
    preset = "tiny" if run.quick else "celeba89"
    out = run.out / "runs" / name
    summary = run(
        "train", *image_data(run.quick), "--preset", preset, "--minutes", minutes,
        "--precision", "bf16", "--val-every", 20 if run.quick else 200,
        "--val-images", 8 if run.quick else 100, "--out", out, "--overwrite",
        "--quiet", "--json", *extra,
    )  # fmt: skip
    limit = 4 if run.quick else 200
    scores = run(
        "eval", *image_data(run.quick), "--model", out, "--limit", limit, "--quiet", "--json"
    )
    return {"run": str(out), "steps": summary["steps"], "train_seconds": summary["seconds"],
            "psnr": scores["psnr"], "images": scores["images"]}  # fmt: skip


def table1(run: Runner, minutes: float) -> dict:
    rows = {}
    for method in ("trans-inr", "learned-init", "single-vector"):
        rows[method] = train_image(run, f"t1-{method}", minutes, "--method", method)
    return rows


def table2(run: Runner, minutes: float) -> dict:
    groups = (1, 4, 8) if run.quick else (1, 4, 16, 64)
    return {f"G={g}": train_image(run, f"t2-g{g}", minutes, "--groups", g) for g in groups}


def views(run: Runner, minutes: float) -> dict:
    rows = {}
    data = run.out / "runs" / "chairs-data"
    objects = 12 if run.quick else 200
    if not (data / "chair_splits.json").is_file():
        run("data", "synth", "--category", "chairs", "--objects", objects, "--out", data,
            "--quiet", "--json")  # fmt: skip
    for method in ("trans-inr", "learned-init"):
        for support in (1, 2):
            name = f"views-{method}-{support}"
            out = run.out / "runs" / name
            summary = run(
                "train", "--task", "nerf", "--data", data, "--category", "chairs", "--preset",
                "tiny", "--method", method, "--support-views", support, "--minutes", minutes,
                "--val-every", 20 if run.quick else 250, "--out", out, "--overwrite",
                "--quiet", "--json",
            )  # fmt: skip
            scores = run(
                "eval", "--task", "nerf", "--model", out, "--data", data, "--category",
                "chairs", "--support-views", support, "--refine-steps", 5 if run.quick else 100,
                "--refine-lr", "1e-3", "--limit", 2 if run.quick else 20, "--quiet", "--json",
            )  # fmt: skip
            rows[name] = {"method": method, "support_views": support, "steps": summary["steps"],
                          "psnr": scores["psnr"], "psnr_refined": scores["psnr_refined"],
                          "objects": scores["objects"], "run": str(out)}  # fmt: skip
    return rows


def speed(run: Runner, images: int) -> dict:
    """Seconds per image to reach a PSNR: encode vs Learned Init vs fitting from scratch."""
    import torch

    from models.checkpoint import load_checkpoint
    from models.data import ImageDataset
    from models.fitting import fit_image
    from models.refinement import observed_psnr

    runs = [run.out / "runs" / f"t1-{method}" for method in ("trans-inr", "learned-init")]
    if not all((path / "best.safetensors").is_file() for path in runs):
        raise SystemExit("the speed section uses table1's models: run --only table1 first")
    trans_inr, learned = (load_checkpoint(path / "best.safetensors") for path in runs)
    size = trans_inr.config.image_size
    if run.quick:
        dataset = ImageDataset("folder", ROOT / "assets" / "examples" / "photos", "test", size)
    else:
        dataset = ImageDataset("celeba", CELEBA, "test", size, images)
    torch.set_num_threads(os.cpu_count() or 1)
    rows = {"encode": [], "learned-init": [], "fit": []}
    for index in range(min(images, len(dataset))):
        image = dataset[index][None]
        for name, checkpoint in (("encode", trans_inr), ("learned-init", learned)):
            model = checkpoint.build_model().eval()
            model(image)  # warm-up
            started = time.perf_counter()
            with torch.inference_mode():
                weights = model(image)
            seconds = time.perf_counter() - started
            psnr = observed_psnr(weights, checkpoint.config.inr, image).item()
            rows[name].append({"seconds": seconds, "psnr": psnr})
        target = rows["encode"][-1]["psnr"]
        limit = 200 if run.quick else 5000
        reached: dict = {}

        def on_step(step: int, mse: float, target=target, reached=reached) -> None:
            psnr = -10 * math.log10(max(mse, 1e-12))
            if psnr >= target:
                # `mse` is the loss before update `step` (1-based): step - 1 updates reached it
                reached.update(step=step - 1, psnr=psnr)
                raise FitReached

        started = time.perf_counter()
        try:
            _, final = fit_image(image[0], trans_inr.config.inr, limit, 1e-3, "cpu", on_step)
            reached.update(step=limit, psnr=final)
        except FitReached:
            pass
        seconds = time.perf_counter() - started
        matched = reached["psnr"] >= target
        rows["fit"].append(
            {
                "seconds": seconds,
                "psnr": reached["psnr"],
                "steps": reached["step"],
                "matched": matched,
            }
        )

    def mean(name: str, key: str) -> float:
        return sum(row[key] for row in rows[name]) / len(rows[name])

    summary = {
        name: {"seconds": mean(name, "seconds"), "psnr": mean(name, "psnr")} for name in rows
    }
    summary["fit"]["steps"] = mean("fit", "steps")
    summary["fit"]["matched"] = sum(row["matched"] for row in rows["fit"])
    summary["images"] = len(rows["fit"])
    summary["fit_over_encode"] = summary["fit"]["seconds"] / summary["encode"]["seconds"]
    return summary


def attention(run: Runner) -> dict:
    return run(
        "attention", ASTRONAUT, "--model", run.out / "runs" / "t1-trans-inr",
        "-o", run.out / "attention.png", "--overwrite", "--quiet", "--json",
    )  # fmt: skip


def plot(out: Path) -> list[str]:
    """Validation PSNR vs steps of every run under OUT/runs, one line each, as a PNG."""
    from PIL import Image, ImageDraw

    from models.checkpoint import load_checkpoint

    curves = {}
    for run_dir in sorted((out / "runs").glob("*")):
        last = run_dir / "last.safetensors"
        if last.is_file():
            history = load_checkpoint(last).train_state.get("history", [])
            points = [(entry["step"], entry["val_psnr"]) for entry in history]
            if points:
                curves[run_dir.name] = points
    width, height, margin = 900, 560, 60
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if not curves:
        canvas.save(out / "psnr_vs_steps.png")
        return []
    steps = [s for points in curves.values() for s, _ in points]
    values = [v for points in curves.values() for _, v in points]
    low, high, last_step = min(values) - 0.5, max(values) + 0.5, max(steps)
    plot_width = width - margin - 230

    def xy(step: float, value: float) -> tuple[float, float]:
        return (margin + step / last_step * plot_width,
                height - margin - (value - low) / (high - low) * (height - 2 * margin))  # fmt: skip

    draw.rectangle([margin, margin, margin + plot_width, height - margin], outline="black")
    for tick in range(int(low) + 1, int(high) + 1):
        y = xy(0, tick)[1]
        draw.line([margin - 4, y, margin, y], fill="black")
        draw.text((margin - 30, y - 6), f"{tick}", fill="black")
    for fraction in (0, 0.25, 0.5, 0.75, 1.0):
        x = xy(fraction * last_step, low)[0]
        draw.text((x - 10, height - margin + 6), f"{int(fraction * last_step)}", fill="black")
    draw.text((margin + plot_width / 2 - 40, height - 25), "training steps", fill="black")
    draw.text((10, 20), "validation PSNR (dB)", fill="black")
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aa0000"]  # fmt: skip
    for index, (name, points) in enumerate(curves.items()):
        colour = palette[index % len(palette)]
        draw.line([xy(s, v) for s, v in points], fill=colour, width=2)
        y = margin + 18 * index
        draw.line([width - 220, y + 6, width - 200, y + 6], fill=colour, width=3)
        draw.text((width - 195, y), name, fill="black")
    canvas.save(out / "psnr_vs_steps.png")
    return sorted(curves)


def markdown(results: dict, budgets: dict, commands: dict[str, list[dict]]) -> str:
    lines = ["# Experiments at small scale", ""]
    lines.append(f"Budgets: {json.dumps(budgets)}. Hardware: {os.cpu_count()} CPU cores.")
    if "table1" in results:
        lines += ["", "## Table 1 shape: image regression, celeba-89 test (same wall time)", "",
                  "| method | steps | PSNR (dB) | images |", "|---|---|---|---|"]  # fmt: skip
        for name, row in results["table1"].items():
            lines.append(f"| {name} | {row['steps']} | {row['psnr']:.2f} | {row['images']} |")
    if "table2" in results:
        lines += ["", "## Table 2 shape: weight groups (same wall time)", "",
                  "| G | steps | PSNR (dB) |", "|---|---|---|"]  # fmt: skip
        for name, row in results["table2"].items():
            lines.append(f"| {name[2:]} | {row['steps']} | {row['psnr']:.2f} |")
    if "views" in results:
        lines += ["", "## Tables 3 and 4 shape: synthetic chairs (same wall time)", "",
                  "| method | support views | steps | w/o T. | w/ T. (100 steps) | objects |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for row in results["views"].values():
            lines.append(
                f"| {row['method']} | {row['support_views']} | {row['steps']} | "
                f"{row['psnr']:.2f} | {row['psnr_refined']:.2f} | {row['objects']} |"
            )
    if "speed" in results:
        speed_rows = results["speed"]
        lines += ["", f"## Speed: one image (mean over {speed_rows['images']} test images)", "",
                  "| method | seconds | PSNR (dB) |", "|---|---|---|"]  # fmt: skip
        for name in ("encode", "learned-init", "fit"):
            row = speed_rows[name]
            lines.append(f"| {name} | {row['seconds']:.4f} | {row['psnr']:.2f} |")
        lines.append("")
        lines.append(
            f"Fitting from scratch needed {speed_rows['fit']['steps']:.0f} Adam steps on average "
            f"(matched on {speed_rows['fit']['matched']} of {speed_rows['images']}): "
            f"{speed_rows['fit_over_encode']:.0f} times the encode time."
        )
    lines += ["", "## Commands", ""]
    for section, section_commands in commands.items():
        lines += [f"- {section}: `{c['command']}` ({c['seconds']} s)" for c in section_commands]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "experiments")
    parser.add_argument("--only", default="table1,table2,views,speed,attention,plot")
    parser.add_argument("--quick", action="store_true", help="tiny models and budgets")
    parser.add_argument("--image-minutes", type=float, default=None, help="per image run")
    parser.add_argument("--nerf-minutes", type=float, default=None, help="per NeRF run")
    parser.add_argument("--speed-images", type=int, default=None)
    args = parser.parse_args()
    sections = args.only.split(",")
    budgets = {
        "image_minutes": args.image_minutes or (0.05 if args.quick else 10.0),
        "nerf_minutes": args.nerf_minutes or (0.05 if args.quick else 5.0),
        "speed_images": args.speed_images or (2 if args.quick else 10),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    run = Runner(args.out, args.quick)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    steps = {
        "table1": lambda: table1(run, budgets["image_minutes"]),
        "table2": lambda: table2(run, budgets["image_minutes"]),
        "views": lambda: views(run, budgets["nerf_minutes"]),
        "speed": lambda: speed(run, budgets["speed_images"]),
        "attention": lambda: attention(run),
        "plot": lambda: plot(args.out),
    }
    for section in sections:
        if section not in steps:
            raise SystemExit(f"unknown section {section!r}; choose from {', '.join(steps)}")
        results[section] = steps[section]()
        results.setdefault("budgets", {}).update(budgets)
        results.setdefault("commands", {})[section] = run.commands  # this run's, per section
        run.commands = []
        results_path.write_text(json.dumps(results, indent=1) + "\n")
        (args.out / "results.md").write_text(
            markdown(results, results["budgets"], results["commands"])
        )
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
