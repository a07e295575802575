"""The `transinr` command line. Commands parse arguments, call the core in `models`, and print."""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from models import __version__
from models.errors import TransInrError


class OneLineErrors(TyperGroup):
    """Usage errors as one line on stderr (exit 2), instead of click's multi-line usage panel."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as error:
            if not standalone_mode:
                raise
            where = (
                f" (see `{error.ctx.command_path} --help`)" if getattr(error, "ctx", None) else ""
            )
            error_console.print(f"error: {error.format_message()}{where}", markup=False)
            sys.exit(error.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            error_console.print("aborted", markup=False)
            sys.exit(130)
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code


app = typer.Typer(
    name="transinr",
    cls=OneLineErrors,
    help="Images -> complete INR weights in one Transformer forward pass (Trans-INR).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
error_console = Console(stderr=True, soft_wrap=True, highlight=False)

MAX_SIZE = 16384


class Task(str, Enum):
    image = "image"


class Fit(str, Enum):
    crop = "crop"
    pad = "pad"
    resize = "resize"


class Dataset(str, Enum):
    celeba = "celeba"
    imagenette = "imagenette"
    folder = "folder"


class Split(str, Enum):
    train = "train"
    val = "val"
    test = "test"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Dtype(str, Enum):
    float32 = "float32"
    float16 = "float16"


DeviceOption = Annotated[Device, typer.Option(help="Where to run: auto picks CUDA when present.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON results.")]


def handle_errors(command):
    """Turn the core's TransInrError into one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TransInrError as error:
            error_console.print(f"error: {error}", markup=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            error_console.print("interrupted", markup=False)
            raise typer.Exit(130) from None

    return wrapper


def progress_bar(quiet: bool, *fields: str) -> Progress:
    """A rich progress bar with steps, the given live fields, speed and time left."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(f"{{task.fields[{name}]}}") for name in fields),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    ]
    return Progress(*columns, console=Console(stderr=True), disable=quiet, transient=False)


def load_model(model_path: Path | None, device: torch.device):
    from models.checkpoint import load_checkpoint

    if model_path is None:
        raise typer.BadParameter("give --model: a checkpoint or run folder from `transinr train`")
    checkpoint = load_checkpoint(model_path)
    model = checkpoint.build_model(device).eval()
    return checkpoint, model


def check_size(name: str, value: int | None) -> None:
    if value is not None and not 1 <= value <= MAX_SIZE:
        raise TransInrError(f"{name} {value} is out of range; use 1 to {MAX_SIZE}")


def output_path(out: Path | None, source: Path, suffix: str, several: bool) -> Path:
    """Where one input's result goes: OUT as a file, OUT/<stem><suffix> as a folder, or cwd."""
    if out is None:
        return Path(source.stem + suffix)
    if several or out.is_dir() or out.suffix == "":
        return out / (source.stem + suffix)
    return out


def ensure_parent(path: Path) -> None:
    if not path.parent.exists():
        try:
            path.parent.mkdir(parents=True)
        except OSError as error:
            raise TransInrError(f"cannot create folder {path.parent} ({error.strerror})") from None


@app.command()
@handle_errors
def train(
    task: Annotated[Task, typer.Option(help="What the meta-learner builds INRs of.")] = Task.image,
    dataset: Annotated[Dataset, typer.Option(help="Data set layout of --data.")] = Dataset.celeba,
    data: Annotated[Path | None, typer.Option(help="Data set root folder.")] = None,
    preset: Annotated[
        str | None, typer.Option(help="Model preset: celeba, imagenette, celeba89, tiny.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/PRESET).")] = None,
    epochs: Annotated[
        float | None, typer.Option(help="Epochs (default: the preset's recipe).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Steps; overrides --epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Images per step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    warmup_steps: Annotated[int | None, typer.Option(min=0, help="Linear lr warm-up.")] = None,
    groups: Annotated[int | None, typer.Option(help="Weight groups G per INR layer.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the initialisation and data order.")] = 0,
    val_every: Annotated[int, typer.Option(min=1, help="Validate every N steps.")] = 500,
    val_images: Annotated[int, typer.Option(min=1, help="Validation images.")] = 256,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Write last every N steps.")] = 100,
    limit: Annotated[int, typer.Option(min=0, help="Use only the first N training images.")] = 0,
    workers: Annotated[int, typer.Option(min=0, help="Background data-loading workers.")] = 2,
    precision: Annotated[Precision, typer.Option(help="bf16 autocast or fp32.")] = Precision.auto,
    device: DeviceOption = Device.auto,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its last checkpoint.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Start over, replacing the run already in --out.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Build the model, print its summary, exit.")
    ] = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train a Trans-INR meta-learner on an image data set."""
    from models.checkpoint import load_checkpoint
    from models.config import preset_config
    from models.data import ImageDataset
    from models.metalearner import TransInr, parameter_breakdown
    from models.training import recipe, resolve_device, resolve_precision
    from models.training import train as run_training

    checkpoint = None
    run_dir = out
    if resume:
        if run_dir is None:
            raise typer.BadParameter("--resume needs --out RUN_DIR, the run to continue")
        last = run_dir / "last.safetensors"
        if not last.is_file():
            raise TransInrError(
                f"no checkpoint to resume at {last}; start the run without --resume"
            )
        checkpoint = load_checkpoint(last)
        if preset is not None and preset != checkpoint.config.preset:
            raise TransInrError(
                f"checkpoint {last} is preset '{checkpoint.config.preset}', not '{preset}'; "
                f"drop --preset or use --preset {checkpoint.config.preset}"
            )
        config = checkpoint.config
        saved = checkpoint.train_state.get("train_config", {})
        train_config = recipe(
            config.preset,
            **{
                **saved,
                "steps": steps or saved.get("steps"),
                "epochs": epochs or saved.get("epochs"),
            },
        )
    else:
        preset = preset or ("imagenette" if dataset == Dataset.imagenette else "celeba")
        config = preset_config(preset, groups=groups)
        train_config = recipe(
            preset,
            steps=steps,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            warmup_steps=warmup_steps,
        )
    if dry_run:
        counts = parameter_breakdown(TransInr(config))
        if as_json:
            print(
                json.dumps(
                    {
                        "preset": config.preset,
                        "parameters": counts,
                        "config": json.loads(config.to_json()),
                    }
                )
            )
            return
        table = Table(title=f"Trans-INR preset '{config.preset}'")
        table.add_column("part")
        table.add_column("parameters", justify="right")
        for name, count in counts.items():
            table.add_row(name, f"{count:,}")
        console.print(table)
        console.print(
            f"tokens: {config.data_token_count} data + {sum(config.group_counts())} weight; "
            f"INR layers {config.inr.layer_shapes()}"
        )
        console.print(f"total parameters: {counts['total']:,}")
        return
    if data is None:
        raise typer.BadParameter("give --data, the data set folder (or use --dry-run)")
    torch_device = resolve_device(device.value)
    train_config.precision = resolve_precision(precision.value, torch_device)
    train_config.seed = train_config.seed if resume else seed
    train_config.val_every, train_config.val_images = val_every, val_images
    train_config.checkpoint_every, train_config.workers = checkpoint_every, workers
    train_config.dataset, train_config.data = dataset.value, str(data)
    run_dir = run_dir or Path("runs") / config.preset
    if not resume and not overwrite and (run_dir / "last.safetensors").exists():
        raise TransInrError(
            f"{run_dir} already holds a run; continue it with --resume, replace it with "
            "--overwrite, or choose another --out"
        )
    if overwrite and not resume:
        for name in ("last.safetensors", "best.safetensors"):
            (run_dir / name).unlink(missing_ok=True)
    train_set = ImageDataset(dataset.value, data, "train", config.image_size, limit)
    val_set = ImageDataset(dataset.value, data, "val", config.image_size)

    from models.training import total_steps

    steps_total = total_steps(train_config, len(train_set))
    with progress_bar(quiet, "loss", "psnr", "val", "speed") as bar:
        task_id = bar.add_task(
            "train",
            total=steps_total,
            loss="",
            psnr="",
            val="",
            speed="",
            completed=checkpoint.train_state.get("step", 0) if checkpoint else 0,
        )
        val_text = ""

        def on_progress(progress) -> None:
            nonlocal val_text
            if progress.val_psnr is not None:
                val_text = f"val {progress.val_psnr:.2f} dB"
            bar.update(
                task_id,
                completed=progress.step,
                loss=f"loss {progress.loss:.4f}",
                psnr=f"PSNR {progress.psnr:.2f} dB",
                val=val_text,
                speed=f"{progress.images_per_second:.1f} img/s",
            )

        result = run_training(
            run_dir, config, train_config, train_set, val_set, torch_device, checkpoint, on_progress
        )
    summary = {
        "run_dir": str(run_dir),
        "preset": config.preset,
        "steps": result.steps,
        "val_psnr": result.final_val_psnr,
        "best_val_psnr": result.best_val_psnr,
        "seconds": result.seconds,
        "precision": train_config.precision,
        "device": str(torch_device),
    }
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(
            f"trained {result.steps} steps in {result.seconds:.0f} s; validation PSNR "
            f"{result.final_val_psnr:.2f} dB (best {result.best_val_psnr:.2f}); "
            f"checkpoints in {run_dir}"
        )


@app.command()
@handle_errors
def encode(
    images: Annotated[list[Path], typer.Argument(help="Image files to encode.")],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="OUT.inr, or a folder for several images.")
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Checkpoint or run folder.")] = None,
    fit: Annotated[Fit, typer.Option(help="Fit to the model's square input.")] = Fit.crop,
    dtype: Annotated[Dtype, typer.Option(help="Weights in the file.")] = Dtype.float32,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Encode images into .inr files: one forward pass, no gradient steps."""
    from models.encoding import encode_image_file
    from models.inr_file import save_inr
    from models.training import resolve_device

    torch_device = resolve_device(device.value)
    checkpoint, meta_learner = load_model(model, torch_device)
    several = len(images) > 1
    targets = [output_path(out, image, ".inr", several) for image in images]
    clashes = sorted({str(t) for t in targets if targets.count(t) > 1})
    if clashes:
        raise TransInrError(
            f"several images would be written to {clashes[0]}; give them distinct file names"
        )
    results = []
    for image, target in zip(images, targets, strict=True):
        inr_file, seconds = encode_image_file(
            meta_learner, checkpoint, image, fit.value, torch_device
        )
        ensure_parent(target)
        save_inr(inr_file, target, dtype.value)
        psnr = inr_file.info["encode_psnr"]
        results.append(
            {"image": str(image), "inr": str(target), "encode_seconds": seconds, "psnr": psnr}
        )
        if not as_json and not quiet:
            console.print(
                f"{image} -> {target}  encode {seconds * 1000:.0f} ms  PSNR {psnr:.2f} dB"
            )
    if as_json:
        print(json.dumps({"model": checkpoint.model_id, "results": results}))


def render_size(
    inr_info: dict, size: int | None, width: int | None, height: int | None
) -> tuple[int, int]:
    """Output (width, height): --size sets the longer side at the native aspect."""
    native_w = int(inr_info.get("native_width", 256))
    native_h = int(inr_info.get("native_height", 256))
    for name, value in (("--size", size), ("--width", width), ("--height", height)):
        check_size(name, value)
    if width and height:
        return width, height
    if width:
        return width, max(1, round(width * native_h / native_w))
    if height:
        return max(1, round(height * native_w / native_h)), height
    longer = size or max(native_w, native_h)
    if native_w >= native_h:
        return longer, max(1, round(longer * native_h / native_w))
    return max(1, round(longer * native_w / native_h)), longer


@app.command()
@handle_errors
def render(
    inr: Annotated[Path, typer.Argument(help="An .inr file.")],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Output image (.png, .jpg, ...).")
    ] = None,
    size: Annotated[int | None, typer.Option(help="Longer side in pixels, native aspect.")] = None,
    width: Annotated[int | None, typer.Option(help="Output width.")] = None,
    height: Annotated[int | None, typer.Option(help="Output height.")] = None,
    bit_depth: Annotated[int, typer.Option(help="8 or 16 bits per channel (16: PNG only).")] = 8,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Render an .inr file at any resolution."""
    import time

    from models.images import encode_png
    from models.inr_file import atomic_write, load_inr
    from models.rendering import render_quantized
    from models.training import resolve_device

    if bit_depth not in (8, 16):
        raise TransInrError(f"--bit-depth {bit_depth} is not supported; use 8 or 16")
    target = out or Path(inr.stem + ".png")
    suffix = target.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
        raise TransInrError(f"cannot write '{target.suffix}' images; name the output .png or .jpg")
    if bit_depth == 16 and suffix != ".png":
        raise TransInrError("16-bit output needs a .png file name")
    inr_file = load_inr(inr)
    if inr_file.task != "image":
        raise TransInrError(
            f"{inr} is a {inr_file.task} INR; `transinr render` here draws image INRs"
        )
    out_w, out_h = render_size(inr_file.info, size, width, height)
    check_size("the output width", out_w)
    check_size("the output height", out_h)
    torch_device = resolve_device(device.value)
    box = tuple(inr_file.info.get("content_box", (-1.0, -1.0, 1.0, 1.0)))
    started = time.perf_counter()
    with progress_bar(quiet) as bar:
        task_id = bar.add_task("render", total=out_h)
        array = render_quantized(
            inr_file.batched(torch_device),
            inr_file.inr,
            out_h,
            out_w,
            box,
            bit_depth,
            on_rows=lambda rows: bar.advance(task_id, rows),
        )
    seconds = time.perf_counter() - started
    ensure_parent(target)
    if suffix == ".png":
        data = encode_png(array)
    else:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(array).save(
            buffer, format="JPEG" if suffix in (".jpg", ".jpeg") else suffix[1:].upper()
        )
        data = buffer.getvalue()
    atomic_write(target, data)
    if as_json:
        print(
            json.dumps({"output": str(target), "width": out_w, "height": out_h, "seconds": seconds})
        )
    elif not quiet:
        console.print(f"{inr} -> {target}  {out_w}x{out_h}  {seconds:.2f} s")


@app.command()
@handle_errors
def refine(
    inr: Annotated[Path, typer.Argument(help="The .inr file to refine.")],
    image: Annotated[Path, typer.Option(help="The observed image (the one it was encoded from).")],
    steps: Annotated[int, typer.Option(min=1, help="Adam steps.")] = 100,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Output .inr (default NAME.refined.inr).")
    ] = None,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Test-time optimisation of all INR weights on the observed pixels."""
    from models.images import content_mask, fit_image, load_image
    from models.inr_file import InrFile, load_inr, save_inr
    from models.refinement import image_loss, observed_psnr
    from models.refinement import refine as refine_weights
    from models.training import resolve_device

    inr_file = load_inr(inr)
    if inr_file.task != "image":
        raise TransInrError(f"{inr} is a {inr_file.task} INR; --image refines image INRs")
    torch_device = resolve_device(device.value)
    size = int(inr_file.info.get("input_size", 0)) or max(
        int(inr_file.info.get("native_width", 0)), int(inr_file.info.get("native_height", 0))
    )
    fit_mode = inr_file.info.get("fit", {}).get("mode", "crop")
    fitted, fit_info = fit_image(load_image(image), size, fit_mode)
    observed = fitted[None].to(torch_device)
    mask = content_mask(size, fit_info.content_box)
    weights = inr_file.batched(torch_device)
    before = observed_psnr(weights, inr_file.inr, observed, mask).item()
    with progress_bar(quiet, "loss") as bar:
        task_id = bar.add_task("refine", total=steps, loss="")
        tuned = refine_weights(
            weights,
            image_loss(inr_file.inr, observed, mask),
            steps,
            lr,
            on_step=lambda step, loss: bar.update(task_id, completed=step, loss=f"loss {loss:.5f}"),
        )
    after = observed_psnr(tuned, inr_file.inr, observed, mask).item()
    target = out or inr.with_name(inr.stem + ".refined.inr")
    info = {
        **inr_file.info,
        "refine_steps": steps,
        "refine_lr": lr,
        "refined_psnr": round(after, 4),
    }
    dtype = "float16" if inr_file.weights[0].dtype == torch.float16 else "float32"
    ensure_parent(target)
    save_inr(InrFile([w[0].cpu() for w in tuned], inr_file.inr, "image", info), target, dtype)
    if as_json:
        print(
            json.dumps(
                {"output": str(target), "psnr_before": before, "psnr_after": after, "steps": steps}
            )
        )
    else:
        console.print(f"PSNR {before:.2f} dB -> {after:.2f} dB after {steps} steps; wrote {target}")


@app.command("eval")
@handle_errors
def evaluate(
    model: Annotated[Path | None, typer.Option(help="Checkpoint or run folder.")] = None,
    dataset: Annotated[Dataset, typer.Option(help="Data set layout of --data.")] = Dataset.celeba,
    data: Annotated[Path | None, typer.Option(help="Data set root folder.")] = None,
    split: Annotated[Split, typer.Option(help="Which split to score.")] = Split.test,
    refine_steps: Annotated[
        int, typer.Option(min=0, help="Also score after K refinement steps.")
    ] = 0,
    refine_lr: Annotated[float, typer.Option(help="Refinement learning rate.")] = 1e-4,
    limit: Annotated[int, typer.Option(min=0, help="Score only the first N images.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    workers: Annotated[int, typer.Option(min=0)] = 2,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """PSNR of a meta-learner on a split, as the paper defines it."""
    from models.data import ImageDataset
    from models.evaluation import evaluate_images
    from models.training import resolve_device

    if data is None:
        raise typer.BadParameter("give --data, the data set folder")
    torch_device = resolve_device(device.value)
    checkpoint, meta_learner = load_model(model, torch_device)
    if checkpoint.config.task != "image":
        raise TransInrError(
            f"model {checkpoint.model_id} is a {checkpoint.config.task} model; use --task"
        )
    images = ImageDataset(dataset.value, data, split.value, checkpoint.config.image_size, limit)
    with progress_bar(quiet) as bar:
        task_id = bar.add_task("eval", total=len(images))
        result = evaluate_images(
            meta_learner,
            images,
            torch_device,
            batch_size,
            refine_steps,
            refine_lr,
            workers,
            on_batch=lambda count: bar.advance(task_id, count),
        )
    summary = {
        "model": checkpoint.model_id,
        "dataset": dataset.value,
        "split": split.value,
        "images": result.images,
        "psnr": result.psnr,
        "psnr_refined": result.psnr_refined,
        "refine_steps": result.refine_steps,
    }
    if as_json:
        print(json.dumps(summary))
        return
    table = Table(
        title=f"{checkpoint.model_id} on {dataset.value} {split.value} ({result.images} images)"
    )
    table.add_column("method")
    table.add_column("PSNR (dB)", justify="right")
    table.add_row("Trans-INR (one forward pass)", f"{result.psnr:.2f}")
    if result.psnr_refined is not None:
        table.add_row(f"+ {refine_steps} refinement steps", f"{result.psnr_refined:.2f}")
    console.print(table)


@app.command()
@handle_errors
def info(
    path: Annotated[Path, typer.Argument(help="An .inr file or a model checkpoint.")],
    as_json: JsonOption = False,
) -> None:
    """Print an .inr file's (or checkpoint's) metadata and parameter count."""
    from models.checkpoint import FORMAT_NAME as CHECKPOINT_FORMAT
    from models.inr_file import load_inr, peek_format

    if not (path.is_dir() or peek_format(path) == CHECKPOINT_FORMAT):
        inr_file = load_inr(path)
        details = {
            "file": str(path),
            "format": "transinr.inr",
            "task": inr_file.task,
            "parameters": inr_file.parameter_count(),
            "dtype": str(inr_file.weights[0].dtype).replace("torch.", ""),
            "inr": inr_file.inr.__dict__,
            **inr_file.info,
        }
    else:
        from models.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(path)
        details = {
            "file": str(path),
            "format": "transinr.checkpoint",
            "model_id": checkpoint.model_id,
            "preset": checkpoint.config.preset,
            "parameters": sum(t.numel() for t in checkpoint.model_state.values()),
            "step": checkpoint.train_state.get("step"),
            "best_val_psnr": checkpoint.train_state.get("best_val_psnr"),
            "config": json.loads(checkpoint.config.to_json()),
        }
    if as_json:
        print(json.dumps(details))
        return
    table = Table(show_header=False, title=str(path))
    for key, value in details.items():
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        table.add_row(key, text)
    console.print(table)


@app.callback(invoke_without_command=True)
def version_callback(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"transinr {__version__}")
        raise typer.Exit()


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
