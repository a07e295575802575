"""Learned Init (Tancik et al. 2021), the paper's gradient-based meta-learning baseline (Sec. 4).

A meta-learned INR initialisation, adapted to each sample by `inner_steps` SGD steps on its
observations (MAML; `first_order` drops the second derivatives). Its forward has the same
contract as Trans-INR's: observations in, one INR's weights per sample out. The other baseline,
a single latent vector modulating every layer, is Trans-INR's hypernetwork with one shared
weight token (`HyperNetwork(single_vector=True)`).
"""

from __future__ import annotations

import torch
from torch import nn

from models.core.config import ModelConfig
from models.core.inr import INRWeights, init_layer
from models.core.rendering import render_pixels
from models.nerf.volume_rendering import render_rays

INNER_RAYS = 512  # NeRF: random support-view rays per inner step and object


class LearnedInit(nn.Module):
    """Observations -> INR weights by k inner SGD steps from a learned initialisation."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.initial_weights = nn.ParameterList(
            nn.Parameter(init_layer(fan_in, fan_out))
            for fan_in, fan_out in config.inr.layer_shapes()
        )

    def inner_loss(
        self, weights: INRWeights, observations: torch.Tensor, step: int
    ) -> torch.Tensor:
        """Sum over the batch of each sample's own MSE (so samples do not interact)."""
        config = self.config
        if config.task == "nerf":
            # (B, N, 9, S, S): colour, ray origin, ray direction per pixel of the support views
            pixels = observations.movedim(2, -1).reshape(len(observations), -1, 9)  # (B, N*S*S, 9)
            # Training draws fresh rays (the global RNG, checkpointed); eval is repeatable.
            generator = None if self.training else torch.Generator().manual_seed(step)
            pick = torch.randint(pixels.shape[1], (INNER_RAYS,), generator=generator)
            rays = pixels[:, pick.to(pixels.device)]  # (B, R, 9)
            prediction = render_rays(
                weights, config.inr, config.sampling, rays[..., 3:6], rays[..., 6:]
            )
            target = rays[..., :3]
        else:
            size = observations.shape[-1]
            prediction = render_pixels(weights, config.inr, size, size)  # (B, S*S, 3)
            target = observations.permute(0, 2, 3, 1).reshape(len(observations), -1, 3)
        return (prediction.float() - target).pow(2).mean(dim=(1, 2)).sum()

    def forward(self, observations: torch.Tensor) -> INRWeights:
        """Images (B, 3, S, S), or views (B, N, 9, S, S) for NeRF -> adapted INR weights."""
        batch = observations.shape[0]
        # Adaptation needs gradients even when called under no_grad / inference_mode (encode,
        # eval); autocast is off so the inner steps run in float32.
        with (
            torch.inference_mode(False),
            torch.enable_grad(),
            torch.autocast(observations.device.type, enabled=False),
        ):
            observations = observations.detach().clone().float()
            weights = [w.expand(batch, -1, -1) for w in self.initial_weights]
            if not torch.is_grad_enabled() or not weights[0].requires_grad:
                weights = [w.detach().requires_grad_(True) for w in weights]
            for step in range(self.config.inner_steps):
                loss = self.inner_loss(weights, observations, step)
                create_graph = self.training and not self.config.first_order
                grads = torch.autograd.grad(loss, weights, create_graph=create_graph)
                weights = [
                    w - self.config.inner_lr * g for w, g in zip(weights, grads, strict=True)
                ]
        if not self.training:
            weights = [w.detach() for w in weights]
        return weights
