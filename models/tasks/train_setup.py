"""What `train` decides before the first step: the model and recipe of a new or resumed run,
and the training and validation sets of its task. The command line only parses and prints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from models.core.config import ModelConfig
from models.core.presets import preset_config
from models.data.view_augment import AUGMENTATIONS, IMAGE_AUGMENTATIONS, parse_augmentations
from models.errors import TransInrError
from models.io.checkpoint import Checkpoint, load_checkpoint
from models.tasks.training import TrainConfig, recipe

# Options a resumed run takes from its checkpoint: giving them again is an error.
FIXED_ON_RESUME = (
    "--method, --groups, --inner-*, --coordinates, --input-size, --flat-images, --flat-weight, "
)
FIXED_ON_RESUME += "--augment and --init-from"
SYNTHETIC_OBJECTS = 200  # objects of the synthetic set a NeRF run without data trains on


def resumed_run(
    run_dir: Path, preset: str | None, lengths: dict, fixed_given: bool
) -> tuple[Checkpoint, ModelConfig, TrainConfig]:
    """The checkpoint, model and recipe of `run_dir`'s run, continued. `lengths` may change
    steps, epochs, lr, budget_minutes and clip_grad (e.g. a lower lr or clipping after
    divergence): a new length in
    steps replaces a time budget. Architecture and data choices cannot change."""
    last = run_dir / "last.safetensors"
    if not last.is_file():
        raise TransInrError(f"no checkpoint to resume at {last}; start without --resume")
    checkpoint = load_checkpoint(last)
    config = checkpoint.config
    if preset is not None and preset != config.preset:
        raise TransInrError(
            f"checkpoint {last} is preset '{config.preset}', not '{preset}'; "
            f"drop --preset or use --preset {config.preset}"
        )
    if fixed_given:
        raise TransInrError(
            f"{FIXED_ON_RESUME} are fixed by the checkpoint being resumed; drop them"
        )
    saved = dict(checkpoint.train_state.get("train_config", {}))
    saved.update({key: value for key, value in lengths.items() if value is not None})
    if (lengths.get("steps") or lengths.get("epochs")) and lengths.get("budget_minutes") is None:
        saved["budget_minutes"] = 0.0
    train_config = recipe(config.preset, config.task, **saved)
    check_augment(config, train_config.augment)
    return checkpoint, config, train_config


def default_preset(task: str, category: str, dataset: str) -> str:
    """The paper's preset for a task: its category's for NeRF, CelebA's or Imagenette's."""
    if task == "nerf":
        return category
    return "imagenette" if dataset == "imagenette" else "celeba"


def new_run(
    task: str, preset: str, method: str, model_options: dict, recipe_options: dict, seed: int
) -> tuple[ModelConfig, TrainConfig]:
    """The model and recipe of a new run: the preset's, with the given (non-None) options."""
    inner = ("inner_steps", "inner_lr", "first_order")
    if method != "learned-init" and any(model_options.get(name) for name in inner):
        raise TransInrError(
            f"--inner-steps, --inner-lr and --first-order are for --method learned-init, "
            f"not {method}; drop them"
        )
    if method == "learned-init" and model_options.get("groups") is not None:
        raise TransInrError("--groups is for Transformer methods; learned-init has no groups")
    config = preset_config(preset, task, method=method, **model_options)
    train_config = recipe(preset, task, **recipe_options)
    train_config.seed = seed
    check_image_options(config, recipe_options)
    check_nerf_options(config, recipe_options)
    check_augment(config, train_config.augment)
    return config, train_config


def check_nerf_options(config: ModelConfig, recipe_options: dict) -> None:
    """--support-views, --rays-per-object and --foreground-epochs are NeRF options."""
    names = ("support_views", "rays_per_object", "foreground_epochs")
    if config.task != "nerf" and any(recipe_options.get(name) is not None for name in names):
        raise TransInrError(
            "--support-views, --rays-per-object and --foreground-epochs are for --task nerf; "
            "drop them"
        )


def check_augment(config: ModelConfig, augment: str) -> None:
    """--augment names augmentations of the task: flip (images); mirror, colours (NeRF)."""
    allowed = AUGMENTATIONS if config.task == "nerf" else IMAGE_AUGMENTATIONS
    try:
        parse_augmentations(augment, allowed)
    except ValueError:
        example = "mirror,colours" if config.task == "nerf" else "flip"
        raise TransInrError(
            f"--augment {augment!r} is not a list of {', '.join(allowed)} (the --task "
            f"{config.task} augmentations); e.g. --augment {example}"
        ) from None


def check_image_options(config: ModelConfig, recipe_options: dict) -> None:
    """--coordinates, --input-size and --flat-images are image options; the input size fits."""
    names = ("coordinates", "input_size", "flat_images", "flat_weight")
    if config.task != "image" and any(recipe_options.get(name) is not None for name in names):
        raise TransInrError(
            "--coordinates, --input-size, --flat-images and --flat-weight are for --task image; "
            "drop them"
        )
    input_size = recipe_options.get("input_size")
    if input_size is not None and not 1 <= input_size <= config.image_size:
        raise TransInrError(
            f"--input-size {input_size} is out of range; use 1 to the preset's image size "
            f"({config.image_size}) for a learned upscale"
        )


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """A new run never silently replaces another."""
    if not resume and not overwrite and (run_dir / "last.safetensors").exists():
        raise TransInrError(
            f"{run_dir} already holds a run; continue it with --resume, replace it with "
            "--overwrite, or choose another --out"
        )


def clear_run_dir(run_dir: Path) -> None:
    """Remove the checkpoints of the run being replaced (--overwrite), once the new run's data
    has been read."""
    for name in ("last.safetensors", "best.safetensors"):
        (run_dir / name).unlink(missing_ok=True)


@contextlib.contextmanager
def no_leftovers(run_dir: Path, keep: bool) -> Iterator[None]:
    """A new run that fails (bad data in a loader, divergence) before its first checkpoint
    leaves no run folder behind: its config.json goes, and the folder if this run made it."""
    existed = run_dir.exists()
    try:
        yield
    except TransInrError:
        if not keep and not (run_dir / "last.safetensors").exists():
            (run_dir / "config.json").unlink(missing_ok=True)
            if not existed:
                with contextlib.suppress(OSError):
                    run_dir.rmdir()
        raise


def cache_root() -> Path:
    """Where generated data sets are kept: $TRANSINR_CACHE, else ~/.cache/transinr."""
    return Path(os.environ.get("TRANSINR_CACHE") or Path.home() / ".cache" / "transinr")


def synthetic_root(category: str, objects: int = SYNTHETIC_OBJECTS) -> Path:
    """The folder of the cached synthetic set of `objects` objects of `category` (seed 0)."""
    return cache_root() / "synthetic" / f"{category}-{objects}-seed0"


def synthetic_data(
    category: str,
    objects: int = SYNTHETIC_OBJECTS,
    on_object: Callable[[int], None] | None = None,
) -> Path:
    """The synthetic set a NeRF run without data trains on: generated once, then reused."""
    from models.data.synth import write_dataset
    from models.data.view_data import splits_file

    root = synthetic_root(category, objects)
    if not splits_file(root, category).is_file():  # written last: the set is complete
        write_dataset(root, category, objects, seed=0, extent=1.0, on_object=on_object)
    return root


def check_rays(config: ModelConfig, train_config: TrainConfig, device: torch.device) -> None:
    """A NeRF step renders batch x rays-per-object rays through the INR: refuse, before any
    data is read, a step that would not fit the machine's memory (CPU) or the GPU's."""
    from models.nerf.volume_rendering import ray_batch_bytes

    rays = train_config.batch_size * train_config.rays_per_object
    needed = ray_batch_bytes(config.inr, config.samples, rays)
    if device.type == "cuda":
        available = torch.cuda.get_device_properties(device).total_memory
    else:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        raise TransInrError(
            f"--rays-per-object {train_config.rays_per_object} with --batch-size "
            f"{train_config.batch_size} would take {needed / 1e9:.1f} GB a step, more than the "
            f"{available / 1e9:.1f} GB of this {device.type}; lower --rays-per-object or "
            "--batch-size"
        )


def nerf_sets(
    config: ModelConfig, train_config: TrainConfig, data: Path | None, category: str,
    device: torch.device, limit: int = 0, reading: dict | None = None,
    synthetic: Callable[[str], Path] | None = None,
) -> tuple:  # fmt: skip
    """The training and validation objects of a NeRF run, after checking its support views and
    its step's memory: `data` (a learnit root; the recipe's category, else `category`), else the
    set `synthetic(category)` gives (default: synthetic_data's, generated once and cached).
    Records both in `train_config`."""
    if train_config.support_views > config.max_views:
        raise TransInrError(
            f"--support-views {train_config.support_views} is more than preset "
            f"'{config.preset}' allows ({config.max_views})"
        )
    check_rays(config, train_config, device)
    category = train_config.category or category
    if data is None:
        data = (synthetic or synthetic_data)(category)
    train_config.category, train_config.data = category, str(data)
    return view_sets(Path(data), category, train_config, limit, reading or {})


def view_sets(
    data: Path, category: str, train_config: TrainConfig, limit: int, reading: dict
) -> tuple:
    """Training objects (views 0-24) and validation objects (the val split, else test) of a
    learnit data root; validation objects need the support views and a query view."""
    from models.data.view_data import VIEW_CACHE_BYTES, ViewDataset, has_split

    train_set = ViewDataset(data, category, "train", limit, cache_bytes=VIEW_CACHE_BYTES, **reading)
    val_split = "val" if has_split(data, category, "val") else "test"
    queries = train_config.support_views + 1
    return train_set, ViewDataset(data, category, val_split, min_views=queries, **reading)


def image_sets(
    dataset: str, data: Path, size: int, limit: int, max_pixels: int | None, augment: str = ""
) -> tuple:
    """The training (mirrored at random with --augment flip) and validation images of a data
    set."""
    from models.data.image_data import ImageDataset

    flip = "flip" in parse_augmentations(augment, IMAGE_AUGMENTATIONS)
    train_set = ImageDataset(dataset, data, "train", size, limit, max_pixels, flip)
    return train_set, ImageDataset(dataset, data, "val", size, 0, max_pixels)
