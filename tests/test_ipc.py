"""IPC (Kim et al. 2023): one low-rank generated INR layer, every other weight shared."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.core.metalearner import build_meta_learner, parameter_breakdown
from models.core.presets import preset_config
from models.core.rendering import render_pixels


def test_ipc_parameter_counts_are_pinned():
    # celeba89: rank 128 (the INR width, as ginr-ipc's 256 at width 256), layer 1 generated.
    counts = parameter_breakdown(build_meta_learner(preset_config("celeba89", method="ipc")))
    assert counts == {
        "tokenizer": 88_064,
        "transformer": 3_155_968,
        "base INR": 82_819,
        "layer heads": 33_408,  # LayerNorm(256) + Linear(256 -> 128)
        "weight tokens": 32_768,  # 128 x 256
        "shared factor": 16_384,  # V: 128 x 128
        "total": 3_409_411,
    }
    paper = build_meta_learner(preset_config("celeba", method="ipc"))
    assert parameter_breakdown(paper)["total"] == 43_732_483
    assert paper.config.groups == 256 and paper.config.weight_token_count == 256


def test_ipc_weights_equal_a_hand_written_composition():
    config = preset_config("tiny", method="ipc", groups=6)
    torch.manual_seed(0)
    model = build_meta_learner(config).eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        weights = model(images)
        tokens = model.transformer(
            torch.cat(
                [model.tokenizer(images), model.hypernetwork.weight_tokens.expand(2, -1, -1)], 1
            )
        )[:, -6:]
    hyper = model.hypernetwork
    head = hyper.heads[0]
    for index, base in enumerate(hyper.base_weights):
        fan_in, fan_out = base.shape[0] - 1, base.shape[1]
        for sample in range(2):
            if index == 1:
                u = head[1](head[0](tokens[sample]))  # (r, in)
                expected = torch.zeros(fan_in, fan_out)
                for column in range(fan_out):
                    vector = sum(u[k] * hyper.shared_factor[k, column] for k in range(6))
                    expected[:, column] = vector / vector.norm().clamp_min(1e-12)
            else:
                expected = base[:-1] / base[:-1].norm(dim=0, keepdim=True)
            assert torch.allclose(weights[index][sample, :-1], expected.detach(), atol=1e-5)
            assert torch.equal(weights[index][sample, -1], base[-1].detach())
    # Only layer 1 differs between samples: the rest is shared.
    assert not torch.allclose(weights[1][0], weights[1][1])
    assert all(torch.equal(weights[i][0], weights[i][1]) for i in (0, 2))


def test_ipc_trains_every_part_and_renders_as_any_inr():
    config = preset_config("tiny", method="ipc")
    torch.manual_seed(1)
    model = build_meta_learner(config)
    images = torch.rand(3, 3, 32, 32)
    prediction = render_pixels(model(images), config.inr, 32, 32)
    F.mse_loss(prediction, images.permute(0, 2, 3, 1).reshape(3, -1, 3)).backward()
    hyper = model.hypernetwork
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
    assert hyper.shared_factor.grad.abs().sum() > 0
    assert hyper.base_weights[1].grad[:-1].abs().sum() == 0  # layer 1's base weight is unused
    assert hyper.base_weights[0].grad[:-1].abs().sum() > 0
