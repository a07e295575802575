"""The named presets: one entry each, holding its model and its default training recipe.

The `celeba` and `imagenette` presets reproduce the paper's image-regression model (Sec. 4.1) to
the parameter (44,462,851), the `chairs`, `cars` and `lamps` presets its view-synthesis model
(Sec. 4.2, 44,463,484), each with the paper's recipe (Adam 1e-4; images: batch 16, CelebA 30
epochs, Imagenette 400; views: batch 32 objects, 1000 epochs, 128 rays per object). The smaller
presets are for CPUs and tests, with faster recipes.

A recipe holds `TrainConfig` fields (models/tasks/training.py), the ones that differ from its
defaults; `recipe(preset, task, **overrides)` there builds the `TrainConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from models.core.config import TASKS, INRConfig, ModelConfig
from models.errors import TransInrError


@dataclass(frozen=True)
class Preset:
    """A named model and how to train it: `TrainConfig` fields that differ from the defaults."""

    model: ModelConfig
    recipe: dict[str, object] = field(default_factory=dict)


def _paper_image(preset: str, **recipe) -> Preset:
    return Preset(ModelConfig(preset=preset), {"batch_size": 16, "lr": 1e-4, **recipe})


NERF_INR = INRConfig(
    coord_dim=3,
    fourier_count=20,
    fourier_max=256.0,
    fourier_pi=False,
    depth=6,
    width=256,
    out_dim=4,
    out_bias=0.0,
)  # 20 frequencies 2^linspace(0, 8, 20) of xyz, sin and cos; density and colour out


def _paper_nerf_model(preset: str) -> ModelConfig:
    """The paper's view-synthesis model (ShapeNet, 128 x 128 views): 44,463,484 parameters."""
    return ModelConfig(
        task="nerf",
        preset=preset,
        image_size=128,
        padding=0,
        patch_size=8,
        channels=9,
        positional_embedding=False,
        max_views=8,
        groups=32,
        inr=dataclasses.replace(NERF_INR),
    )


def _paper_nerf(preset: str, support_views: int = 1) -> Preset:
    recipe = {"epochs": 1000.0, "batch_size": 32, "lr": 1e-4, "support_views": support_views}
    return Preset(_paper_nerf_model(preset), recipe)


IMAGE_PRESETS: dict[str, Preset] = {
    # The paper's image-regression model (CelebA and Imagenette at 178 x 178).
    "celeba": _paper_image("celeba", epochs=30.0),
    "imagenette": _paper_image("imagenette", epochs=400.0),
    # celeba-89: the half-resolution CelebA subset; crop 89, pad 1, patch 9 -> 100 tokens.
    "celeba89": Preset(
        ModelConfig(
            preset="celeba89",
            image_size=89,
            padding=1,
            dim=256,
            depth=4,  # 4 layers matched 6 per step in a 200-step trial, at 70% of the compute
            heads=8,
            head_dim=32,
            ff_dim=1024,
            groups=32,
            inr=INRConfig(fourier_count=64, fourier_max=31.15, depth=5, width=128),
        ),
        {
            "epochs": 30.0,
            "batch_size": 16,
            "lr": 1e-3,
            "warmup_steps": 100,
            "coordinates": "continuous",
            "flat_images": 0.0625,  # one image of 16: plain inputs encode plain (no ghost face)
        },
    ),
    # tiny: tests and quick trials; one training step takes well under a second on a CPU.
    "tiny": Preset(
        ModelConfig(
            preset="tiny",
            image_size=32,
            padding=0,
            patch_size=8,
            dim=64,
            depth=2,
            heads=4,
            head_dim=16,
            ff_dim=128,
            groups=8,
            inr=INRConfig(fourier_count=16, fourier_max=11.2, depth=3, width=32),
        ),
        {
            "epochs": 1.0,
            "batch_size": 16,
            "lr": 3e-3,
            "warmup_steps": 30,
            "coordinates": "continuous",
        },
    ),
}

NERF_PRESETS: dict[str, Preset] = {
    **{name: _paper_nerf(name) for name in ("chairs", "cars", "lamps")},
    # The -2view presets are the same model, trained and evaluated with 2 support views.
    **{f"{name}-2view": _paper_nerf(f"{name}-2view", 2) for name in ("chairs", "cars", "lamps")},
    # small: a CPU model; views are tokenized at 64 x 64 (64 tokens each).
    "small": Preset(
        dataclasses.replace(
            _paper_nerf_model("small"),
            image_size=64,
            samples=64,
            dim=256,
            depth=4,
            heads=8,
            head_dim=32,
            ff_dim=1024,
            groups=16,
            inr=dataclasses.replace(NERF_INR, width=128),
        ),
        {"epochs": 200.0, "batch_size": 8, "lr": 3e-4, "warmup_steps": 100},
    ),
    # tiny: tests and quick trials.
    "tiny": Preset(
        dataclasses.replace(
            _paper_nerf_model("tiny"),
            image_size=32,
            max_views=4,
            samples=32,
            dim=64,
            depth=2,
            heads=4,
            head_dim=16,
            ff_dim=128,
            groups=8,
            inr=dataclasses.replace(NERF_INR, fourier_count=8, depth=4, width=64),
        ),
        {"epochs": 20.0, "batch_size": 4, "lr": 1e-3, "warmup_steps": 20, "val_images": 2},
    ),
}

PRESETS: dict[str, dict[str, Preset]] = {"image": IMAGE_PRESETS, "nerf": NERF_PRESETS}  # by TASKS


def preset_config(name: str, task: str = "image", **overrides) -> ModelConfig:
    """A copy of preset `name`'s model for `task`, with overrides (e.g. groups=16) applied and
    checked."""
    if task not in PRESETS:
        raise TransInrError(f"unknown task '{task}'; choose one of: {', '.join(TASKS)}")
    presets = PRESETS[task]
    if name not in presets:
        raise TransInrError(
            f"unknown preset '{name}' for --task {task}; choose one of: {', '.join(presets)}"
        )
    model = presets[name].model
    config = dataclasses.replace(model, inr=dataclasses.replace(model.inr))
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    if config.method == "ipc" and overrides.get("groups") is None:
        config.groups = config.inr.width  # rank = width, as ginr-ipc's 256 at width 256
    if config.method == "spatial":
        config.inr.shift_grid, config.inr.shift_low, config.inr.shift_high = (
            config.shift_grid_layout()
        )
    return config.validate()


def preset_recipe(name: str, task: str = "image") -> dict[str, object]:
    """A copy of preset `name`'s recipe for `task`; {} for a model of no preset ("custom")."""
    preset = PRESETS.get(task, {}).get(name)
    return dict(preset.recipe) if preset else {}
