"""A short real training run on celeba-89 at small size: the meta-learner must beat the
mean-image baseline on held-out validation images by a stated margin."""

from pathlib import Path

import pytest

from models.core.presets import preset_config
from models.data.image_data import ImageDataset
from models.tasks.evaluation import mean_image_psnr
from models.tasks.training import recipe, resolve_device, train

CELEBA_89 = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "celeba-89").resolve()
MARGIN_DB = 2.0  # measured: +3.2 dB after 300 steps (14.98 vs 11.80 dB), see README


@pytest.mark.skipif(not CELEBA_89.is_dir(), reason=f"celeba-89 not found at {CELEBA_89}")
def test_tiny_training_beats_mean_image(tmp_path):
    config = preset_config("tiny")
    train_config = recipe("tiny", steps=300, val_every=300, val_images=200, workers=1)
    train_set = ImageDataset("celeba", CELEBA_89, "train", config.image_size)
    val_set = ImageDataset("celeba", CELEBA_89, "val", config.image_size)
    result = train(tmp_path, config, train_config, train_set, val_set, resolve_device("cpu"))
    baseline = mean_image_psnr(train_set, ImageDataset("celeba", CELEBA_89, "val", 32, limit=200))
    assert result.steps == 300
    assert result.final_val_psnr > baseline + MARGIN_DB, (result.final_val_psnr, baseline)
