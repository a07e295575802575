"""Random initialisation that also runs cheaply on the meta device.

Checkpoints are shape-checked by building their model under `torch.device("meta")`. There
`torch.randn` (and `normal_`) run torch's Python reference kernels, which import its symbolic-shape
machinery and sympy: half a second of start-up for every command that loads a model.
"""

from __future__ import annotations

import torch


def standard_normal(*shape: int) -> torch.Tensor:
    """Like `torch.randn(*shape)` (the same numbers from the same generator state); on the meta
    device an uninitialised tensor of that shape."""
    tensor = torch.empty(*shape)
    if not tensor.is_meta:
        tensor.normal_()
    return tensor
