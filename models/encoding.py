"""Encoding: images -> complete INR weights in one forward pass, packed as `.inr` files (Sec. 3).

No gradient steps: the meta-learner reads the fitted image and writes every weight of the INR.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from models.checkpoint import Checkpoint
from models.errors import TransInrError
from models.images import content_mask, fit_image, load_image
from models.inr_file import InrFile
from models.metalearner import TransInr
from models.refinement import observed_psnr


@torch.inference_mode()
def encode_batch(model: TransInr, images: torch.Tensor) -> list[torch.Tensor]:
    """(B, 3, S, S) in [0, 1] -> INR weights, per layer (B, in + 1, out)."""
    return model(images)


def encode_image_file(
    model: TransInr,
    checkpoint: Checkpoint,
    path: str | Path,
    fit: str = "crop",
    device: torch.device | str = "cpu",
) -> tuple[InrFile, float]:
    """Load, fit and encode one image; returns the `.inr` content and the forward-pass seconds."""
    if checkpoint.config.task != "image":
        raise TransInrError(
            f"model {checkpoint.model_id} is a {checkpoint.config.task} model; encoding an image "
            "needs an image model (--model)"
        )
    size = checkpoint.config.image_size
    fitted, fit_info = fit_image(load_image(path), size, fit)
    batch = fitted[None].to(device)
    synchronize = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None
    synchronize()
    started = time.perf_counter()
    weights = encode_batch(model, batch)
    synchronize()
    seconds = time.perf_counter() - started
    mask = content_mask(size, fit_info.content_box)
    score = observed_psnr(weights, checkpoint.config.inr, batch, mask).item()
    info = {
        "input_size": size,
        "fit": fit_info.to_dict(),
        "native_width": fit_info.native_width,
        "native_height": fit_info.native_height,
        "content_box": list(fit_info.content_box),
        "source_model": checkpoint.model_id,
        "source_image": Path(path).name,
        "encode_psnr": round(score, 4),
    }
    weights = [w[0].detach().cpu() for w in weights]
    return InrFile(weights, checkpoint.config.inr, "image", info), seconds
