"""Trans-INR: tokenizer -> Transformer -> hypernetwork, observations to INR weights (Sec. 3).

One forward pass builds the complete weights of an INR; nothing is stored per sample.
"""

from __future__ import annotations

import torch
from torch import nn

from models.core.config import ModelConfig
from models.core.hypernetwork import HyperNetwork
from models.core.inr import INRWeights
from models.core.tokenizers import ImageTokenizer, ViewTokenizer
from models.core.transformer import TransformerEncoder


class TransInr(nn.Module):
    """Observations -> INR weights, per layer (B, in + 1, out)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        if config.task == "nerf":
            self.tokenizer = ViewTokenizer(
                config.image_size, config.patch_size, config.channels, config.dim
            )
        else:
            self.tokenizer = ImageTokenizer(
                config.image_size, config.patch_size, config.padding, config.channels, config.dim
            )
        self.transformer = TransformerEncoder(
            config.dim, config.depth, config.heads, config.head_dim, config.ff_dim
        )
        self.hypernetwork = HyperNetwork(
            config.inr.layer_shapes(),
            config.dim,
            config.groups,
            single_vector=config.method == "single-vector",
            ipc_layer=config.ipc_layer if config.method == "ipc" else None,
            shift_cells=(
                (config.patch_grid, config.shift_subgrid) if config.method == "spatial" else None
            ),
        )

    def forward(self, observations: torch.Tensor) -> INRWeights:
        """Images (B, 3, S, S), or views (B, N, 9, S, S) for NeRF -> INR weights."""
        data_tokens = self.tokenizer(observations)
        weight_tokens = self.hypernetwork.weight_tokens.expand(observations.shape[0], -1, -1)
        tokens = self.transformer(torch.cat([data_tokens, weight_tokens], dim=1))
        if self.hypernetwork.shift_cells is not None:  # spatial: the data tokens write the grid
            return self.hypernetwork(tokens)
        return self.hypernetwork(tokens[:, -self.hypernetwork.weight_token_count :])


def build_meta_learner(config: ModelConfig) -> nn.Module:
    """The meta-learner of `config.method`: Trans-INR (also the single-vector baseline) or
    Learned Init; each maps observations to per-sample INR weights."""
    if config.method == "learned-init":
        from models.core.baselines import LearnedInit

        return LearnedInit(config)
    return TransInr(config)


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Trainable parameters per part, as in paper-configs.md, plus the total."""
    if not isinstance(model, TransInr):
        total = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return {"INR initialisation": total, "total": total}
    hyper = model.hypernetwork
    parts = {
        "tokenizer": model.tokenizer,
        "transformer": model.transformer,
        "base INR": hyper.base_weights,
        "shift head" if hyper.shift_cells is not None else "layer heads": hyper.heads,
    }
    counts = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}
    counts["weight tokens"] = hyper.weight_tokens.numel()
    if hyper.ipc_layer is not None:
        counts["shared factor"] = hyper.shared_factor.numel()
    counts["total"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts
