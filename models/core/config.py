"""Model configurations as dataclasses, written as JSON and read back checked.

The named presets (a model and its training recipe each) are in models/core/presets.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field

from models.errors import TransInrError


def typed_fields(cls: type, data: object, what: str) -> dict:
    """Check a JSON object against a dataclass's field types (int, float, bool, str)."""
    if not isinstance(data, dict):
        raise TransInrError(f"{what} is not a JSON object; the file is corrupt")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise TransInrError(
            f"{what} has unknown fields {unknown}; it was written by a newer transinr: upgrade"
        )
    for name, value in data.items():
        expected = hints[name]
        if expected is float:
            valid = isinstance(value, int | float) and not isinstance(value, bool)
            valid = valid and math.isfinite(value)
        elif expected in (int, bool, str):
            valid = isinstance(value, expected) and (
                expected is bool or not isinstance(value, bool)
            )
        else:
            continue
        if not valid:
            raise TransInrError(f"{what}: '{name}' is {value!r}, not a {expected.__name__}")
    return data


@dataclass
class INRConfig:
    """An MLP over Fourier features of coordinates: `depth` linear layers, ReLU between them.

    `activation` "sine" is a SIREN (sin(30 (x W + b)) between layers, models/core/inr.py);
    `fourier_count` 0 (sine only) feeds the raw coordinates in (-1, 1) instead of features.
    `shift_grid` > 0 adds a grid of first-layer bias shifts (`shift_grid` x `shift_grid` cells of
    `width` numbers, spanning `shift_low` to `shift_high` on both axes), sampled bilinearly at
    each coordinate: the spatial method's INR (models/core/inr.py).
    """

    coord_dim: int = 2
    fourier_count: int = 64  # frequencies per coordinate
    fourier_max: float = 1024.0  # frequencies exp(linspace(0, ln fourier_max, fourier_count))
    fourier_pi: bool = True  # features cos(pi x w), sin(pi x w) (image INR) or cos(x w), sin(x w)
    depth: int = 5  # linear layers, the last one is the output layer
    width: int = 256
    out_dim: int = 3
    out_bias: float = 0.5
    activation: str = "relu"  # one of ACTIVATIONS
    shift_grid: int = 0  # cells per side of the bias-shift grid; 0: none (a plain MLP)
    shift_low: float = -1.0  # coordinate of the grid's first edge (both axes)
    shift_high: float = 1.0  # coordinate of its last edge

    ACTIVATIONS = ("relu", "sine")  # not a field (no annotation); sine: SIREN, models/core/inr.py

    @property
    def in_dim(self) -> int:
        """Fourier features [cos, sin] per coordinate and frequency; raw coordinates if none."""
        return 2 * self.coord_dim * self.fourier_count if self.fourier_count else self.coord_dim

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer; its weight-and-bias matrix has shape (in + 1, out)."""
        dims = [self.in_dim] + [self.width] * (self.depth - 1) + [self.out_dim]
        return list(zip(dims[:-1], dims[1:], strict=True))

    def tensor_shapes(self) -> list[tuple[str, list[int]]]:
        """Name and shape of each weight tensor (no batch dim), in the order of INRWeights:
        `layer.{i}` (in + 1, out) per layer, then `shift_grid` (cells, width) if there is one."""
        shapes = [(f"layer.{i}", [a + 1, b]) for i, (a, b) in enumerate(self.layer_shapes())]
        if self.shift_grid:
            shapes.append(("shift_grid", [self.shift_grid**2, self.width]))
        return shapes

    def parameter_count(self) -> int:
        return sum(math.prod(shape) for _, shape in self.tensor_shapes())

    @classmethod
    def from_dict(cls, data: object, what: str = "INR config") -> INRConfig:
        """Build from JSON, checking types and ranges (files may be corrupt or hostile)."""
        config = cls(**typed_fields(cls, data, what))
        limits = {"coord_dim": 3, "fourier_count": 1024, "depth": 64, "width": 8192, "out_dim": 64}
        raw_coordinates = config.activation == "sine" and config.fourier_count == 0
        for name, limit in limits.items():
            if not 1 <= getattr(config, name) <= limit and not (
                name == "fourier_count" and raw_coordinates
            ):
                raise TransInrError(f"{what}: '{name}' must be 1 to {limit}; the file is corrupt")
        if (
            config.depth < 2
            or not 0 < config.fourier_max <= 1e6
            or config.activation not in cls.ACTIVATIONS
            or not 0 <= config.shift_grid <= 1024
            or not -1e3 <= config.shift_low < config.shift_high <= 1e3
            or (config.shift_grid and config.coord_dim != 2)
        ):
            raise TransInrError(f"{what}: unsupported architecture; the file is corrupt")
        return config


@dataclass
class RaySampling:
    """Where along each ray a NeRF is sampled: `samples` depths from near to far (Sec. 4.2)."""

    near: float = 2.0
    far: float = 6.0
    samples: int = 128


@dataclass
class ModelConfig:
    """A Trans-INR meta-learner: tokenizer, Transformer encoder, hypernetwork and target INR."""

    task: str = "image"
    # Tokenizer (Sec. 3.3): zero padding, P x P patches, Linear + learned positional embedding.
    # `padding` is the zero padding added per axis, split padding // 2 before and the rest after:
    # 178 + 2 (1 each side) -> 180 in the paper; 89 + 1 (after) -> 90 for celeba-89.
    image_size: int = 178
    padding: int = 2
    patch_size: int = 9
    channels: int = 3  # 3 for images; 9 for views: [rgb, ray origin, ray direction]
    positional_embedding: bool = True  # images: one learned vector per patch; views: none
    max_views: int = 1  # views a NeRF model accepts at once (N views -> N x patch_count tokens)
    # Volume rendering of NeRF INRs (Sec. 4.2): samples per ray between near and far.
    near: float = 2.0
    far: float = 6.0
    samples: int = 128
    # Transformer encoder (pre-norm).
    dim: int = 768
    depth: int = 6
    heads: int = 12
    head_dim: int = 64
    ff_dim: int = 3072
    # Hypernetwork (Sec. 3.4): weight tokens per layer = min(groups, layer out width).
    groups: int = 64
    inr: INRConfig = field(default_factory=INRConfig)
    preset: str = "custom"
    # The meta-learner (Sec. 4 baselines): "trans-inr"; "single-vector", one weight token whose
    # output modulates every layer (G = 1), the bottleneck the paper argues against; or
    # "learned-init" (Tancik et al. 2021), a learned INR initialisation adapted per sample by
    # `inner_steps` SGD steps of `inner_lr` (MAML; `first_order` drops second derivatives);
    # "ipc" (Kim et al. 2023), one low-rank generated layer (`ipc_layer`, rank = `groups`),
    # every other weight shared (models/core/hypernetwork.py); "spatial", each data token's
    # output becomes `shift_subgrid` x `shift_subgrid` cells of a grid of first-layer bias shifts
    # (Spatial Functa's shift modulations), every INR weight shared (models/core/hypernetwork.py).
    method: str = "trans-inr"
    ipc_layer: int = 1  # "ipc": the one generated INR layer (ginr-ipc's image configs: 1)
    shift_subgrid: int = 3  # "spatial": grid cells per patch side
    inner_steps: int = 2
    inner_lr: float = 1.0  # SGD on the full-image MSE: 1.0 beat 0.01, 0.3 and 3 in a trial
    first_order: bool = False

    @property
    def patch_grid(self) -> int:
        return (self.image_size + self.padding) // self.patch_size

    @property
    def data_token_count(self) -> int:
        return self.patch_grid**2

    @property
    def sampling(self) -> RaySampling:
        """The volume-rendering sampling of a NeRF model (near, far, samples)."""
        return RaySampling(self.near, self.far, self.samples)

    def shift_grid_layout(self) -> tuple[int, float, float]:
        """The spatial method's INR grid: (cells per side, first edge, last edge) in INR
        coordinates, covering the padded image (`padding // 2` pixels before, the rest after)."""
        before, padded = self.padding // 2, self.image_size + self.padding
        low = -1.0 - 2.0 * before / self.image_size
        return self.patch_grid * self.shift_subgrid, low, low + 2.0 * padded / self.image_size

    def group_counts(self) -> list[int]:
        if self.method == "spatial":
            return [0] * self.inr.depth
        if self.method == "single-vector":
            return [1] * self.inr.depth
        if self.method == "ipc":
            return [self.groups if i == self.ipc_layer else 0 for i in range(self.inr.depth)]
        return [min(self.groups, fan_out) for _, fan_out in self.inr.layer_shapes()]

    @property
    def weight_token_count(self) -> int:
        return 1 if self.method == "single-vector" else sum(self.group_counts())

    def validate(self) -> ModelConfig:
        padded = self.image_size + self.padding
        if self.image_size < 1 or padded % self.patch_size != 0:
            raise TransInrError(
                f"image size {self.image_size} + padding {self.padding} is not a multiple of "
                f"patch size {self.patch_size}; change the image size, padding or patch size"
            )
        if self.groups < 1 or self.groups > self.inr.width:
            raise TransInrError(
                f"--groups {self.groups} is out of range; use 1 to the INR width ({self.inr.width})"
            )
        if self.inr.depth < 2:
            raise TransInrError("the INR needs at least 2 layers; use a preset or depth >= 2")
        if self.method not in METHODS:
            raise TransInrError(
                f"unknown --method '{self.method}'; choose one of: {', '.join(METHODS)}"
            )
        if self.method == "ipc" and not 0 <= self.ipc_layer < self.inr.depth:
            raise TransInrError(
                f"ipc layer {self.ipc_layer} is out of range; use 0 to {self.inr.depth - 1}"
            )
        self.validate_spatial()
        if not 1 <= self.inner_steps <= 100:
            raise TransInrError(f"--inner-steps {self.inner_steps} is out of range; use 1 to 100")
        if not 0 < self.inner_lr <= 1e3:  # also rejects NaN
            raise TransInrError(f"--inner-lr {self.inner_lr} is out of range; use (0, 1000]")
        return self

    def validate_spatial(self) -> None:
        """The INR has a shift grid exactly when the method is spatial, laid out as the patches."""
        if self.method != "spatial":
            if self.inr.shift_grid:
                raise TransInrError(
                    f"a shift grid needs --method spatial, not {self.method}; drop the grid"
                )
            return
        if self.task != "image":
            raise TransInrError("--method spatial is for images; use trans-inr for NeRF")
        if not 1 <= self.shift_subgrid <= 16:
            raise TransInrError(f"shift subgrid {self.shift_subgrid} is out of range; use 1 to 16")
        cells, low, high = self.shift_grid_layout()
        inr = self.inr
        if (inr.shift_grid, inr.shift_low, inr.shift_high) != (cells, low, high):
            raise TransInrError(
                f"the spatial INR's shift grid is {inr.shift_grid} cells over "
                f"({inr.shift_low}, {inr.shift_high}); the patches need {cells} over "
                f"({low}, {high}): build the config with preset_config"
            )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: object) -> ModelConfig:
        """Build from JSON, checking types and ranges (files may be corrupt or hostile)."""
        values = dict(typed_fields(cls, data, "model config"))
        values["inr"] = INRConfig.from_dict(values.get("inr", {}), "model config 'inr'")
        config = cls(**values)
        sizes = {
            "image_size": 4096,
            "patch_size": 256,
            "channels": 64,
            "dim": 16384,
            "depth": 256,
            "heads": 256,
            "head_dim": 1024,
            "ff_dim": 65536,
        }
        for name, limit in sizes.items():
            if not 1 <= getattr(config, name) <= limit:
                raise TransInrError(f"model config: '{name}' must be 1 to {limit}; is it corrupt?")
        if config.method not in METHODS or not 1 <= config.inner_steps <= 100:
            raise TransInrError("model config: unknown method or inner steps; is it corrupt?")
        if not 0 < config.inner_lr <= 1e3:
            raise TransInrError("model config: 'inner_lr' is out of range; is it corrupt?")
        if config.task not in TASKS or not 1 <= config.max_views <= 64:
            raise TransInrError("model config: unknown task or view count; is it corrupt?")
        if not (0 < config.near < config.far <= 1e4 and 1 <= config.samples <= 4096):
            raise TransInrError("model config: bad near / far / samples; is it corrupt?")
        if not 0 <= config.padding < config.patch_size:
            raise TransInrError("model config: 'padding' is out of range; is it corrupt?")
        return config.validate()

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))


METHODS = ("trans-inr", "single-vector", "learned-init", "ipc", "spatial")
TASKS = ("image", "nerf")  # models/core/presets.py has the presets of each
