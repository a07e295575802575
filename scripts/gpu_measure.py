"""The measuring half of `scripts/gpu_check.sh`: one section per process, figures in a JSON file.

    python scripts/gpu_measure.py agreement  --out PART.json [--device cuda] [--seconds 30]
    python scripts/gpu_measure.py throughput --out PART.json [--device cuda] [--seconds 120]
    python scripts/gpu_measure.py nccl-probe --out PART.json

`scripts/gpu_check.py` starts each section in its own process, so that a CUDA error, which
spoils the whole process, costs one section only, and a section that overruns its time can be
stopped without losing what it measured: the file is rewritten (atomically) after every figure.

- agreement: the bundled models (`image-celeba89`, `nerf-chairs`) on the CPU and on the device:
  one encode and one render each, in fp32 (renders must agree to 1e-4) and in bf16 autocast
  (PSNR within 0.1 dB of the CPU's fp32); and which SDPA kernels (flash, memory-efficient) run.
- throughput: the device's bf16 and fp32 matmul rates, then at paper scale: encode latency
  (batch 1 and 64), renders of 1024^2 and 4096^2, and training steps of the paper presets
  (`celeba`, `chairs`) at their recipe's batch in fp32, bf16 and bf16 + torch.compile; each as
  a fraction of the measured bf16 matmul rate. `--smoke` shrinks every size (tiny presets, no
  compile): it tests this script on a CPU, its figures mean nothing.
- nccl-probe: a one-process NCCL group (the trainer's "cpu:gloo,cuda:nccl") all-reduces a GPU
  and a CPU tensor.

Nothing here touches CUDA at import time.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from models.core.metalearner import TransInr  # noqa: E402
from models.core.presets import preset_config  # noqa: E402
from models.core.rendering import psnr, render_image, render_quantized  # noqa: E402
from models.data.view_data import load_views, views_to_tokens_input  # noqa: E402
from models.io.bundle import bundled_dir  # noqa: E402
from models.io.checkpoint import Checkpoint, load_checkpoint  # noqa: E402
from models.io.images import fit_image, load_image  # noqa: E402
from models.io.safetensors_io import atomic_write  # noqa: E402
from models.nerf.rays import focal_from_angle, look_at_pose  # noqa: E402
from models.nerf.volume_rendering import render_view  # noqa: E402
from models.tasks.encoding import encode_batch  # noqa: E402
from models.tasks.objectives import ImageLoss, NerfObjective  # noqa: E402
from models.tasks.training import autocast, recipe  # noqa: E402

ASTRONAUT = REPO / "assets" / "examples" / "astronaut.jpg"
CHAIR = REPO / "assets" / "examples" / "chair"
FP32_TOLERANCE = 1e-4  # largest |render difference| between CPU and device in fp32
BF16_TOLERANCE_DB = 0.1  # largest PSNR difference of bf16 autocast from the CPU's fp32
CPU = torch.device("cpu")
COMPILE_SECONDS = 45.0  # time a torch.compile row needs left before its deadline to start


# --- bookkeeping ----------------------------------------------------------------------------


def clean(value: object) -> object:
    """A JSON-safe copy: non-finite floats become None, tuples lists, other objects text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def write_json(path: Path, data: dict) -> None:
    """Write `data` as JSON atomically (temporary file, fsync, rename)."""
    text = json.dumps(clean(data), indent=2, allow_nan=False) + "\n"
    atomic_write(Path(path), text.encode())


class Part:
    """A section's figures, rewritten to its file after every one, so none is lost."""

    def __init__(self, path: Path):
        self.path, self.data = Path(path), {}

    def put(self, key: str, value: object) -> None:
        self.data[key] = value
        write_json(self.path, self.data)

    def append(self, key: str, row: dict) -> None:
        self.data.setdefault(key, []).append(row)
        write_json(self.path, self.data)


def error_text(error: BaseException) -> str:
    """One line naming an exception, and the innermost frame of ours that raised it."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if str(REPO) in f.filename]
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first[:300]}{where}"


def guarded(part: Part, key: str, measure: Callable[[], object], append: bool = False) -> bool:
    """Run one measurement and record its result, or its error, under `key`; True if it ran."""
    try:
        value = measure()
    except Exception as error:  # a failing figure must not lose the others
        value = {"error": error_text(error)}
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    (part.append if append else part.put)(key, value)
    return not (isinstance(value, dict) and "error" in value)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_runs(
    run: Callable[[], object], device: torch.device, warmup: int, repeats: int, deadline: float
) -> list[float]:
    """Seconds of `repeats` calls after `warmup` (the device waited for); stops early, after at
    least one timed call, when the monotonic `deadline` has passed."""
    for _ in range(warmup):
        run()
    seconds: list[float] = []
    for _ in range(repeats):
        if seconds and time.monotonic() > deadline:
            break
        sync(device)
        started = time.perf_counter()
        run()
        sync(device)
        seconds.append(time.perf_counter() - started)
    return seconds


def timing(seconds: list[float]) -> dict:
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "n": len(seconds)}


def counted_flops(run: Callable[[], object]) -> int:
    """FLOPs torch's counter sees in one call (matmuls and attention)."""
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


# --- agreement: the bundled models on the CPU and on the device ------------------------------


def bundled_checkpoint(name: str) -> Checkpoint:
    return load_checkpoint(bundled_dir() / f"{name}.safetensors")


def image_pass(checkpoint: Checkpoint, image: torch.Tensor, device: torch.device, precision: str):
    """Encode one fitted image (1, 3, S, S) and render it at S and at 4 S: (native, large)."""
    model = checkpoint.build_model(device).eval()
    size, inr = image.shape[-1], checkpoint.config.inr
    with autocast(device, precision):
        weights = [w.float() for w in encode_batch(model, image.to(device))]
        native = render_image(weights, inr, size, size)
        large = render_image(weights, inr, 4 * size, 4 * size, chunk_pixels=1 << 16)
    return native, large


def image_agreement(device: torch.device) -> dict:
    """The bundled image model on the astronaut: CPU fp32 against the device, fp32 and bf16."""
    checkpoint = bundled_checkpoint("image-celeba89")
    size = checkpoint.config.image_size
    image = fit_image(load_image(ASTRONAUT), size, "crop")[0][None]
    native_cpu, large_cpu = image_pass(checkpoint, image, CPU, "fp32")
    native_fp32, large_fp32 = image_pass(checkpoint, image, device, "fp32")
    native_bf16, _ = image_pass(checkpoint, image, device, "bf16")
    return agreement_figures(
        image, native_cpu, native_fp32, native_bf16, [(large_cpu, large_fp32)]
    ) | {"model": "image-celeba89", "input": ASTRONAUT.name, "renders": [size, 4 * size]}


def nerf_pass(checkpoint: Checkpoint, device: torch.device, precision: str) -> torch.Tensor:
    """Encode view 0 of the bundled chair and render its view 1 (1, 3, 128, 128)."""
    config = checkpoint.config
    support, query = load_views(CHAIR, [0]), load_views(CHAIR, [1])
    tokens = views_to_tokens_input(
        support.images[None], support.poses[None], support.focal, config.image_size
    )
    model = checkpoint.build_model(device).eval()
    side = query.images.shape[-1]
    with autocast(device, precision):
        weights = [w.float() for w in encode_batch(model, tokens.to(device))]
        pose = query.poses[:1].to(device)
        render = render_view(weights, config.inr, config.sampling, pose, side, side, query.focal)
    return render.float().permute(0, 3, 1, 2)


def nerf_agreement(device: torch.device) -> dict:
    """The bundled NeRF model on the example chair: a novel view, CPU against the device."""
    checkpoint = bundled_checkpoint("nerf-chairs")
    target = load_views(CHAIR, [1]).images[:1]
    cpu = nerf_pass(checkpoint, CPU, "fp32")
    fp32 = nerf_pass(checkpoint, device, "fp32")
    bf16 = nerf_pass(checkpoint, device, "bf16")
    figures = agreement_figures(target, cpu, fp32, bf16, [])
    return figures | {"model": "nerf-chairs", "input": "chair view 0 -> view 1", "renders": [128]}


def agreement_figures(
    target: torch.Tensor,
    cpu: torch.Tensor,
    fp32: torch.Tensor,
    bf16: torch.Tensor,
    more_pairs: list[tuple[torch.Tensor, torch.Tensor]],
) -> dict:
    """Largest fp32 render difference (every pair) and the PSNRs against `target`."""
    pairs = [(cpu, fp32), *more_pairs]
    fp32_diff = largest_gap([a for a, _ in pairs], [b for _, b in pairs])
    psnr_cpu, psnr_fp32, psnr_bf16 = (
        psnr(render.cpu().flatten(1), target.flatten(1)).item() for render in (cpu, fp32, bf16)
    )
    bf16_gap = abs(psnr_bf16 - psnr_cpu)
    return {
        "fp32_max_abs_diff": fp32_diff,
        "fp32_tolerance": FP32_TOLERANCE,
        "fp32_ok": fp32_diff <= FP32_TOLERANCE,
        "psnr_cpu_fp32_db": psnr_cpu,
        "psnr_device_fp32_db": psnr_fp32,
        "psnr_device_bf16_db": psnr_bf16,
        "bf16_psnr_gap_db": bf16_gap,
        "bf16_tolerance_db": BF16_TOLERANCE_DB,
        "bf16_ok": bf16_gap <= BF16_TOLERANCE_DB,
    }


def largest_gap(first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    """Largest |difference| between two lists of tensors, compared on the CPU in float32."""
    pairs = zip(first, second, strict=True)
    return max((a.float().cpu() - b.float().cpu()).abs().max().item() for a, b in pairs)


def sdpa_kernels(device: torch.device) -> dict:
    """Which fused attention kernels run the bundled image model, and how far each is from
    the math kernel: flash in bf16, memory-efficient in fp32 and bf16."""
    if device.type != "cuda":
        return {"skipped": "fused attention kernels are CUDA kernels"}
    from torch.nn.attention import SDPBackend, sdpa_kernel

    checkpoint = bundled_checkpoint("image-celeba89")
    size = checkpoint.config.image_size
    image = fit_image(load_image(ASTRONAUT), size, "crop")[0][None].to(device)
    model = checkpoint.build_model(device).eval()
    results = {}
    for precision in ("fp32", "bf16"):
        with sdpa_kernel(SDPBackend.MATH), autocast(device, precision):
            reference = encode_batch(model, image)
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            name = f"{backend.name.lower()}_{precision}"
            try:
                with sdpa_kernel(backend), autocast(device, precision):
                    weights = encode_batch(model, image)
            except RuntimeError as error:  # this kernel cannot take these inputs
                results[name] = {"runs": False, "error": error_text(error)}
                continue
            results[name] = {"runs": True, "max_abs_diff_vs_math": largest_gap(weights, reference)}
    return results


def device_facts(device: torch.device) -> dict:
    """The device as torch sees it, and the versions of what runs on it."""
    facts = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda}
    if device.type != "cuda":
        return facts
    properties = torch.cuda.get_device_properties(device)
    return facts | {
        "name": properties.name,
        "capability": f"{properties.major}.{properties.minor}",
        "memory_gib": properties.total_memory / 2**30,
        "multiprocessors": properties.multi_processor_count,
        "device_count": torch.cuda.device_count(),
        "bf16_supported": torch.cuda.is_bf16_supported(),
        "cudnn": torch.backends.cudnn.version(),
        "nccl": ".".join(map(str, torch.cuda.nccl.version())),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def run_agreement(part: Part, device: torch.device) -> None:
    guarded(part, "device_facts", lambda: device_facts(device))
    guarded(part, "image", lambda: image_agreement(device))
    guarded(part, "nerf", lambda: nerf_agreement(device))
    guarded(part, "sdpa_kernels", lambda: sdpa_kernels(device))


# --- throughput at paper scale ---------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """What the throughput section measures: the paper's sizes, or toy ones (--smoke)."""

    image_preset: str
    nerf_preset: str
    encode_batches: tuple[int, ...]
    render_sizes: tuple[int, ...]
    large_chunk: int  # a render chunk sized for a GPU, beside render's default
    matmul_size: int
    repeats: int
    compile: bool


PAPER = Scale("celeba", "chairs", (1, 64), (1024, 4096), 1 << 20, 8192, 8, True)
SMOKE = Scale("tiny", "tiny", (1, 4), (64, 128), 1 << 12, 256, 2, False)


def matmul_rate(device: torch.device, dtype: torch.dtype, size: int, deadline: float) -> dict:
    """torch.mm of two size x size random matrices: TFLOP/s (fp32 without TF32)."""
    left = torch.randn(size, size, device=device, dtype=dtype)
    right = torch.randn(size, size, device=device, dtype=dtype)
    seconds = timed_runs(lambda: torch.mm(left, right), device, 3, 20, deadline)
    stats = timing(seconds)
    return {
        "size": size,
        "dtype": str(dtype),
        **stats,
        "tflops": 2 * size**3 / stats["median_s"] / 1e12,
    }


def fraction(flops: float | None, seconds: float, rates: dict) -> dict:
    """Achieved TFLOP/s and its share of the measured bf16 (and fp32) matmul rates."""
    if not flops:
        return {}
    achieved = flops / seconds / 1e12
    shares = {
        f"fraction_of_{name}_matmul": achieved / rate["tflops"]
        for name, rate in rates.items()
        if isinstance(rate, dict) and rate.get("tflops")
    }
    return {"tflops": achieved, **shares}


def paper_model(preset: str, device: torch.device, task: str = "image") -> TransInr:
    torch.manual_seed(0)
    return TransInr(preset_config(preset, task)).to(device)


def encode_rows(scale: Scale, device: torch.device, rates: dict, deadline: float) -> list[dict]:
    """Encode latency of the image paper preset per batch and precision (inference mode)."""
    model = paper_model(scale.image_preset, device).eval()
    size = model.config.image_size
    rows = []
    for batch in scale.encode_batches:
        images = torch.rand(batch, 3, size, size, device=device)
        flops = counted_flops(lambda images=images: encode_batch(model, images))
        for precision in ("fp32", "bf16"):

            def run(images=images, precision=precision) -> None:
                with autocast(device, precision):
                    encode_batch(model, images)

            stats = timing(timed_runs(run, device, 2, scale.repeats, deadline))
            rows.append(
                {
                    "preset": scale.image_preset,
                    "batch": batch,
                    "precision": precision,
                    **stats,
                    "latency_ms": 1e3 * stats["median_s"],
                    "images_per_s": batch / stats["median_s"],
                    "gflop": flops / 1e9,
                    **fraction(flops, stats["median_s"], rates),
                }
            )
    return rows


def render_rows(scale: Scale, device: torch.device, rates: dict, deadline: float) -> list[dict]:
    """render_quantized (what `transinr render` runs) of one paper-preset INR, at each size,
    with render's default chunk and with a GPU-sized chunk; FLOPs as executed (counted)."""
    import inspect

    model = paper_model(scale.image_preset, device).eval()
    size = model.config.image_size
    weights = encode_batch(model, torch.rand(1, 3, size, size, device=device))
    inr = model.config.inr
    default = inspect.signature(render_quantized).parameters["chunk_pixels"].default
    rows = []
    for side in scale.render_sizes:
        for chunk in sorted({default, scale.large_chunk}):
            if time.monotonic() > deadline:
                rows.append({"size": side, "chunk_pixels": chunk, "skipped": "out of time"})
                continue

            def run(side=side, chunk=chunk) -> None:
                render_quantized(weights, inr, side, side, chunk_pixels=chunk)

            flops = render_flops(weights, inr, side, chunk)  # also a warm-up
            warmup, repeats = (1, 3) if side <= 1024 else (0, 2)
            stats = timing(timed_runs(run, device, warmup, repeats, deadline))
            rows.append(
                {
                    "size": side,
                    "chunk_pixels": chunk,
                    "default_chunk": chunk == default,
                    **stats,
                    "megapixels_per_s": side * side / stats["median_s"] / 1e6,
                    "gflop_executed": flops / 1e9,
                    **fraction(flops, stats["median_s"], rates),
                }
            )
    return rows


def render_flops(weights: list[torch.Tensor], inr, side: int, chunk: int) -> float:
    """FLOPs of a side x side render_quantized, counted on a strip of up to 16 of its chunks
    and scaled: every chunk of rows does the same work (the column part is redone per chunk)."""
    rows_per_chunk = max(1, chunk // side)  # as models.core.rendering.iter_row_chunks
    chunks = math.ceil(side / rows_per_chunk)
    sample = min(chunks, 16)
    strip = min(side, rows_per_chunk * sample)
    flops = counted_flops(lambda: render_quantized(weights, inr, strip, side, chunk_pixels=chunk))
    return flops * chunks / sample


class TrainStep:
    """One training step as `models.tasks.training.train` takes it (the objective, autocast, fused
    Adam), on a fixed random batch already in memory."""

    def __init__(
        self, task: str, preset: str, device: torch.device, precision: str, compiled: bool
    ):
        settings = recipe(preset, task)
        self.model = paper_model(preset, device, task).train()
        self.forward = torch.compile(self.model) if compiled else self.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.lr, fused=True)
        self.device, self.precision, self.task = device, precision, task
        self.batch_size, self.step = settings.batch_size, 0
        config = self.model.config
        generator = torch.Generator().manual_seed(1)
        if task == "image":
            size = config.image_size
            self.images = torch.rand(self.batch_size, 3, size, size, generator=generator)
            self.images = self.images.to(device)
            self.loss_fn = ImageLoss(config, device)
        else:
            self.objective = NerfObjective(
                config, device, [], 0, settings.support_views, settings.rays_per_object,
                settings.foreground_epochs, settings.seed,
            )  # fmt: skip
            self.epoch = settings.foreground_epochs  # past the foreground epochs: uniform rays
            self.views = nerf_batch(self.batch_size, generator)

    def loss(self) -> torch.Tensor:
        if self.task == "image":
            return self.loss_fn(self.forward(self.images), self.images)[0]
        loss, _ = self.objective.loss(self.forward, self.views, self.step, self.epoch)
        return loss

    def __call__(self) -> None:
        with autocast(self.device, self.precision):
            loss = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1


def nerf_batch(objects: int, generator: torch.Generator, views: int = 4, side: int = 128):
    """A view-synthesis batch as the loader gives it: random colours (content does not change
    the speed), cameras on a sphere of radius 4: images, poses, focal."""
    images = torch.rand(objects, views, 3, side, side, generator=generator)
    poses = torch.stack([look_at_pose(90.0 * v, 30.0, 4.0) for v in range(views)]).float()
    focal = torch.full((objects,), focal_from_angle(side, 0.6911))
    return images, poses.expand(objects, -1, -1, -1).contiguous(), focal


def train_row(
    plan: tuple[str, str, str, bool], device: torch.device, repeats: int, deadline: float
) -> dict:
    """Median step time of one (task, preset, precision, compiled) variant, its FLOPs counted
    in an eager step, and peak memory; with compile, the first step's seconds (compiling)."""
    task, preset, precision, compiled = plan
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step = TrainStep(task, preset, device, precision, compiled)
    row = {"batch": step.batch_size}
    if compiled:
        sync(device)
        started = time.perf_counter()
        step()
        sync(device)
        row["first_step_s"] = time.perf_counter() - started
    else:
        row["gflop_per_step"] = counted_flops(step) / 1e9  # also the first warm-up step
    stats = timing(timed_runs(step, device, 1, repeats, deadline))
    row |= {**stats, "ms_per_step": 1e3 * stats["median_s"]}
    row["items_per_s"] = step.batch_size / stats["median_s"]
    if device.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def train_plan(scale: Scale) -> list[tuple[str, str, str, bool]]:
    """(task, preset, precision, compiled) in the order measured: eager first, compile last."""
    presets = [("image", scale.image_preset), ("nerf", scale.nerf_preset)]
    plan = [(task, preset, p, False) for task, preset in presets for p in ("fp32", "bf16")]
    return plan + [(task, preset, "bf16", True) for task, preset in presets]


def train_rows(part: Part, scale: Scale, device: torch.device, rates: dict, deadline: float):
    """Every training-step variant, one row each (measured, failed or skipped); a compiled
    step's FLOPs are its eager step's."""
    flops: dict[str, float] = {}
    for plan in train_plan(scale):
        task, preset, precision, compiled = plan
        label = {"task": task, "preset": preset, "precision": precision, "compile": compiled}
        if compiled and not scale.compile:
            part.append("train", label | {"skipped": "no torch.compile in a smoke run"})
            continue
        if time.monotonic() > deadline - (COMPILE_SECONDS if compiled else 5):
            part.append("train", label | {"skipped": "out of time"})
            continue
        try:
            row = label | train_row(plan, device, scale.repeats, deadline)
        except Exception as error:  # a failing variant must not lose the others
            part.append("train", label | {"error": error_text(error)})
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        gflop = row.get("gflop_per_step") or flops.get(preset)
        flops.setdefault(preset, gflop)
        if gflop:
            row |= fraction(gflop * 1e9, row["median_s"], rates)
        part.append("train", row)


def run_throughput(part: Part, device: torch.device, deadline: float, scale: Scale) -> None:
    part.put("scale", scale.__dict__ | {"smoke": scale is SMOKE})
    part.put("float32_matmul_precision", torch.get_float32_matmul_precision())
    rates = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        measure = lambda d=dtype: matmul_rate(device, d, scale.matmul_size, deadline)  # noqa: E731
        if guarded(part, f"matmul_{name}", measure):
            rates[name] = part.data[f"matmul_{name}"]
    guarded(part, "encode", lambda: encode_rows(scale, device, rates, deadline))
    guarded(part, "render", lambda: render_rows(scale, device, rates, deadline))
    train_rows(part, scale, device, rates, deadline)


# --- NCCL ------------------------------------------------------------------------------------


def nccl_probe(part: Part) -> None:
    """A one-process group over the trainer's backends: all-reduce a GPU and a CPU tensor."""
    import torch.distributed as dist

    part.put("nccl_version", ".".join(map(str, torch.cuda.nccl.version())))
    store = dist.HashStore()
    dist.init_process_group("cpu:gloo,cuda:nccl", store=store, rank=0, world_size=1)
    try:
        on_gpu = torch.ones(4, device="cuda")
        on_cpu = torch.ones(4)
        dist.all_reduce(on_gpu)
        dist.all_reduce(on_cpu)
        dist.barrier()
        part.put("all_reduce_ok", bool(on_gpu.sum().item() == 4 and on_cpu.sum().item() == 4))
    finally:
        dist.destroy_process_group()


# --- entry point -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=("agreement", "throughput", "nccl-probe"))
    parser.add_argument("--out", type=Path, required=True, help="the section's JSON file")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--seconds", type=float, default=120.0, help="time to stop starting more")
    parser.add_argument("--smoke", action="store_true", help="toy sizes: tests this script")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU present: nothing to measure", file=sys.stderr)
        return 1
    device = torch.device(args.device)
    deadline = time.monotonic() + args.seconds
    part = Part(args.out)
    if args.section == "agreement":
        run_agreement(part, device)
    elif args.section == "throughput":
        run_throughput(part, device, deadline, SMOKE if args.smoke else PAPER)
    else:
        nccl_probe(part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
