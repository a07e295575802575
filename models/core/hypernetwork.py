"""The Transformer hypernetwork's weight side: weight tokens and weight grouping (Sec. 3.4).

Learned weight tokens (one per group) are appended to the data tokens. For INR layer i, its
g = min(G, out_i) output tokens pass a LayerNorm + Linear head giving u of shape (in_i, g), and
column j of the weight is `normalize(W_base[:, j] * u[:, j mod g])` (L2 over the input dim).
The bias row is not generated: it stays the shared, learned base bias.

`ipc` (Kim et al., CVPR 2023, "Generalizable Implicit Neural Representations via Instance
Pattern Composers"; their code: kakaobrain/ginr-ipc): only one early layer is generated, as a
low-rank product: its r weight tokens pass a LayerNorm + Linear head giving the instance
pattern composers U (in, r), times a shared, learned factor V (r, out), normalised over the
input dim; every other weight is shared (the normalised base weights), and all biases too.

`spatial`: no weight tokens; each data token's output passes a LayerNorm + Linear head giving
s x s cells of first-layer bias shifts (width numbers each) where its patch lies, so the
Transformer writes a grid of shift modulations (Spatial Functa, Bauer et al., ICML 2023; a
Transformer encoder in place of their meta-learned latents) and every MLP weight is shared.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.core.initialisation import standard_normal
from models.core.inr import INRWeights, init_layer


def group_modulate(base: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
    """Base weights (in + 1, out) and u (B, in, g) -> generated weights (B, in + 1, out).

    Columns are tiled over the groups: column j uses group j mod g.
    """
    fan_out, group_count = base.shape[1], modulation.shape[2]
    tiled = modulation.repeat(1, 1, math.ceil(fan_out / group_count))[:, :, :fan_out]
    weight = F.normalize(base[:-1] * tiled, dim=1)  # (B, in, out)
    bias = base[-1:].expand(modulation.shape[0], 1, fan_out)
    return torch.cat([weight, bias], dim=1)


class HyperNetwork(nn.Module):
    """Weight tokens in, INR weights out: per layer a LayerNorm + Linear head and grouping.

    `single_vector`: the baseline the paper argues against: one weight token, whose output
    vector every layer's head decodes into that layer's modulation (G = 1 per layer).
    """

    def __init__(
        self,
        layer_shapes: list[tuple[int, int]],
        dim: int,
        groups: int,
        single_vector=False,
        ipc_layer: int | None = None,
        shift_cells: tuple[int, int] | None = None,
    ):
        """`shift_cells`: spatial only, (patches per side, grid cells per patch side)."""
        super().__init__()
        self.single_vector, self.ipc_layer = single_vector, ipc_layer
        self.shift_cells = shift_cells
        if single_vector:
            groups = 1
        self.group_counts = [min(groups, fan_out) for _, fan_out in layer_shapes]
        token_count = 1 if single_vector else sum(self.group_counts)
        if ipc_layer is not None:
            token_count = groups  # the rank r of the generated layer
            self.group_counts = [groups if i == ipc_layer else 0 for i in range(len(layer_shapes))]
        if shift_cells is not None:
            token_count, self.group_counts = 0, [0] * len(layer_shapes)
        self.weight_tokens = nn.Parameter(standard_normal(token_count, dim))
        self.base_weights = nn.ParameterList(
            nn.Parameter(init_layer(fan_in, fan_out)) for fan_in, fan_out in layer_shapes
        )
        generated = layer_shapes if ipc_layer is None else [layer_shapes[ipc_layer]]
        head_outputs = [fan_in for fan_in, _ in generated]
        if shift_cells is not None:
            head_outputs = [shift_cells[1] ** 2 * layer_shapes[0][1]]  # s * s cells of width
        self.heads = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, size)) for size in head_outputs
        )
        if shift_cells is not None:  # start as the shared MLP: zero shifts
            nn.init.zeros_(self.heads[0][1].weight)
            nn.init.zeros_(self.heads[0][1].bias)
        if ipc_layer is not None:
            fan_in, fan_out = layer_shapes[ipc_layer]
            factor = standard_normal(groups, fan_out) / math.sqrt(groups * fan_in)
            self.shared_factor = nn.Parameter(factor)  # V (r, out), as ginr-ipc initialises it

    @property
    def weight_token_count(self) -> int:
        return self.weight_tokens.shape[0]

    def forward(self, weight_token_outputs: torch.Tensor) -> INRWeights:
        """Encoder outputs at the weight tokens (B, T, dim) -> per layer (B, in + 1, out);
        spatial: outputs at the data tokens (B, patches, dim) -> layers + shift grid."""
        if self.shift_cells is not None:
            return self.shift_grid(weight_token_outputs)
        if self.ipc_layer is not None:
            return self.compose(weight_token_outputs)
        weights = []
        if self.single_vector:
            per_layer = [weight_token_outputs] * len(self.heads)  # one vector for every layer
        else:
            per_layer = weight_token_outputs.split(self.group_counts, dim=1)
        for tokens, head, base in zip(
            per_layer,
            self.heads,
            self.base_weights,
            strict=True,
        ):
            modulation = head(tokens).transpose(1, 2)  # (B, in, g)
            weights.append(group_modulate(base, modulation))
        return weights

    def compose(self, weight_token_outputs: torch.Tensor) -> INRWeights:
        """IPC: layer `ipc_layer` is normalize(U V) with U (B, in, r) from the r tokens; the
        other layers are the shared normalised base weights."""
        batch, weights = weight_token_outputs.shape[0], []
        for index, base in enumerate(self.base_weights):
            bias = base[-1:].expand(batch, 1, base.shape[1])
            if index == self.ipc_layer:
                composers = self.heads[0](weight_token_outputs).transpose(1, 2)  # (B, in, r)
                weight = F.normalize(torch.matmul(composers, self.shared_factor), dim=1)
            else:
                weight = F.normalize(base[:-1], dim=0).expand(batch, -1, -1)  # (B, in, out)
            weights.append(torch.cat([weight, bias], dim=1))
        return weights

    def shift_grid(self, data_token_outputs: torch.Tensor) -> INRWeights:
        """Spatial: the shared layers, then the grid (B, (P s)^2, width), its cells row-major;
        patch (i, j) writes cells (i s + a, j s + b) for a, b < s."""
        batch, patches = data_token_outputs.shape[:2]
        side, sub = self.shift_cells
        if patches != side * side:
            raise ValueError(f"expected {side * side} data tokens, got {patches}")
        width = self.base_weights[0].shape[1]
        cells = self.heads[0](data_token_outputs).view(batch, side, side, sub, sub, width)
        grid = cells.permute(0, 1, 3, 2, 4, 5).reshape(batch, (side * sub) ** 2, width)
        layers = [base.expand(batch, -1, -1) for base in self.base_weights]
        return [*layers, grid]
