"""Device choice for every command: `--device auto|cpu|cuda`; nothing assumes CUDA."""

from __future__ import annotations

import torch

from models.errors import TransInrError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is a user error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TransInrError(
            "--device cuda was given but no CUDA GPU is available; use --device cpu"
        )
    if name not in ("cpu", "cuda"):
        raise TransInrError(f"unknown --device '{name}'; choose auto, cpu or cuda")
    return torch.device(name)
