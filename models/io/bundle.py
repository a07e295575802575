"""Bundled default models: slim float16 checkpoints in assets/models, each with a JSON model card.

`transinr encode` without `--model` uses the default of the input's task; `transinr models` lists
them. A card records how the model was trained and evaluated (commands included) and its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from models.core.metalearner import TransInr
from models.errors import TransInrError
from models.io.checkpoint import checkpoint_bytes, load_checkpoint
from models.io.safetensors_io import atomic_write, parse_json

MAX_BUNDLED_BYTES = 25 * 1024 * 1024
DEFAULT_MODELS = {"image": "image-celeba89", "nerf": "nerf-chairs"}
# `transinr attention` maps weight tokens: the bundled Trans-INR face model (spatial has none).
ATTENTION_MODEL = "image-celeba89-transinr"


def bundled_dir() -> Path:
    """assets/models of this checkout, or $TRANSINR_MODELS_DIR."""
    override = os.environ.get("TRANSINR_MODELS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "assets" / "models"


@dataclass
class ModelCard:
    """What a bundled model is, how it was trained and evaluated, and how to reproduce both."""

    name: str
    task: str
    file: str  # beside the card
    sha256: str
    preset: str
    parameters: int
    dtype: str = "float16"
    training: dict = field(default_factory=dict)  # data, steps, wall_seconds, hardware, command
    evaluation: dict = field(default_factory=dict)  # command, psnr, refine_psnr, ...
    example: dict = field(default_factory=dict)  # input, command, psnr (what encode prints)
    curve: list = field(default_factory=list)  # [{"step": s, "val_psnr": p}, ...]

    @property
    def path(self) -> Path:
        return bundled_dir() / self.file

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        try:
            data = parse_json(path.read_text())
            return cls(**data)
        except (OSError, TypeError, ValueError) as error:
            raise TransInrError(
                f"cannot read model card {path} ({error}); is it corrupt?"
            ) from None


def bundled_cards() -> list[ModelCard]:
    """The cards in assets/models, by name."""
    folder = bundled_dir()
    if not folder.is_dir():
        return []
    return [ModelCard.read(path) for path in sorted(folder.glob("*.json"))]


def default_model(task: str, name: str | None = None) -> ModelCard:
    """The bundled default of a task (or the bundled model `name`); a one-line error when it is
    missing or was altered."""
    name = name or DEFAULT_MODELS[task]
    card_path = bundled_dir() / f"{name}.json"
    if not card_path.is_file():
        raise TransInrError(
            f"no bundled {task} model at {card_path}: this install has no assets/ "
            "(use `pip install -e .` in a clone, set TRANSINR_MODELS_DIR) or give --model"
        )
    card = ModelCard.read(card_path)
    if not card.path.is_file():
        raise TransInrError(
            f"bundled model file {card.path} is missing (a clone without Git LFS?); give --model"
        )
    return card


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parameter_count(config_model: TransInr) -> int:
    return sum(p.numel() for p in config_model.parameters() if p.requires_grad)


def export_model(source: Path, target: Path, dtype: torch.dtype = torch.float16) -> dict:
    """A slim copy of a checkpoint: the weights in `dtype`, no optimizer, training state kept
    (steps, seconds, history). Returns what a model card needs: sha256, preset, parameters."""
    checkpoint = load_checkpoint(source)
    model = checkpoint.build_model("cpu")
    data = checkpoint_bytes(model, checkpoint.config, checkpoint.train_state, None, dtype)
    if len(data) > MAX_BUNDLED_BYTES:
        raise TransInrError(
            f"the exported model is {len(data) / 2**20:.1f} MiB, over the 25 MiB bundle limit; "
            "use a smaller preset"
        )
    atomic_write(target, data)
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "preset": checkpoint.config.preset,
        "task": checkpoint.config.task,
        "parameters": parameter_count(model),
        "bytes": len(data),
        "train_state": checkpoint.train_state,
    }
