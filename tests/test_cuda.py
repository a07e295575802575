"""The CUDA paths, tested as their CPU versions are: encode, render, refine, NeRF rendering,
training steps (fp32 and bf16) and resume, the command line with --device, the bundled models'
CPU-vs-GPU agreement, fused attention kernels and DDP.

Every test takes a `device`: "cpu" (the check itself, kept tiny) and "cuda", which carries the
`cuda` marker and skips with the reason "CUDA is not available" where there is no GPU. On a GPU,
`pytest -m cuda tests/test_cuda.py` runs the CUDA cases alone (scripts/gpu_check.sh does).
Each result made on the device is compared with the same computation on the CPU.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
from support import REPO_ROOT, tiny_train_config
from test_cli import invoke, json_of
from test_distributed import train as train_processes
from test_distributed import weights as run_weights
from test_refine_and_training import distinct_weights, smooth_images

from models.core.antialias import render_gains
from models.core.config import RaySampling
from models.core.inr import init_weights
from models.core.metalearner import TransInr
from models.core.presets import preset_config
from models.core.rendering import render_image, render_quantized
from models.data.image_data import ImageDataset
from models.data.view_data import load_views
from models.io.checkpoint import load_checkpoint
from models.nerf.volume_rendering import render_rays, render_view
from models.tasks.devices import resolve_device
from models.tasks.encoding import encode_batch, encode_image_file, support_ray_psnr
from models.tasks.refinement import RefineSettings, image_loss, refine_report, view_loss
from models.tasks.training import autocast, resolve_precision, train

NO_CUDA = "CUDA is not available"
CUDA = torch.cuda.is_available()
needs_cuda = [pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason=NO_CUDA)]
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=needs_cuda)]
on_each_device = pytest.mark.parametrize("device", DEVICES)
on_cuda_only = pytest.mark.parametrize("device", [pytest.param("cuda", marks=needs_cuda)])
FP32 = {"atol": 1e-4, "rtol": 0.0}  # CPU against the device in fp32
CHAIR = REPO_ROOT / "assets" / "examples" / "chair"


def measure_module():
    """scripts/gpu_measure.py, where the bundled models' agreement check lives."""
    path = REPO_ROOT / "scripts" / "gpu_measure.py"
    spec = importlib.util.spec_from_file_location("gpu_measure", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_measure", module)  # its dataclasses look themselves up there
    spec.loader.exec_module(sys.modules["gpu_measure"])
    return sys.modules["gpu_measure"]


def on(device: str, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.to(device) for t in tensors]


def assert_close_to_cpu(on_device: list[torch.Tensor], on_cpu: list[torch.Tensor], **tolerance):
    for got, expected in zip(on_device, on_cpu, strict=True):
        torch.testing.assert_close(got.detach().cpu().float(), expected.float(), **tolerance)


# --- encode, render, refine ------------------------------------------------------------------


@on_each_device
def test_encode_on_the_device_equals_the_cpu(device, tiny_checkpoint, image_folder):
    images = torch.stack([ImageDataset("folder", image_folder, "train", 32)[i] for i in range(3)])
    model = tiny_checkpoint.build_model(device).eval()
    weights = encode_batch(model, images.to(device))
    assert all(w.device.type == device and torch.isfinite(w).all() for w in weights)
    shapes = [(3, fan_in + 1, fan_out) for fan_in, fan_out in model.config.inr.layer_shapes()]
    assert [tuple(w.shape) for w in weights] == shapes
    reference = encode_batch(tiny_checkpoint.build_model().eval(), images)
    assert_close_to_cpu(weights, reference, **FP32)
    picture = image_folder / "img00.png"
    encoded, _ = encode_image_file(model, tiny_checkpoint, picture, device=device)
    expected, _ = encode_image_file(tiny_checkpoint.build_model(), tiny_checkpoint, picture)
    assert all(w.device.type == "cpu" for w in encoded.weights)  # files hold CPU tensors
    assert_close_to_cpu(encoded.weights, expected.weights, **FP32)


@on_each_device
def test_render_on_the_device_equals_the_cpu(device):
    config = preset_config("tiny").inr
    weights = distinct_weights(2)
    expected = render_image(weights, config, 40, 24)
    got = render_image(on(device, weights), config, 40, 24, chunk_pixels=100)
    torch.testing.assert_close(got, expected, **FP32)
    gains = render_gains(config, 32, 20, 12)  # below the native size: anti-aliased
    assert gains is not None
    expected = render_image(weights, config, 20, 12, gains=gains)
    torch.testing.assert_close(render_image(on(device, weights), config, 20, 12, gains=gains),
                               expected, **FP32)  # fmt: skip
    first = [w[:1] for w in weights]
    deep = render_quantized(on(device, first), config, 33, 17, bit_depth=16, chunk_pixels=64)
    reference = render_quantized(first, config, 33, 17, bit_depth=16)
    assert abs(deep.astype(int) - reference.astype(int)).max() <= 7  # 1e-4 of 65535


@on_each_device
def test_refinement_on_the_device_follows_the_cpu(device):
    config = preset_config("tiny").inr
    images, weights = smooth_images(2), distinct_weights(2)
    settings = RefineSettings(lr=1e-3)
    expected = refine_report(weights, image_loss(config, images), 10, settings)
    got = refine_report(on(device, weights), image_loss(config, images.to(device)), 10, settings)
    assert all(w.device.type == device for w in got.weights)
    assert torch.all(got.best_loss < got.initial_loss) and not bool(got.diverged.any())
    torch.testing.assert_close(got.best_loss.cpu(), expected.best_loss, rtol=1e-3, atol=1e-7)
    jittered = image_loss(config, images.to(device), coordinates="continuous")
    smooth = refine_report(on(device, weights), jittered, 5, settings)
    assert torch.all(smooth.best_loss < smooth.initial_loss)


# --- view synthesis --------------------------------------------------------------------------


@on_each_device
def test_nerf_rendering_on_the_device_equals_the_cpu(device):
    config = preset_config("tiny", "nerf")
    torch.manual_seed(5)
    weights = [w + 0.1 * torch.randn_like(w) for w in init_weights(config.inr)]
    sampling = RaySampling(2.0, 6.0, 16)
    posed = load_views(CHAIR, [0, 1])
    pose = posed.poses[1:].float()
    expected = render_view(weights, config.inr, sampling, pose, 24, 20, posed.focal * 24 / 128)
    got = render_view(on(device, weights), config.inr, sampling, pose.to(device), 24, 20,
                      posed.focal * 24 / 128)  # fmt: skip
    assert got.device.type == device
    torch.testing.assert_close(got.cpu(), expected, **FP32)
    origins, directions = torch.randn(1, 8, 3) + 4.0, torch.randn(1, 8, 3)
    jitter = [torch.Generator().manual_seed(3) for _ in range(2)]  # noise drawn on the CPU
    cpu_rgb = render_rays(weights, config.inr, sampling, origins, directions, True, jitter[0])
    rgb = render_rays(on(device, weights), config.inr, sampling, origins.to(device),
                      directions.to(device), True, jitter[1])  # fmt: skip
    torch.testing.assert_close(rgb.cpu(), cpu_rgb, **FP32)
    before = support_ray_psnr(weights, config.inr, sampling, posed)
    assert support_ray_psnr(on(device, weights), config.inr, sampling, posed, device) == (
        pytest.approx(before, abs=1e-3)
    )
    loss_fn = view_loss(config.inr, sampling, posed, rays_per_step=256, device=device)
    tuned = refine_report(on(device, weights), loss_fn, 10, RefineSettings(lr=1e-3))
    assert support_ray_psnr(tuned.weights, config.inr, sampling, posed, device) > before


# --- training and resume ---------------------------------------------------------------------


def datasets(image_folder: Path) -> tuple[ImageDataset, ImageDataset]:
    return (
        ImageDataset("folder", image_folder, "train", 32),
        ImageDataset("folder", image_folder, "val", 32),
    )


@on_each_device
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_steps_on_the_device(device, precision, tmp_path, image_folder):
    """A few steps of the training loop: finite losses, a checkpoint of CPU float32 tensors, and
    a first loss (the same weights and batch) equal to the CPU's."""
    train_set, val_set = datasets(image_folder)
    config = tiny_train_config(steps=3, batch_size=4, precision=precision, val_every=3)
    first_losses = {}
    for place in dict.fromkeys(["cpu", device]):
        reports = []
        result = train(tmp_path / place, preset_config("tiny"), config, train_set, val_set,
                       torch.device(place), on_progress=reports.append)  # fmt: skip
        assert [p.step for p in reports] == [1, 2, 3]
        assert all(math.isfinite(p.loss) and p.loss > 0 for p in reports)
        assert math.isfinite(result.final_val_psnr)
        first_losses[place] = reports[0].loss
    saved = load_checkpoint(tmp_path / device / "last.safetensors")
    assert saved.train_state["step"] == 3
    assert {t.device.type for t in saved.model_state.values()} == {"cpu"}
    assert {t.dtype for t in saved.model_state.values()} == {torch.float32}
    tolerance = 1e-5 if precision == "fp32" else 2e-2
    assert first_losses[device] == pytest.approx(first_losses["cpu"], rel=tolerance)


@on_each_device
def test_resume_on_the_device_continues_the_run(device, tmp_path, image_folder):
    """3 steps, then a resume to 6, against 6 straight steps on the same device: bit for bit on
    the CPU; on CUDA within 1e-4 (its attention backward adds in a varying order)."""
    train_set, val_set = datasets(image_folder)
    common = {"batch_size": 4, "warmup_steps": 0, "lr_decay_at": 1.0}
    config, place = preset_config("tiny"), torch.device(device)
    six = tiny_train_config(steps=6, **common)
    train(tmp_path / "straight", config, six, train_set, val_set, place)
    three = tiny_train_config(steps=3, **common)
    train(tmp_path / "resumed", config, three, train_set, val_set, place)
    halfway = load_checkpoint(tmp_path / "resumed" / "last.safetensors")
    assert halfway.train_state["step"] == 3
    train(tmp_path / "resumed", config, six, train_set, val_set, place, resume=halfway)
    straight = load_checkpoint(tmp_path / "straight" / "last.safetensors")
    resumed = load_checkpoint(tmp_path / "resumed" / "last.safetensors")
    assert resumed.train_state["step"] == 6
    for name, tensor in straight.model_state.items():
        if device == "cpu":
            assert torch.equal(resumed.model_state[name], tensor), name
        else:
            torch.testing.assert_close(resumed.model_state[name], tensor, atol=1e-4, rtol=1e-4)
    steps = [state["step"] for state in resumed.optimizer_state["state"].values()]
    assert all(float(step) == 6 for step in steps)  # the fused Adam's step counts came back


# --- the command line ------------------------------------------------------------------------


@on_each_device
def test_command_line_on_the_device(device, tmp_path, image_folder):
    """train (auto precision, a loader worker: pinned memory on CUDA), encode, render, refine."""
    place = torch.device(device)
    if device == "cuda":
        assert resolve_device("auto").type == "cuda"
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    assert resolve_precision("auto", place) == ("bf16" if bf16 else "fp32")
    run, inr, picture = tmp_path / "run", tmp_path / "a.inr", image_folder / "img00.png"
    summary = json_of(invoke(
        "train", "--dataset", "folder", "--data", image_folder, "--preset", "tiny", "--steps", 3,
        "--batch-size", 8, "--workers", 1, "--val-images", 8, "--device", device, "--out", run,
        "--quiet", "--json",
    ))  # fmt: skip
    assert summary["device"].startswith(device) and summary["steps"] == 3
    assert summary["precision"] == ("bf16" if bf16 else "fp32")
    json_of(invoke("encode", picture, "-o", inr, "--model", run, "--device", device, "--json"))
    png = tmp_path / "a.png"
    json_of(invoke("render", inr, "--size", 48, "-o", png, "--device", device, "--json"))
    assert png.is_file()
    refined = json_of(invoke("refine", inr, "--image", picture, "--steps", 3, "--device",
                             device, "--json", "--quiet"))  # fmt: skip
    assert refined["psnr_after"] >= refined["psnr_before"]


# --- the bundled models, fused attention and DDP ---------------------------------------------


@on_each_device
def test_bundled_models_agree_with_the_cpu(device):
    """One pass and render of each bundled model: fp32 to 1e-4, bf16 within 0.1 dB."""
    measure = measure_module()
    for figures in (measure.image_agreement(torch.device(device)),
                    measure.nerf_agreement(torch.device(device))):  # fmt: skip
        assert figures["fp32_ok"], figures
        assert figures["bf16_ok"], figures


@on_cuda_only
def test_flash_attention_runs_the_paper_model_in_bf16(device):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    model = TransInr(preset_config("celeba")).to(device).eval()
    images = torch.rand(2, 3, 178, 178, device=device)
    with autocast(torch.device(device), "bf16"), torch.inference_mode():
        with sdpa_kernel(SDPBackend.MATH):
            reference = model(images)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            flash = model(images)
    assert_close_to_cpu(flash, [w.cpu() for w in reference], atol=1e-2, rtol=0.0)


@on_cuda_only
def test_ddp_two_processes_equal_one_on_cuda(device, tmp_path, monkeypatch):
    """tests/test_distributed.py's check on the GPU, fp32: over NCCL with 2 GPUs; on one GPU
    the processes share it over gloo, as NCCL cannot."""
    if torch.cuda.device_count() < 2:
        monkeypatch.setenv("TRANSINR_DDP_BACKEND", "gloo")
    extra = ("--device", "cuda", "--precision", "fp32")
    train_processes(tmp_path / "one", 1, 6, *extra)
    train_processes(tmp_path / "two", 2, 6, *extra)
    single, ddp = run_weights(tmp_path / "one"), run_weights(tmp_path / "two")
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], atol=1e-5, rtol=0)
