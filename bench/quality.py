"""Rendering quality off the training grid (issue 12): smoothness, flat images, upscaling.

    python bench/quality.py                              # the bundled image model, all sections
    python bench/quality.py --model runs/c89 --images 56 --only smooth,flat
    python bench/quality.py --upscale-model runs/c89-up2 # the learned upscale table too

Sections (printed as markdown; --json prints one JSON object; --picture also writes the
side-by-side PNG of the README, at 4x the model's input: the input's pixels, bicubic, the INR
of one forward pass, the INR after 100 refinement steps):
  native   one-pass PSNR on the first --native-images faces of the celeba-89 test split.
  smooth   each face rendered at 4x its native size, compared with bicubic upsampling of the
           same INR's native render: the 99.5th percentile of the absolute difference (/255),
           anti-aliased (what `render` does) and raw (`render --no-antialias`). Stripes between
           pixel centres are local swings a PSNR hides; this percentile does not.
  flat     a uniform grey image (128/255) encoded and rendered at 1024 px: the largest
           deviation from the grey (/255), anti-aliased and raw.
  upscale  2x upscaling on the first --upscale-images test faces: PSNR at 89 px against the
           real 89 px faces, from 45 px inputs (the faces downsampled, antialiased bicubic):
           bicubic upsampling of the input; --model encoding the input upsampled to 89 (what
           `encode` does with a 45 px photo); --upscale-model, a model trained with
           `--input-size 45`; and for each model, its own 45 px render (anti-aliased)
           upsampled bicubically, against which its 89 px render must hold its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.core.antialias import highest_frequency_ratio, render_gains  # noqa: E402
from models.core.rendering import psnr, render_image  # noqa: E402
from models.data.image_data import ImageDataset  # noqa: E402
from models.io.checkpoint import load_checkpoint  # noqa: E402
from models.tasks.objectives import degrade  # noqa: E402

CELEBA = ROOT.parent / "shared" / "data" / "celeba-89"
BUNDLED = ROOT / "assets" / "models" / "image-celeba89.safetensors"
ASTRONAUT = ROOT / "assets" / "examples" / "astronaut.jpg"
SECTIONS = ("native", "smooth", "flat", "upscale")


def quantize(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> what an 8-bit PNG holds, as floats in 0..255."""
    return (image.clamp(0, 1) * 255).round()


def bicubic(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, S, S) -> (B, 3, size, size): antialiased bicubic, as models/io/images.py resizes."""
    return F.interpolate(images, size=size, mode="bicubic", antialias=True).clamp(0, 1)


def render(weights, model, size: int, antialias: bool = True) -> torch.Tensor:
    """(B, 3, size, size) render of generated weights, anti-aliased as `transinr render` is."""
    inr = model.config.inr
    gains = render_gains(inr, model.config.image_size, size, size) if antialias else None
    return render_image(weights, inr, size, size, gains=gains)


@torch.inference_mode()
def encode(model, images: torch.Tensor, batch: int = 32) -> list[torch.Tensor]:
    parts = [model(chunk) for chunk in images.split(batch)]
    return [torch.cat(layer) for layer in zip(*parts, strict=True)]


def test_faces(count: int, size: int = 89) -> torch.Tensor:
    dataset = ImageDataset("celeba", CELEBA, "test", size, limit=count)
    return torch.stack([dataset[i] for i in range(len(dataset))])


def section_native(model, faces: torch.Tensor) -> dict:
    size = model.config.image_size
    prediction = render(encode(model, faces), model, size)
    return {"images": len(faces), "psnr": psnr(prediction.flatten(1), faces.flatten(1)).mean()}


def stripe_percentile(weights, model, factor: int, antialias: bool) -> float:
    """99.5th percentile over all faces, pixels and channels of |4x render - bicubic(native)|."""
    size = model.config.image_size
    native = render(weights, model, size)
    large = quantize(render(weights, model, size * factor, antialias))
    reference = quantize(F.interpolate(native, scale_factor=factor, mode="bicubic").clamp(0, 1))
    return torch.quantile((large - reference).abs().flatten()[::7].float(), 0.995).item()


def section_smooth(model, faces: torch.Tensor, factor: int = 4) -> dict:
    weights = encode(model, faces)
    return {
        "images": len(faces),
        "factor": factor,
        "p99_5_antialiased": stripe_percentile(weights, model, factor, True),
        "p99_5_raw": stripe_percentile(weights, model, factor, False),
    }


def section_flat(model, size: int = 1024, grey: float = 128 / 255) -> dict:
    image = torch.full((1, 3, model.config.image_size, model.config.image_size), grey)
    weights = encode(model, image)
    result = {"size": size, "grey": 128}
    for name, antialias in (("antialiased", True), ("raw", False)):
        rendered = quantize(render(weights, model, size, antialias))
        result[f"max_deviation_{name}"] = (rendered - 128).abs().max().item()
    return result


def section_upscale(model, upscale_model, faces: torch.Tensor, low: int = 45) -> dict:
    """PSNR at the faces' size from `low` px inputs: bicubic, each model, and each model's own
    `low` px render upsampled bicubically (is the INR's 2x render worth more than that?)."""
    size = faces.shape[-1]
    inputs = degrade(faces, low)  # downsampled to `low` and back: what encode makes of it
    rows = {f"bicubic upsampling of the {low} px input": inputs}
    models = {"model (encode of the upsampled input)": model}
    if upscale_model is not None:
        models[f"learned upscale (--input-size {low})"] = upscale_model
    for name, each in models.items():
        weights = encode(each, inputs)
        rows[f"{name}, rendered at {size}"] = render(weights, each, size)
        rows[f"{name}, its {low} px render upsampled bicubically"] = bicubic(
            render(weights, each, low), size
        )
    table = {
        name: psnr(image.flatten(1), faces.flatten(1)).mean().item() for name, image in rows.items()
    }
    return {"images": len(faces), "input_size": low, "psnr": table}


def picture(model, source: Path, target: Path, factor: int = 4, steps: int = 100) -> None:
    """Side by side at `factor` x the model's input: the input (its pixels), bicubic upsampling
    of it, the INR of one forward pass and the INR after `steps` refinement steps (refine's
    defaults), both rendered at that size as `render` does."""
    from models.io.images import encode_png, fit_image, load_image
    from models.tasks.refinement import RefineSettings, image_loss, refine_report

    size = model.config.image_size
    image = fit_image(load_image(source), size, "crop")[0][None]
    weights = encode(model, image)
    with torch.enable_grad():
        refined = refine_report(
            [w.clone() for w in weights], image_loss(model.config.inr, image), steps,
            RefineSettings(),
        ).weights  # fmt: skip
    large = size * factor
    panels = [
        F.interpolate(image, scale_factor=factor, mode="nearest"),
        bicubic(image, large),
        render(weights, model, large),
        render(refined, model, large),
    ]
    gap = torch.ones(1, 3, large, 4)
    row = torch.cat([part for panel in panels for part in (panel, gap)][:-1], dim=-1)
    array = quantize(row)[0].permute(1, 2, 0).to(torch.uint8).numpy()
    target.write_bytes(encode_png(array))


def markdown(results: dict) -> str:
    """The sections as markdown tables."""
    lines = [f"model: {results['model']}; top Fourier frequency / input Nyquist rate: "
             f"{results['top_frequency_over_nyquist']:.3f}", ""]  # fmt: skip
    if "native" in results:
        native = results["native"]
        lines += [f"native: one pass, {native['images']} test faces: {native['psnr']:.2f} dB", ""]
    if "smooth" in results:
        smooth = results["smooth"]
        lines += [
            f"smooth: {smooth['factor']}x render vs bicubic upsampling of the native render, "
            f"{smooth['images']} test faces, 99.5th percentile of |difference| (/255): "
            f"anti-aliased {smooth['p99_5_antialiased']:.0f}, raw {smooth['p99_5_raw']:.0f}",
            "",
        ]
    if "flat" in results:
        flat = results["flat"]
        lines += [
            f"flat: grey {flat['grey']}/255 rendered at {flat['size']} px, largest deviation "
            f"(/255): anti-aliased {flat['max_deviation_antialiased']:.0f}, raw "
            f"{flat['max_deviation_raw']:.0f}",
            "",
        ]
    if "upscale" in results:
        upscale = results["upscale"]
        lines += [
            f"upscale: PSNR at 89 px from {upscale['input_size']} px inputs, "
            f"{upscale['images']} test faces",
            "",
            "| method | PSNR (dB) |",
            "|---|---|",
        ]
        lines += [f"| {name} | {value:.2f} |" for name, value in upscale["psnr"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=BUNDLED)
    parser.add_argument("--upscale-model", type=Path)
    parser.add_argument("--images", type=int, default=56)
    parser.add_argument("--native-images", type=int, default=1000)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--upscale-images", type=int, default=1000)
    parser.add_argument("--picture", type=Path, help="also write the side-by-side PNG here")
    parser.add_argument("--picture-source", type=Path, default=ASTRONAUT)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not CELEBA.is_dir():
        sys.exit(f"error: {CELEBA} not found; this benchmark reads the celeba-89 faces there")
    torch.set_grad_enabled(False)
    sections = args.only.split(",")
    model = load_checkpoint(args.model).build_model().eval()
    upscale = None
    if args.upscale_model:
        upscale = load_checkpoint(args.upscale_model).build_model().eval()
    counts = [args.images]
    counts += [args.native_images] if "native" in sections else []
    counts += [args.upscale_images] if "upscale" in sections else []
    faces = test_faces(max(counts))
    inr = model.config.inr
    results = {
        "model": str(args.model),
        "top_frequency_over_nyquist": highest_frequency_ratio(inr, model.config.image_size),
    }
    if "native" in sections:
        native = section_native(model, faces[: args.native_images])
        results["native"] = {**native, "psnr": native["psnr"].item()}
    if "smooth" in sections:
        results["smooth"] = section_smooth(model, faces[: args.images])
    if "flat" in sections:
        results["flat"] = section_flat(model)
    if "upscale" in sections:
        results["upscale"] = section_upscale(model, upscale, faces[: args.upscale_images])
    if args.picture:
        picture(model, args.picture_source, args.picture)
        results["picture"] = str(args.picture)
    print(json.dumps(results, indent=2) if args.json else markdown(results))


if __name__ == "__main__":
    main()
