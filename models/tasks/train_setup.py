"""What `train` decides before the first step: the model and recipe of a new or resumed run,
and the training and validation sets of its task. The command line only parses and prints.
"""

from __future__ import annotations

from pathlib import Path

from models.core.config import ModelConfig
from models.core.presets import preset_config
from models.errors import TransInrError
from models.io.checkpoint import Checkpoint, load_checkpoint
from models.tasks.training import TrainConfig, recipe

# Options a resumed run takes from its checkpoint: giving them again is an error.
FIXED_ON_RESUME = (
    "--method, --groups, --inner-*, --coordinates, --input-size, --flat-images, --flat-weight and "
)
FIXED_ON_RESUME += "--init-from"


def resumed_run(
    run_dir: Path, preset: str | None, lengths: dict, fixed_given: bool
) -> tuple[Checkpoint, ModelConfig, TrainConfig]:
    """The checkpoint, model and recipe of `run_dir`'s run, continued. `lengths` may change
    steps, epochs, lr and budget_minutes (e.g. a lower lr after divergence): a new length in
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
    return checkpoint, config, recipe(config.preset, config.task, **saved)


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
    return config, train_config


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


def view_sets(
    data: Path, category: str, train_config: TrainConfig, limit: int, reading: dict
) -> tuple:
    """Training objects (views 0-24) and validation objects (the val split, else test) of a
    learnit data root; validation objects need the support views and a query view."""
    from models.data.view_data import ViewDataset, has_split

    train_set = ViewDataset(data, category, "train", limit, **reading)
    val_split = "val" if has_split(data, category, "val") else "test"
    queries = train_config.support_views + 1
    return train_set, ViewDataset(data, category, val_split, min_views=queries, **reading)


def image_sets(dataset: str, data: Path, size: int, limit: int, max_pixels: int | None) -> tuple:
    """The training and validation images of a data set layout."""
    from models.data.image_data import ImageDataset

    train_set = ImageDataset(dataset, data, "train", size, limit, max_pixels)
    return train_set, ImageDataset(dataset, data, "val", size, 0, max_pixels)
