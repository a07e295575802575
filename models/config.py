"""Model configurations as dataclasses, written as JSON, and the named presets.

The `celeba` and `imagenette` presets reproduce the paper's image-regression model (Sec. 4.1) to
the parameter (44,462,851); the smaller presets are for CPUs and tests.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from models.errors import TransInrError


@dataclass
class INRConfig:
    """An MLP over Fourier features of coordinates: `depth` linear layers, ReLU between them."""

    coord_dim: int = 2
    fourier_count: int = 64  # frequencies per coordinate
    fourier_max: float = 1024.0  # frequencies exp(linspace(0, ln fourier_max, fourier_count))
    fourier_pi: bool = True  # features cos(pi x w), sin(pi x w) (image INR) or cos(x w), sin(x w)
    depth: int = 5  # linear layers, the last one is the output layer
    width: int = 256
    out_dim: int = 3
    out_bias: float = 0.5
    activation: str = "relu"

    @property
    def in_dim(self) -> int:
        return 2 * self.coord_dim * self.fourier_count

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer; its weight-and-bias matrix has shape (in + 1, out)."""
        dims = [self.in_dim] + [self.width] * (self.depth - 1) + [self.out_dim]
        return list(zip(dims[:-1], dims[1:], strict=True))

    def parameter_count(self) -> int:
        return sum((fan_in + 1) * fan_out for fan_in, fan_out in self.layer_shapes())


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
    channels: int = 3
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

    @property
    def patch_grid(self) -> int:
        return (self.image_size + self.padding) // self.patch_size

    @property
    def data_token_count(self) -> int:
        return self.patch_grid**2

    def group_counts(self) -> list[int]:
        return [min(self.groups, fan_out) for _, fan_out in self.inr.layer_shapes()]

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
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        inr_names = {f.name for f in dataclasses.fields(INRConfig)}
        unknown = (set(data) - names) | (set(data.get("inr", {})) - inr_names)
        if unknown:
            raise TransInrError(
                f"model config has unknown fields {sorted(unknown)}; it was written by a newer "
                "transinr: upgrade transinr"
            )
        values = dict(data)
        values["inr"] = INRConfig(**data.get("inr", {}))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))


def _paper_image(preset: str) -> ModelConfig:
    return ModelConfig(preset=preset)


PRESETS: dict[str, ModelConfig] = {
    # The paper's image-regression model (CelebA and Imagenette at 178 x 178): 44,462,851 params.
    "celeba": _paper_image("celeba"),
    "imagenette": _paper_image("imagenette"),
    # celeba-89: the half-resolution CelebA subset; crop 89, pad 1, patch 9 -> 100 tokens.
    "celeba89": ModelConfig(
        preset="celeba89",
        image_size=89,
        padding=1,
        dim=256,
        depth=6,
        heads=8,
        head_dim=32,
        ff_dim=1024,
        groups=32,
        inr=INRConfig(fourier_count=64, fourier_max=128.0, depth=5, width=128),
    ),
    # tiny: tests and quick trials; one training step takes well under a second on a CPU.
    "tiny": ModelConfig(
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
        inr=INRConfig(fourier_count=16, fourier_max=32.0, depth=3, width=32),
    ),
}


def preset_config(name: str, **overrides) -> ModelConfig:
    """A copy of preset `name`, with overrides (e.g. groups=16) applied and checked."""
    if name not in PRESETS:
        raise TransInrError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}")
    config = dataclasses.replace(PRESETS[name], inr=dataclasses.replace(PRESETS[name].inr))
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    return config.validate()
