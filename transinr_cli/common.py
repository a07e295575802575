"""What the commands share: consoles, error handling, progress bars, option types, paths."""

from __future__ import annotations

import functools
import math
import warnings
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

from models.errors import TransInrError

if TYPE_CHECKING:
    import torch

console = Console(soft_wrap=True)  # result lines never wrap
error_console = Console(stderr=True, soft_wrap=True, highlight=False)

MAX_SIZE = 16384


class Task(str, Enum):
    image = "image"
    nerf = "nerf"


class Category(str, Enum):
    chairs = "chairs"
    cars = "cars"
    lamps = "lamps"


def check_category(name: str) -> str:
    """A category given on the command line: a plain folder name (letters, digits, -, _)."""
    if not (0 < len(name) <= 64 and name.replace("-", "").replace("_", "").isalnum()):
        raise TransInrError(
            f"--category {name!r} is not a folder name; give one like chairs or benchs"
        )
    return name


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
    all = "all"  # images: every image of the data set


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Coordinates(str, Enum):
    grid = "grid"
    continuous = "continuous"


class Schedule(str, Enum):
    constant = "constant"
    cosine = "cosine"


class Method(str, Enum):
    trans_inr = "trans-inr"
    learned_init = "learned-init"
    single_vector = "single-vector"
    ipc = "ipc"
    spatial = "spatial"


class Dtype(str, Enum):
    float32 = "float32"
    float16 = "float16"


DeviceOption = Annotated[Device, typer.Option(help="Where to run: auto picks CUDA when present.")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bars or notes; results still print.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON results.")]


def print_result(line: str) -> None:
    """A result line on stdout: printed under --quiet too (it silences progress, not results),
    on one line (never wrapped; a newline or escape in a file name escaped), and never read as
    rich markup (a path may hold [brackets])."""
    from models.errors import printable

    console.print(printable(line), markup=False, soft_wrap=True)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings from the core (e.g. an animated image) as one `warning:` line on stderr (a
    file name in it cannot break the line or reach the terminal as a control sequence)."""
    from models.errors import printable

    error_console.print(f"warning: {printable(str(message))}", markup=False)


def check_number(
    name: str, value: float | None, low: float, high: float, example: str, above: bool = False
) -> None:
    """A numeric option: finite and in [low, high] (`above`: in (low, high]), or a one-line error
    saying the range and an example. None (the option not given) passes."""
    if value is None:
        return
    inside = math.isfinite(value) and (value > low if above else value >= low) and value <= high
    if not inside:
        start = f"above {low:g}" if above else f"from {low:g}"
        raise TransInrError(
            f"{name} {value:g} is out of range; use a number {start} to {high:g}, e.g. {example}"
        )


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing file unless --overwrite."""
    if path.exists() and not overwrite:
        raise TransInrError(f"{path} already exists; pass --overwrite to replace it")


def print_json_error(message: str, hint: str | None = None) -> None:
    """An error as JSON on stdout, {"error": ..., "hint": ...}: our messages say the problem,
    then after the first '; ' what to do."""
    import json

    problem, _, fix = message.partition("; ")
    print(json.dumps({"error": problem, "hint": hint if hint is not None else fix}))


def handle_errors(command):
    """Turn the core's TransInrError into one line on stderr (with --json: a JSON object on
    stdout) and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", UserWarning)
                warnings.showwarning = show_warning
                return command(*args, **kwargs)
        except (TransInrError, OSError) as error:
            if isinstance(error, OSError):  # a path the OS refused that no check foresaw
                where = f": {error.filename}" if error.filename else ""
                error = TransInrError(f"{error.strerror or error}{where}; check the path")
            if kwargs.get("as_json"):
                print_json_error(str(error))
            else:
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


class LazyTask:
    """A task of a progress bar that appears at its first report: work refused before it
    starts (a bad path, a bad option) draws no bar above its error line."""

    def __init__(self, bar: Progress, description: str, total: float | None = None):
        self.bar, self.description, self.total = bar, description, total
        self.task_id, self.done = None, 0.0

    def update(self, done: float, total: float | None = None) -> None:
        """`done` of `total` (or of the total given at creation)."""
        self.total = total if total is not None else self.total
        self.done = done
        if self.task_id is None:
            self.task_id = self.bar.add_task(self.description, total=self.total)
        self.bar.update(self.task_id, completed=done, total=self.total)

    def advance(self, count: float) -> None:
        self.update(self.done + count)


def load_model(
    model_path: Path | None,
    device: torch.device,
    default_task: str | None = None,
    quiet=False,
    default_name: str | None = None,
):
    """A checkpoint and its model (models.api.load_model); without a path, the bundled default
    of `default_task` (or the bundled `default_name`), named on stderr with its training data."""
    from models.api import load_model as load

    if model_path is None:
        if default_task is None:
            raise typer.BadParameter(
                "give --model: a checkpoint or run folder from `transinr train`"
            )
        from models.io.bundle import default_model

        card = default_model(default_task, default_name)
        model_path = card.path
        if not quiet:
            trained_on = card.training.get("data", "see its card")
            error_console.print(
                f"using the bundled {default_task} model {card.name} ({model_path}), trained "
                f"on {trained_on}; --model picks another",
                markup=False,
                highlight=False,
            )
    loaded = load(model_path, device=device)
    return loaded.checkpoint, loaded.network


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
    """Create the output's folder (another process may be creating it at the same moment)."""
    if not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TransInrError(f"cannot create folder {path.parent} ({error.strerror})") from None


def parse_indices(text: str | None, what: str) -> list[int] | None:
    """'0,7' -> [0, 7]; None stays None."""
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise TransInrError(f"{what} '{text}' is not a list of view numbers like 0,7") from None
    if not values or len(set(values)) != len(values):
        raise TransInrError(f"{what} '{text}' must name distinct view numbers, like 0,7")
    return values


def is_views_source(path: Path) -> bool:
    """A learnit object folder (with transforms.json) or a transforms.json file."""
    return (path.is_dir() and (path / "transforms.json").is_file()) or path.suffix == ".json"


OverwriteOption = Annotated[bool, typer.Option(help="Replace output files that already exist.")]
MaxPixelsOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=1 << 40,
        help="Refuse images (and views) with more pixels (default 100,000,000); also raises "
        "the memory budget of decoding one.",
        show_default=False,
    ),
]
FollowLinksOption = Annotated[
    bool,
    typer.Option(
        help="Views: read images, transforms.json and objects through symlinks that lead out of "
        "the object folder or the data root (refused by default)."
    ),
]
DtypeOption = Annotated[Dtype, typer.Option(help="Weights in the file.")]
InrFileArgument = Annotated[Path, typer.Argument(help="An .inr file.")]
