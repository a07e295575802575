"""Checkpoints: a meta-learner's weights, its optimizer and training state, in one safetensors file.

Tensors: `model.*` (the state dict), `optimizer.*` (Adam moments and steps), `rng.torch`;
metadata: format tag and version, the model config JSON and the training state JSON.
Written atomically (temporary file, fsync, rename); read with the header checked first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors

from models.core.config import ModelConfig
from models.core.metalearner import TransInr, build_meta_learner
from models.errors import TransInrError
from models.io.safetensors_io import (
    MAX_FILE_BYTES,
    atomic_write,
    parse_json,
    read_safetensors_header,
    safetensors_bytes,
)

FORMAT_NAME = "transinr.checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """What a checkpoint file holds, unpacked."""

    config: ModelConfig
    model_state: dict[str, torch.Tensor]
    train_state: dict = field(default_factory=dict)
    optimizer_state: dict | None = None
    rng_state: torch.Tensor | None = None
    model_id: str = ""

    def build_model(self, device: torch.device | str = "cpu") -> TransInr:
        model = build_meta_learner(self.config)
        model.load_state_dict({k: v.float() for k, v in self.model_state.items()})
        return model.to(device)


def _optimizer_tensors(state: dict) -> tuple[dict[str, torch.Tensor], list]:
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().cpu()
    return tensors, state["param_groups"]


def checkpoint_bytes(
    model: TransInr,
    config: ModelConfig,
    train_state: dict,
    optimizer: torch.optim.Optimizer | None = None,
    dtype: torch.dtype = torch.float32,
) -> bytes:
    tensors = {
        f"model.{k}": v.detach().to("cpu", dtype).contiguous()
        for k, v in model.state_dict().items()
    }
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "config": config.to_json(),
        "train_state": json.dumps(train_state),
    }
    if optimizer is not None:
        optimizer_tensors, param_groups = _optimizer_tensors(optimizer.state_dict())
        tensors.update(optimizer_tensors)
        metadata["param_groups"] = json.dumps(param_groups)
    tensors["rng.torch"] = torch.get_rng_state()
    return safetensors_bytes(tensors, metadata)


def save_checkpoint(
    path: Path,
    model: TransInr,
    config: ModelConfig,
    train_state: dict,
    optimizer: torch.optim.Optimizer | None = None,
    dtype: torch.dtype = torch.float32,
) -> None:
    atomic_write(Path(path), checkpoint_bytes(model, config, train_state, optimizer, dtype))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint; any problem is a one-line TransInrError."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            if (path / name).is_file():
                path = path / name
                break
    if not path.is_file():
        raise TransInrError(
            f"model checkpoint not found: {path}; give a .safetensors file or run dir"
        )
    if path.stat().st_size > 4 * MAX_FILE_BYTES:
        raise TransInrError(f"{path} is larger than any checkpoint we write; is it the right file?")
    data = path.read_bytes()
    header = read_safetensors_header(data, str(path))
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        is_inr = isinstance(metadata, dict) and metadata.get("format") == "transinr.inr"
        kind = "an .inr file" if is_inr else "not a checkpoint"
        raise TransInrError(
            f"{path} is {kind}, not a transinr model checkpoint; give --model a checkpoint "
            "written by `transinr train`"
        )
    try:
        version = int(metadata["format_version"])
        config = ModelConfig.from_dict(parse_json(metadata["config"]))
        train_state = parse_json(metadata.get("train_state", "{}"))
        param_groups = parse_json(metadata["param_groups"]) if "param_groups" in metadata else None
        if not isinstance(train_state, dict):
            raise ValueError("train_state is not an object")
        if param_groups is not None and not (
            isinstance(param_groups, list)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in param_groups)
        ):
            raise ValueError("param_groups is not a list of groups")
    except (KeyError, ValueError, TypeError, OverflowError):
        raise TransInrError(f"{path} has unreadable checkpoint metadata; is it corrupt?") from None
    if version > FORMAT_VERSION:
        raise TransInrError(
            f"{path} is checkpoint version {version}, newer than this transinr reads; upgrade"
        )
    with torch.device("meta"):  # shapes only: a hostile config must not allocate anything
        expected = {k: list(v.shape) for k, v in build_meta_learner(config).state_dict().items()}
    found = {
        k[len("model.") :]: v.get("shape") for k, v in header.items() if k.startswith("model.")
    }
    if found != expected:
        missing = sorted(set(expected) - set(found))[:3]
        bad = [k for k in expected if k in found and found[k] != expected[k]][:3]
        raise TransInrError(
            f"{path} does not match its model config (missing {missing}, wrong shape {bad}); "
            "the checkpoint is corrupt or from another version"
        )
    try:
        tensors = load_safetensors(data)
    except Exception as error:  # safetensors raises its own error types
        raise TransInrError(f"cannot read tensors from {path} ({error}); is it corrupt?") from None
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    if not all(torch.isfinite(v).all() for v in model_state.values()):
        raise TransInrError(f"{path} holds non-finite weights; use an earlier checkpoint")
    optimizer_state = None
    if param_groups is not None:
        state: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                if not index.isdigit():
                    raise TransInrError(f"{path} has a malformed optimizer tensor {key!r}")
                state.setdefault(int(index), {})[name] = value
        optimizer_state = {"state": state, "param_groups": param_groups}
    model_id = f"{config.preset}-{hashlib.sha256(data).hexdigest()[:12]}"
    return Checkpoint(
        config=config,
        model_state=model_state,
        train_state=train_state,
        optimizer_state=optimizer_state,
        rng_state=tensors.get("rng.torch"),
        model_id=model_id,
    )
