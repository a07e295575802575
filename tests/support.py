"""Helpers shared by the tests: synthetic images, image folders and tiny training runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.core.presets import preset_config
from models.data.image_data import ImageDataset
from models.tasks.training import TrainConfig, recipe, train

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_COUNT = 40
TINY_STEPS = 4


def synthetic_image(seed: int, height: int = 36, width: int = 40) -> np.ndarray:
    """A smooth colour gradient plus a little noise: (H, W, 3) uint8, different per seed."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        a, b, c = rng.uniform(-1, 1, size=3)
        channels.append(0.5 + 0.35 * np.sin(a * ys / 6 + b * xs / 6 + c * 3))
    picture = np.stack(channels, axis=-1) + rng.normal(0, 0.03, (height, width, 3))
    return (np.clip(picture, 0, 1) * 255).round().astype(np.uint8)


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_image_folder(root: Path, count: int = IMAGE_COUNT) -> Path:
    """`count` small RGB PNGs (36x40) named img00.png ..., a folder data set."""
    for index in range(count):
        write_png(root / f"img{index:02d}.png", synthetic_image(index))
    return root


def tiny_train_config(**overrides) -> TrainConfig:
    """The tiny recipe with explicit steps, no workers, and validation only at the end."""
    values = {
        "steps": TINY_STEPS,
        "batch_size": 8,
        "workers": 0,
        "val_every": 1000,
        "val_images": 8,
    }
    values.update(overrides)
    return recipe("tiny", **values)


def train_tiny(run_dir: Path, data: Path, **overrides) -> Path:
    """Train the tiny preset on the folder `data`; returns the run folder."""
    config = preset_config("tiny")
    train_set = ImageDataset("folder", data, "train", config.image_size)
    val_set = ImageDataset("folder", data, "val", config.image_size)
    train(run_dir, config, tiny_train_config(**overrides), train_set, val_set, torch.device("cpu"))
    return run_dir
