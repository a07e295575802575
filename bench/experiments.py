"""The paper's experiments at small scale (Tables 1-4, the speed comparison, Fig. 7), on data we
have: ../shared/data/celeba-89 and synthetic chairs. Every number comes from the Python API
(models/api.py), called in this process; each call is written down as the `transinr` command
that does the same, with its time, so anyone can rerun a single cell from a shell.

    python bench/experiments.py                       # everything, about 90 minutes on 2 cores
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
  attention  the attention maps (`transinr attention`) of the table1 Trans-INR model, and of
             the bundled image model, on the bundled astronaut photo.
  plot       validation PSNR against training steps and seconds for every run above (one PNG).
  long       (not in the default list) table1's Trans-INR and single-vector rows again at a
             longer budget (`--long-minutes`, default 20): about 41 minutes more.

Results go to OUT (default experiments/): results.md (the tables, budgets and commands),
results.json, psnr_vs_steps.png, attention.png, attention-bundled.png; runs under OUT/runs
(not committed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models import api  # noqa: E402
from models.errors import TransInrError  # noqa: E402

CELEBA = ROOT.parent / "shared" / "data" / "celeba-89"
ASTRONAUT = ROOT / "assets" / "examples" / "astronaut.jpg"
BUNDLED_IMAGE_MODEL = ROOT / "assets" / "models" / "image-celeba89-transinr.safetensors"
T = TypeVar("T")


SECTION_BUDGETS = {"table1": ("image_minutes",), "table2": ("image_minutes",),
                   "long": ("long_minutes",), "views": ("nerf_minutes",),
                   "speed": ("speed_images",)}  # fmt: skip


class FitReached(Exception):
    """Stops a fit once it matches the encode PSNR."""


def command_line(argv: Sequence[object]) -> str:
    """The `transinr` command line of `argv`, with paths shown as from the project root."""
    shown = "transinr " + shlex.join(str(arg) for arg in argv)
    return shown.replace(f"{ROOT.parent}/shared/", "../shared/").replace(f"{ROOT}/", "")


class Runner:
    """Runs the experiments' API calls, recording each as the equivalent `transinr` command
    line (computed from the same arguments) with its time."""

    def __init__(self, out: Path, quick: bool):
        self.out, self.quick = out, quick
        self.commands: list[dict] = []

    def __call__(self, argv: Sequence[object], call: Callable[[], T]) -> T:
        shown = command_line(argv)
        print(f"+ {shown}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            result = call()
        except TransInrError as error:
            raise SystemExit(f"failed: {shown}\n{error}") from None
        self.commands.append({"command": shown, "seconds": round(time.perf_counter() - started, 1)})
        return result


def image_data(quick: bool) -> tuple[str, Path]:
    """The image data set: its layout and folder."""
    if quick:
        return "folder", ROOT / "assets" / "examples" / "photos"
    if not CELEBA.is_dir():
        raise SystemExit(f"{CELEBA} is missing: the image tables need ../shared/data/celeba-89")
    return "celeba", CELEBA


def new_run(task: str, preset: str, method: str | None, groups: int | None, **recipe) -> tuple:
    """The model and recipe `transinr train` makes of these options (its checkpoint interval
    of 10 minutes included), seed 0."""
    from models.tasks import train_setup

    recipe = {"checkpoint_minutes": 10.0, **recipe}
    model_options = {"groups": groups}
    return train_setup.new_run(task, preset, method or "trans-inr", model_options, recipe, 0)


def train_image(
    run: Runner, name: str, minutes: float, method: str | None = None, groups: int | None = None
) -> dict:
    """Train an image model for `minutes` (`--method`, `--groups` when given), then score it on
    the test split."""
    preset = "tiny" if run.quick else "celeba89"
    out = run.out / "runs" / name
    dataset, data = image_data(run.quick)
    val_every, val_images = (20, 8) if run.quick else (200, 100)
    config, train_config = new_run(
        "image", preset, method, groups, budget_minutes=minutes, precision="bf16",
        val_every=val_every, val_images=val_images, dataset=dataset, data=str(data),
    )  # fmt: skip
    chosen = {"--method": method, "--groups": groups}
    extra = [part for key, value in chosen.items() if value is not None for part in (key, value)]
    summary = run(
        ["train", "--dataset", dataset, "--data", data, "--preset", preset, "--minutes", minutes,
         "--precision", "bf16", "--val-every", val_every, "--val-images", val_images, "--out",
         out, "--overwrite", "--quiet", "--json", *extra],
        lambda: api.train(out, config, train_config, overwrite=True),
    )  # fmt: skip
    limit = 4 if run.quick else 200
    scores = run(
        ["eval", "--dataset", dataset, "--data", data, "--model", out, "--limit", limit,
         "--quiet", "--json"],
        lambda: api.evaluate(api.load_model(out), data, dataset=dataset, limit=limit),
    )  # fmt: skip
    return {"run": str(out), "steps": summary.steps, "train_seconds": summary.seconds,
            "psnr": scores.psnr, "images": scores.images}  # fmt: skip


def table1(run: Runner, minutes: float) -> dict:
    rows = {}
    for method in ("trans-inr", "learned-init", "single-vector"):
        rows[method] = train_image(run, f"t1-{method}", minutes, method=method)
    return rows


def longer(run: Runner, minutes: float) -> dict:
    """Table 1's Trans-INR and single-vector rows again at a longer budget: where the single
    vector's cheaper step stops paying for its bottleneck."""
    return {
        method: train_image(run, f"long-{method}", minutes, method=method)
        for method in ("trans-inr", "single-vector")
    }


def table2(run: Runner, minutes: float, table1_rows: dict | None) -> dict:
    """The preset's own G (table 1's Trans-INR run, same budget) joins the list unretrained."""
    groups = (1, 4, 8) if run.quick else (1, 4, 16, 64)
    rows = {f"G={g}": train_image(run, f"t2-g{g}", minutes, groups=g) for g in groups}
    if table1_rows and "trans-inr" in table1_rows:
        from models.io.checkpoint import load_checkpoint

        run_dir = ROOT / table1_rows["trans-inr"]["run"]  # relative to the project once written
        preset_groups = load_checkpoint(run_dir / "best.safetensors").config.groups
        rows.setdefault(f"G={preset_groups}", table1_rows["trans-inr"])
    return dict(sorted(rows.items(), key=lambda item: int(item[0][2:])))


def views(run: Runner, minutes: float) -> dict:
    """Synthetic chairs (generated once under OUT/runs), each method with 1 and 2 views."""
    from models.data.synth import write_dataset

    data = run.out / "runs" / "chairs-data"
    objects = 12 if run.quick else 200
    if not (data / "chair_splits.json").is_file():
        run(["data", "synth", "--category", "chairs", "--objects", objects, "--out", data,
             "--quiet", "--json"],
            lambda: write_dataset(data, "chairs", objects, seed=0, extent=1.0))  # fmt: skip
    return {
        f"views-{method}-{support}": view_row(run, data, method, support, minutes)
        for method in ("trans-inr", "learned-init")
        for support in (1, 2)
    }


def view_row(run: Runner, data: Path, method: str, support: int, minutes: float) -> dict:
    """Train a tiny NeRF model with `support` views for `minutes`; score it on the test
    objects in one pass and after test-time steps."""
    out = run.out / "runs" / f"views-{method}-{support}"
    val_every = 20 if run.quick else 250
    config, train_config = new_run(
        "nerf", "tiny", method, None, budget_minutes=minutes, support_views=support,
        val_every=val_every, precision="auto", data=str(data), category="chairs",
    )  # fmt: skip
    summary = run(
        ["train", "--task", "nerf", "--data", data, "--category", "chairs", "--preset", "tiny",
         "--method", method, "--support-views", support, "--minutes", minutes, "--val-every",
         val_every, "--out", out, "--overwrite", "--quiet", "--json"],
        lambda: api.train(out, config, train_config, overwrite=True),
    )  # fmt: skip
    steps, limit = (5, 2) if run.quick else (100, 20)
    scores = run(
        ["eval", "--task", "nerf", "--model", out, "--data", data, "--category", "chairs",
         "--support-views", support, "--refine-steps", steps, "--refine-lr", "1e-3", "--limit",
         limit, "--quiet", "--json"],
        lambda: api.evaluate(
            api.load_model(out), data, category="chairs", support_views=support,
            refine_steps=steps, refine_lr=1e-3, limit=limit,
        ),
    )  # fmt: skip
    return {"method": method, "support_views": support, "steps": summary.steps,
            "psnr": scores.psnr, "psnr_refined": scores.psnr_refined,
            "objects": scores.objects, "run": str(out)}  # fmt: skip


def fit_until(image, inr_config, target: float, limit: int) -> dict:
    """Fit a random INR with Adam (lr 1e-3) until its PSNR reaches `target` or `limit` steps."""
    from models.tasks.fitting import fit_image

    reached: dict = {}

    def on_step(step: int, mse: float) -> None:
        psnr = -10 * math.log10(max(mse, 1e-12))
        if psnr >= target:
            # `mse` is the loss before update `step` (1-based): step - 1 updates reached it
            reached.update(step=step - 1, psnr=psnr)
            raise FitReached

    started = time.perf_counter()
    try:
        _, final = fit_image(image[0], inr_config, limit, 1e-3, "cpu", on_step)
        reached.update(step=limit, psnr=final)
    except FitReached:
        pass
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "psnr": reached["psnr"], "steps": reached["step"],
            "matched": reached["psnr"] >= target}  # fmt: skip


def speed(run: Runner, images: int) -> dict:
    """Seconds per image to reach a PSNR: encode vs Learned Init vs fitting from scratch until
    it matches the encode PSNR; for table1's models and, where it ships, the bundled model."""
    import torch

    from models.data.image_data import ImageDataset
    from models.io.checkpoint import load_checkpoint
    from models.tasks.refinement import observed_psnr

    runs = [run.out / "runs" / f"t1-{method}" for method in ("trans-inr", "learned-init")]
    if not all((path / "best.safetensors").is_file() for path in runs):
        raise SystemExit("the speed section uses table1's models: run --only table1 first")
    trans_inr, learned = (load_checkpoint(path / "best.safetensors") for path in runs)
    encoders = {"encode": trans_inr, "learned-init": learned}
    if BUNDLED_IMAGE_MODEL.is_file() and not run.quick:
        encoders["encode-bundled"] = load_checkpoint(BUNDLED_IMAGE_MODEL)
    size = trans_inr.config.image_size
    if run.quick:
        dataset = ImageDataset("folder", ROOT / "assets" / "examples" / "photos", "test", size)
    else:
        dataset = ImageDataset("celeba", CELEBA, "test", size, images)
    torch.set_num_threads(os.cpu_count() or 1)
    models = {name: checkpoint.build_model().eval() for name, checkpoint in encoders.items()}
    fits = {"encode": "fit", "encode-bundled": "fit-bundled"}  # encoder -> its fit's row
    fits = {name: fit for name, fit in fits.items() if name in encoders}
    rows: dict[str, list[dict]] = {name: [] for name in [*encoders, *fits.values()]}
    limit = 200 if run.quick else 5000
    for index in range(min(images, len(dataset))):
        image = dataset[index][None]
        for name, model in models.items():
            model(image)  # warm-up
            started = time.perf_counter()
            with torch.inference_mode():
                weights = model(image)
            seconds = time.perf_counter() - started
            psnr = observed_psnr(weights, encoders[name].config.inr, image).item()
            rows[name].append({"seconds": seconds, "psnr": psnr})
        for name, fit in fits.items():
            target = rows[name][-1]["psnr"]
            rows[fit].append(fit_until(image, encoders[name].config.inr, target, limit))

    def mean(name: str, key: str) -> float:
        return sum(row[key] for row in rows[name]) / len(rows[name])

    summary: dict = {
        name: {"seconds": mean(name, "seconds"), "psnr": mean(name, "psnr")} for name in rows
    }
    for name, fit in fits.items():
        summary[fit]["steps"] = mean(fit, "steps")
        summary[fit]["matched"] = sum(row["matched"] for row in rows[fit])
        summary[f"{fit}_over_{name}"] = summary[fit]["seconds"] / summary[name]["seconds"]
    summary["images"] = len(rows["fit"])
    return summary


def attention(run: Runner) -> dict:
    """Fig. 7 from table1's Trans-INR model and, where it ships, the longer-trained bundled one."""
    models = {"attention.png": run.out / "runs" / "t1-trans-inr"}
    if BUNDLED_IMAGE_MODEL.is_file() and not run.quick:
        models["attention-bundled.png"] = BUNDLED_IMAGE_MODEL
    return {name: attention_figure(run, model, run.out / name) for name, model in models.items()}


def attention_figure(run: Runner, model: Path, target: Path) -> dict:
    """The attention maps of `model` on the astronaut, written to `target` (a PNG)."""
    from models.io.images import encode_png
    from models.io.safetensors_io import atomic_write

    def draw() -> dict:
        figure, chosen = api.attention_map(api.load_model(model), ASTRONAUT)
        atomic_write(target, encode_png(figure))
        return {"output": str(target), "layers": len(chosen), "tokens": chosen}

    options = ("--overwrite", "--quiet", "--json")
    return run(["attention", ASTRONAUT, "--model", model, "-o", target, *options], draw)


def plot(out: Path) -> dict[str, list[tuple[float, float, float]]]:
    """Validation PSNR of every run under OUT/runs against training steps (left) and training
    seconds (right), one colour per run, as one PNG. A run validated once shows as a dot."""
    from PIL import Image, ImageDraw

    from models.io.checkpoint import load_checkpoint

    curves: dict[str, list[tuple[float, float, float]]] = {}  # name -> [(step, seconds, psnr)]
    for run_dir in sorted((out / "runs").glob("*")):
        last = run_dir / "last.safetensors"
        if last.is_file():
            history = load_checkpoint(last).train_state.get("history", [])
            points = [(e["step"], e.get("seconds", 0.0), e["val_psnr"]) for e in history]
            if points:
                curves[run_dir.name] = points
    panel, height, margin, legend = 420, 560, 60, 190
    width = 2 * (panel + margin) + margin + legend
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if not curves:
        canvas.save(out / "psnr_vs_steps.png")
        return {}
    values = [v for points in curves.values() for *_, v in points]
    low, high = min(values) - 0.5, max(values) + 0.5
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aa0000", "#ffcc00", "#0000ff",
               "#ff00ff", "#999900"]  # fmt: skip
    pixels_per_db = (height - 2 * margin) / (high - low)
    for axis, label in ((0, "training steps"), (1, "training seconds")):
        left = margin + axis * (panel + margin)
        last_x = max(point[axis] for points in curves.values() for point in points) or 1.0

        def xy(x: float, value: float, left=left, last_x=last_x) -> tuple[float, float]:
            return left + x / last_x * panel, height - margin - (value - low) * pixels_per_db

        draw.rectangle([left, margin, left + panel, height - margin], outline="black")
        for tick in range(int(low) + 1, int(high) + 1):
            y = xy(0, tick)[1]
            draw.line([left - 4, y, left, y], fill="black")
            draw.text((left - 22, y - 6), f"{tick}", fill="black")
        for fraction in (0, 0.25, 0.5, 0.75, 1.0):
            x = xy(fraction * last_x, low)[0]
            draw.text(
                (x - 10, height - margin + 6),
                f"{fraction * last_x:.{0 if last_x >= 20 else 1}f}",
                fill="black",
            )
        draw.text((left + panel / 2 - 40, height - 25), label, fill="black")
        for index, points in enumerate(curves.values()):
            colour = palette[index % len(palette)]
            line = [xy(point[axis], point[2]) for point in points]
            if len(line) > 1:
                draw.line(line, fill=colour, width=2)
            for x, y in line:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    draw.text((10, 20), "validation PSNR (dB)", fill="black")
    for index, name in enumerate(curves):
        y = margin + 18 * index
        colour = palette[index % len(palette)]
        draw.line([width - legend, y + 6, width - legend + 20, y + 6], fill=colour, width=3)
        draw.text((width - legend + 25, y), name, fill="black")
    canvas.save(out / "psnr_vs_steps.png")
    return curves


def markdown(results: dict, budgets: dict, commands: dict[str, list[dict]]) -> str:
    lines = ["# Experiments at small scale", ""]
    lines.append(f"Budgets: {json.dumps(budgets)}. Hardware: {os.cpu_count()} CPU cores.")
    if "table1" in results:
        lines += ["", "## Table 1 shape: image regression, celeba-89 test (same wall time)", "",
                  "| method | steps | PSNR (dB) | images |", "|---|---|---|---|"]  # fmt: skip
        for name, row in results["table1"].items():
            lines.append(f"| {name} | {row['steps']} | {row['psnr']:.2f} | {row['images']} |")
    if "long" in results:
        minutes = budgets.get("long_minutes")
        lines += ["", f"## Table 1 shape, longer budget ({minutes} minutes each)", "",
                  "| method | steps | PSNR (dB) | images |", "|---|---|---|---|"]  # fmt: skip
        for name, row in results["long"].items():
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
        names = [name for name in speed_rows if isinstance(speed_rows[name], dict)]
        for name in names:
            row = speed_rows[name]
            lines.append(f"| {name} | {row['seconds']:.4f} | {row['psnr']:.2f} |")
        for fit in (name for name in names if name.startswith("fit")):
            encoder = "encode" if fit == "fit" else f"encode-{fit.removeprefix('fit-')}"
            row = speed_rows[fit]
            ratio = row["seconds"] / speed_rows[encoder]["seconds"]
            lines += ["", f"`{fit}`: fitting from scratch needed {row['steps']:.0f} Adam steps on "
                      f"average to match `{encoder}` (matched on {row['matched']} of "
                      f"{speed_rows['images']}): {ratio:.0f} times the encode time."]  # fmt: skip
    if results.get("plot"):
        lines += ["", "## Validation curves (`psnr_vs_steps.png`)", "",
                  "| run | step: val PSNR (dB) @ training seconds |", "|---|---|"]  # fmt: skip
        for name, points in results["plot"].items():
            cells = ", ".join(
                f"{step}: {psnr:.2f} @ {seconds:.0f} s" for step, seconds, psnr in points
            )
            lines.append(f"| {name} | {cells} |")
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
    parser.add_argument("--long-minutes", type=float, default=None, help="per run of `long`")
    args = parser.parse_args()
    sections = args.only.split(",")
    budgets = {
        "image_minutes": args.image_minutes or (0.05 if args.quick else 8.0),
        "nerf_minutes": args.nerf_minutes or (0.05 if args.quick else 5.0),
        "speed_images": args.speed_images or (2 if args.quick else 10),
        "long_minutes": args.long_minutes or (0.1 if args.quick else 20.0),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    run = Runner(args.out, args.quick)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    steps = {
        "table1": lambda: table1(run, budgets["image_minutes"]),
        "long": lambda: longer(run, budgets["long_minutes"]),
        "table2": lambda: table2(run, budgets["image_minutes"], results.get("table1")),
        "views": lambda: views(run, budgets["nerf_minutes"]),
        "speed": lambda: speed(run, budgets["speed_images"]),
        "attention": lambda: attention(run),
        "plot": lambda: plot(args.out),
    }
    for section in sections:
        if section not in steps:
            raise SystemExit(f"unknown section {section!r}; choose from {', '.join(steps)}")
        results[section] = steps[section]()
        # only the budget this section ran with: the others' stay as their own runs had them
        recorded = results.setdefault("budgets", {})
        recorded.update({key: budgets[key] for key in SECTION_BUDGETS.get(section, ())})
        results.setdefault("commands", {})[section] = run.commands  # this run's, per section
        run.commands = []
        # paths inside the project are written relative to it, as the commands are shown
        results = json.loads(json.dumps(results).replace(f"{ROOT}/", ""))
        results_path.write_text(json.dumps(results, indent=1) + "\n")
        (args.out / "results.md").write_text(
            markdown(results, results["budgets"], results["commands"])
        )
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
