"""CPU speed figures for the project issues: images (encode, render, train) and NeRF views.

Run from the repository root:

    python bench/speed.py                      # everything, about 8 minutes on 2 idle cores
    python bench/speed.py --quick              # fewer repeats, a smoke check
    python bench/speed.py --only encode,render # a subset: encode, render, train, presets,
                                               # nerf-render, nerf-refine, nerf-train, synth
    python bench/speed.py --json               # JSON on stdout, the tables go to stderr

Sections
  encode   `celeba` preset (44.46M params), one 178 x 178 image: our path (eval, inference mode,
           SDPA: `models.tasks.encoding.encode_batch`) against a plain reference forward of the same
           weights (naive attention, fp32, autograd on), outputs checked with allclose(1e-4).
  render   one `celeba` INR at 1024 x 1024 through `render_quantized`, against torch's own fp32
           matmul speed (`torch.mm` of two 2048 x 2048 matrices) measured in the same run; FLOPs
           nominal (per-pixel evaluation) and executed (separable first layer: `render_flops`).
  train    `celeba` at batch 2: forward + full-image MSE + backward + Adam step, fp32 and bf16,
           and the reference (naive attention, fp32, torch.optim.Adam defaults); plus the Adam
           step alone for each Adam implementation.
  presets  training speed of the CPU presets at their recipe's batch size, fp32 and bf16.

NeRF sections (view synthesis; the image sections above take about 4 minutes, these about 4 more)
  nerf-render  one 128 x 128 view through `render_view` (default chunk_points) of a NeRF INR from
           the paper preset `chairs` (128 samples a ray) and the CPU preset `small` (64): seconds,
           Mrays/s and the INR's matmul GFLOP/s (sum of 2 in out over the layers, per sample
           point; checked against torch's FLOP counter) against `torch.mm` in the same run; plus
           a brief chunk_points sweep for `chairs` on half a view. The INRs come from randomly
           initialised models encoding one random 9-channel view (speed does not depend on them).
  nerf-refine  the paper's test-time refinement (`refine` + `view_loss`: 1024 random rays of one
           support view a step, lr 1e-4, jittered samples) for both presets; the 100-step total
           is the first step + 99 x the median step unless all 100 steps are timed.
  nerf-train   `NerfObjective.loss` + backward + the trainer's Adam for the NeRF presets `small`
           (batch 8) and `tiny` (batch 4), fp32 and bf16, on a fixed batch of synthetic objects.
  synth    `models.data.synth.write_dataset` (50 views of 128 x 128 per object, the CLI's
           extent) for chairs, cars and lamps into a temporary folder: objects per second.

Timings are medians over repeats after warm-up; variants compared with each other are run
interleaved (round-robin), so background load spreads over them evenly. Each section also
reports how much CPU other processes used while it ran ("others"), from /proc/stat.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import default_collate
from torch.utils.flop_counter import FlopCounterMode

from models.core.config import INRConfig, ModelConfig
from models.core.inr import INRWeights, flops_per_point
from models.core.metalearner import TransInr
from models.core.presets import preset_config
from models.core.rendering import render_quantized
from models.data.synth import CAMERA_ANGLE_X, write_dataset
from models.data.view_data import PosedViews, ViewDataset
from models.nerf.rays import focal_from_angle, look_at_pose
from models.nerf.volume_rendering import render_view
from models.tasks import training
from models.tasks.encoding import encode_batch
from models.tasks.objectives import ImageLoss, NerfObjective
from models.tasks.refinement import refine, view_loss
from models.tasks.training import autocast, recipe

IMAGE_SECTIONS = ("encode", "render", "train", "presets")
NERF_SECTIONS = ("nerf-render", "nerf-refine", "nerf-train", "synth")
SECTIONS = IMAGE_SECTIONS + NERF_SECTIONS
CPU = torch.device("cpu")
TRAIN_STEP_GOAL_S = 3.0
RENDER_SIZE = 1024
CHUNK_OPTIONS = (2048, 4096, 16384, 65536)
MM_SIZE = 2048

NERF_VIEW = 128  # the paper's ShapeNet views: 128 x 128
NERF_PRESETS = ("chairs", "small")  # the paper's model and the CPU preset
NERF_CHUNK_OPTIONS = (1024, 4096, 16384, 262144)  # render_view's chunk_points, swept for `chairs`
NERF_POSE = look_at_pose(30.0, 30.0, 4.0)[None]  # a camera of the synthetic data (radius 4)
NERF_FOCAL = focal_from_angle(NERF_VIEW, CAMERA_ANGLE_X)
CAMERA_RAY_FLOPS = 2 * 3 * 3  # per ray: the camera rotation in camera_rays (a counted bmm)
REFINE_STEPS, REFINE_RAYS, REFINE_LR = 100, 1024, 1e-4  # the paper's test-time refinement
NERF_TRAIN_PRESETS = ("small", "tiny")
NERF_TRAIN_OBJECTS = 4  # synthetic chairs written for nerf-train (3 land in the train split)
SYNTH_CATEGORIES = ("chairs", "cars", "lamps")


@dataclass(frozen=True)
class Budget:
    """Warm-up and repeat counts per section (full run or --quick)."""

    encode_warmup: int
    encode_repeats: int
    mm_repeats: int  # torch.mm timings before the renders and again after each round
    render_rounds: int  # every chunk size is rendered this many times, interleaved
    train_warmup: int
    train_steps: int
    adam_repeats: int
    preset_warmup: int
    preset_steps: dict[str, int]
    nerf_rows: int  # rows of the 128-wide view per timed render (128: the whole view)
    nerf_rounds: int  # timed renders per preset, interleaved, torch.mm sampled after each round
    nerf_sweep_rows: int  # rows per chunk_points sweep render (64: half a view, 8192 rays)
    nerf_sweep_rounds: int  # sweep rounds, alternately in ascending and descending chunk order
    refine_steps: dict[str, int]  # timed refinement steps per preset, after one warm-up step
    nerf_train_warmup: int
    nerf_train_steps: dict[str, int]
    synth_objects: int  # per category


FULL = Budget(
    encode_warmup=2,
    encode_repeats=10,
    mm_repeats=6,
    render_rounds=2,
    train_warmup=1,
    train_steps=5,
    adam_repeats=10,
    preset_warmup=2,
    preset_steps={"celeba89": 8, "tiny": 30},
    nerf_rows=NERF_VIEW,
    nerf_rounds=2,
    nerf_sweep_rows=64,
    nerf_sweep_rounds=2,
    refine_steps={"chairs": 5, "small": 10},
    nerf_train_warmup=2,
    nerf_train_steps={"small": 8, "tiny": 30},
    synth_objects=6,
)
QUICK = Budget(
    encode_warmup=1,
    encode_repeats=3,
    mm_repeats=3,
    render_rounds=1,
    train_warmup=1,
    train_steps=2,
    adam_repeats=3,
    preset_warmup=1,
    preset_steps={"celeba89": 2, "tiny": 5},
    nerf_rows=8,
    nerf_rounds=1,
    nerf_sweep_rows=8,
    nerf_sweep_rounds=1,
    refine_steps={"chairs": 1, "small": 2},
    nerf_train_warmup=1,
    nerf_train_steps={"small": 2, "tiny": 5},
    synth_objects=1,
)


# --------------------------------------------------------------------------------------------
# Measurement helpers


def summary(seconds: list[float]) -> dict:
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "n": len(seconds),
        "samples_s": [round(s, 6) for s in seconds],
    }


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def round_robin(
    fns: dict[str, Callable[[], object]], warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Warm every function up, then time them interleaved; seconds per name."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds[name].append(timed(fn))
    return seconds


class CpuMeter:
    """CPU time used by other processes (and the hypervisor) over an interval, from /proc/stat."""

    def __init__(self) -> None:
        self.started = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as stat:
                fields = [int(v) for v in stat.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # up to steal
        own = sum(os.times()[:2])  # this process, user + system
        return time.perf_counter(), busy, own

    def others(self) -> dict | None:
        """{'cpu_s', 'share'}: other processes' CPU seconds and their share of all cores."""
        end = self._sample()
        if self.started is None or end is None:
            return None
        wall = end[0] - self.started[0]
        other = max(0.0, (end[1] - self.started[1]) - (end[2] - self.started[2]))
        cores = os.cpu_count() or 1
        return {"cpu_s": round(other, 2), "share": round(other / max(wall * cores, 1e-9), 3)}


def others_text(others: dict | None) -> str:
    if others is None:
        return "others: unknown"
    return f"others used {others['cpu_s']:.1f} CPU-s ({100 * others['share']:.0f}% of all cores)"


def machine_facts() -> dict:
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    config = torch.__config__.show()
    patterns = {
        "MKL": r"Math Kernel Library Version ([\d.]+)",
        "oneDNN": r"MKL-DNN v([\d.]+)",
        "OpenBLAS": r"OpenBLAS ?([\d.]*)",
    }
    blas = [
        f"{name} {match.group(1)}".strip()
        for name, pattern in patterns.items()
        if (match := re.search(pattern, config))
    ]
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "isa": isa,
        "libraries": blas,
        "mkldnn_bf16": bool(torch.backends.mkldnn.is_available())
        and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def trainer_adam_kwargs() -> dict:
    """The Adam options `models.tasks.training.train` passes (read from its source, so this follows
    edits there); only `fused` / `foreach` flags are recognised."""
    source = inspect.getsource(training.train)
    call = re.search(r"torch\.optim\.Adam\((.*?)\)\n", source)
    kwargs = {}
    for name in ("fused", "foreach"):
        match = re.search(rf"{name}\s*=\s*(True|False)", call.group(1) if call else "")
        if match:
            kwargs[name] = match.group(1) == "True"
    return kwargs


def adam_label(kwargs: dict) -> str:
    if kwargs.get("fused"):
        return "fused"
    if kwargs.get("foreach"):
        return "foreach"
    if kwargs:
        return "for-loop"
    try:  # what torch picks when neither is given (private helper; the label is cosmetic)
        from torch.optim.optimizer import _default_to_fused_or_foreach

        _, foreach = _default_to_fused_or_foreach([torch.zeros(1)], False, False)
        return f"default ({'foreach' if foreach else 'for-loop'} on CPU)"
    except (ImportError, TypeError, ValueError):
        return "default"


# --------------------------------------------------------------------------------------------
# Sections


class Shared:
    """The celeba model and test image, built once for the encode and render sections."""

    def __init__(self) -> None:
        self._model: TransInr | None = None

    @property
    def model(self) -> TransInr:
        if self._model is None:
            torch.manual_seed(0)
            self._model = TransInr(preset_config("celeba")).eval()
        return self._model

    @property
    def image(self) -> torch.Tensor:
        size = self.model.config.image_size
        return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))


def bench_encode(shared: Shared, budget: Budget) -> dict:
    model, image = shared.model, shared.image
    reference_attention = model.transformer.set_reference_attention
    params = sum(p.numel() for p in model.parameters())

    def run(naive: bool, inference: bool) -> Callable[[], object]:
        def call() -> object:
            reference_attention(naive)
            if inference:
                return encode_batch(model, image)  # eval + inference_mode + (here) SDPA
            return model(image)  # plain forward: autograd records the graph

        return call

    variants = {
        "ours": (run(False, True), "SDPA", "inference_mode"),
        "reference": (run(True, False), "naive", "autograd on"),
        "SDPA, autograd on": (run(False, False), "SDPA", "autograd on"),
        "naive, inference_mode": (run(True, True), "naive", "inference_mode"),
    }
    ours_out = variants["ours"][0]()
    reference_out = variants["reference"][0]()
    pairs = [(a, b.detach()) for a, b in zip(ours_out, reference_out, strict=True)]
    max_diff = max((a - b).abs().max().item() for a, b in pairs)
    agree = all(torch.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in pairs)
    if not agree:
        raise SystemExit(f"encode: our path and the reference disagree (max |diff| {max_diff:g})")
    del ours_out, reference_out, pairs

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        run(True, False)()  # naive attention: every FLOP is a counted matmul
    flops = counter.get_total_flops()

    seconds = round_robin(
        {name: v[0] for name, v in variants.items()},
        budget.encode_warmup,
        budget.encode_repeats,
    )
    reference_attention(False)
    reference_median = statistics.median(seconds["reference"])
    rows = []
    for name, (_, attention, grad) in variants.items():
        stats = summary(seconds[name])
        rows.append(
            {
                "path": name,
                "attention": attention,
                "grad_mode": grad,
                **stats,
                "gflops_per_s": flops / stats["median_s"] / 1e9,
                "speedup_vs_reference": reference_median / stats["median_s"],
            }
        )
    return {
        "preset": "celeba",
        "params": params,
        "input": list(image.shape),
        "gflop": flops / 1e9,
        "max_abs_diff": max_diff,
        "allclose_1e-4": agree,
        "speedup": reference_median / statistics.median(seconds["ours"]),
        "rows": rows,
    }


def render_flops(inr: INRConfig, height: int, width: int, chunk_pixels: int) -> dict:
    """Matmul FLOPs of a render, nominal and executed.

    nominal: flops_per_point x pixels, what evaluating the INR pixel by pixel costs.
    executed: what `grid_image_inr` via `iter_row_chunks` does. The first layer is separable:
    per chunk of rows, one (rows, 2n) @ (2n, width1) matmul for the row part and one
    (width, 2n) @ (2n, width1) for the column part (recomputed per chunk); then the hidden and
    output layers per pixel. Element-wise work (the broadcast add, ReLU, Fourier features) is
    not counted in either figure.
    """
    shapes = inr.layer_shapes()
    rows_per_chunk = max(1, chunk_pixels // width)  # as models.core.rendering.iter_row_chunks
    chunks = math.ceil(height / rows_per_chunk)
    axis_features, first_out = shapes[0][0] // inr.coord_dim, shapes[0][1]
    first_layer = 2 * axis_features * first_out * (height + chunks * width)
    per_pixel_rest = sum(2 * fan_in * fan_out for fan_in, fan_out in shapes[1:])
    return {
        "nominal": flops_per_point(inr) * height * width,
        "executed": first_layer + per_pixel_rest * height * width,
        "executed_first_layer": first_layer,
        "rows_per_chunk": rows_per_chunk,
        "chunks": chunks,
    }


class MatmulReference:
    """torch's own fp32 matmul speed: torch.mm of two MM_SIZE^2 float32 matrices.

    Sampled before the renders and again after each round of them, so background load during
    the section weighs on the reference as it does on the renders.
    """

    def __init__(self) -> None:
        self.left, self.right = torch.randn(MM_SIZE, MM_SIZE), torch.randn(MM_SIZE, MM_SIZE)
        self.seconds: list[float] = []
        round_robin({"mm": self.call}, 2, 0)

    def call(self) -> None:
        torch.mm(self.left, self.right)

    def sample(self, repeats: int) -> None:
        self.seconds += round_robin({"mm": self.call}, 0, repeats)["mm"]

    def result(self) -> dict:
        stats = summary(self.seconds)
        return {**stats, "gflops_per_s": 2 * MM_SIZE**3 / stats["median_s"] / 1e9}


def bench_render(shared: Shared, budget: Budget) -> dict:
    default_chunk = inspect.signature(render_quantized).parameters["chunk_pixels"].default
    chunk_options = sorted({*CHUNK_OPTIONS, default_chunk})
    inr = shared.model.config.inr
    weights = encode_batch(shared.model, shared.image)

    # Check the executed-FLOP formula against torch's FLOP counter on a short strip.
    strip_rows = 2 * render_flops(inr, 1, RENDER_SIZE, default_chunk)["rows_per_chunk"] + 1
    with FlopCounterMode(display=False) as counter:
        render_quantized(weights, inr, strip_rows, RENDER_SIZE, chunk_pixels=default_chunk)
    counted = counter.get_total_flops()
    formula = render_flops(inr, strip_rows, RENDER_SIZE, default_chunk)["executed"]

    reference = MatmulReference()
    reference.sample(budget.mm_repeats)

    def render(chunk: int, height: int = RENDER_SIZE) -> Callable[[], object]:
        return lambda: render_quantized(weights, inr, height, RENDER_SIZE, chunk_pixels=chunk)

    for chunk in chunk_options:  # warm-up: a few chunks of each size
        render(chunk, 2 * max(1, chunk // RENDER_SIZE))()
    seconds: dict[str, list[float]] = {str(chunk): [] for chunk in chunk_options}
    for _ in range(budget.render_rounds):
        for chunk in chunk_options:
            seconds[str(chunk)].append(timed(render(chunk)))
        reference.sample(budget.mm_repeats)
    mm = reference.result()
    pixels = RENDER_SIZE * RENDER_SIZE
    default_median = statistics.median(seconds[str(default_chunk)])
    chunks = []
    for chunk in chunk_options:
        stats = summary(seconds[str(chunk)])
        flops = render_flops(inr, RENDER_SIZE, RENDER_SIZE, chunk)
        executed_rate = flops["executed"] / stats["median_s"] / 1e9
        chunks.append(
            {
                "chunk_pixels": chunk,
                "default": chunk == default_chunk,
                **{k: flops[k] for k in ("rows_per_chunk", "chunks")},
                **stats,
                "megapixels_per_s": pixels / stats["median_s"] / 1e6,
                "nominal_gflop": flops["nominal"] / 1e9,
                "executed_gflop": flops["executed"] / 1e9,
                "nominal_gflops_per_s": flops["nominal"] / stats["median_s"] / 1e9,
                "executed_gflops_per_s": executed_rate,
                "ratio_to_mm": executed_rate / mm["gflops_per_s"],
                "speedup_vs_default": default_median / stats["median_s"],
            }
        )
    headline = next(row for row in chunks if row["default"])
    return {
        "size": [RENDER_SIZE, RENDER_SIZE],
        "default_chunk_pixels": default_chunk,
        "flops_per_point": flops_per_point(inr),
        "flop_formula_check": {
            "rows": strip_rows,
            "formula": formula,
            "counted": counted,
            "ok": formula == counted,
        },
        "mm": {"size": MM_SIZE, "dtype": "float32", **mm},
        "headline": headline,
        "chunks": chunks,
        "best_chunk_pixels": min(chunks, key=lambda row: row["median_s"])["chunk_pixels"],
    }


class TrainStep:
    """One training step as `models.tasks.training.train` runs it, on a fixed random batch."""

    def __init__(
        self,
        preset: str,
        batch: int,
        precision: str,
        naive_attention: bool,
        adam_kwargs: dict,
        lr: float,
    ):
        config = preset_config(preset)
        torch.manual_seed(0)  # every variant starts from the same weights
        self.model = TransInr(config).train()
        self.model.transformer.set_reference_attention(naive_attention)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, **adam_kwargs)
        self.loss = ImageLoss(config, CPU)
        size = config.image_size
        self.images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(2))
        self.precision = precision
        self.phases: list[tuple[float, float, float]] = []

    def forward_loss(self) -> torch.Tensor:
        loss, _ = self.loss(self.model(self.images), self.images)
        return loss

    def __call__(self) -> None:
        started = time.perf_counter()
        with autocast(CPU, self.precision):
            loss = self.forward_loss()
        forward = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        backward = time.perf_counter()
        self.optimizer.step()
        done = time.perf_counter()
        if not torch.isfinite(loss):
            raise SystemExit(f"training step diverged (loss {loss.item()})")
        self.phases.append((forward - started, backward - forward, done - backward))

    def phase_medians(self, last: int) -> dict:
        phases = self.phases[-last:]
        names = ("forward_loss_s", "backward_s", "optimizer_s")
        return {name: statistics.median(p[i] for p in phases) for i, name in enumerate(names)}


def bench_train(budget: Budget) -> dict:
    batch, lr = 2, recipe("celeba").lr
    ours_adam = trainer_adam_kwargs()
    variants = {
        "ours fp32": ("fp32", False, ours_adam),
        "ours bf16": ("bf16", False, ours_adam),
        "reference": ("fp32", True, {}),
    }
    steps = {
        name: TrainStep("celeba", batch, precision, naive, adam, lr)
        for name, (precision, naive, adam) in variants.items()
    }
    seconds = round_robin(steps, budget.train_warmup, budget.train_steps)
    rows = []
    for name, (precision, naive, adam) in variants.items():
        stats = summary(seconds[name])
        rows.append(
            {
                "variant": name,
                "attention": "naive" if naive else "SDPA",
                "precision": precision,
                "adam": adam_label(adam),
                "adam_kwargs": adam,
                **stats,
                **steps[name].phase_medians(budget.train_steps),
                "under_goal": stats["median_s"] < TRAIN_STEP_GOAL_S,
            }
        )
    params = [p for p in steps["ours fp32"].model.parameters()]
    del steps

    # The Adam step alone, each implementation on the same parameters and gradients.
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    adams = {adam_label({}): {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    optimizers = {name: torch.optim.Adam(params, lr=lr, **kw) for name, kw in adams.items()}
    adam_seconds = round_robin(
        {name: opt.step for name, opt in optimizers.items()}, 2, budget.adam_repeats
    )
    default_median = statistics.median(adam_seconds[adam_label({})])
    adam_rows = [
        {
            "adam": name,
            "kwargs": adams[name],
            **summary(adam_seconds[name]),
            "speedup_vs_default": default_median / statistics.median(adam_seconds[name]),
        }
        for name in adams
    ]
    return {
        "preset": "celeba",
        "batch": batch,
        "goal_s": TRAIN_STEP_GOAL_S,
        "trainer_adam_kwargs": ours_adam,
        "params": sum(p.numel() for p in params),
        "rows": rows,
        "adam_step": adam_rows,
        "fastest_adam": min(adam_rows, key=lambda row: row["median_s"])["adam"],
    }


def bench_presets(budget: Budget) -> dict:
    adam = trainer_adam_kwargs()
    rows = []
    for preset, steps_count in budget.preset_steps.items():
        train_config = recipe(preset)
        variants = {  # name: (precision, naive attention, Adam options)
            "fp32": ("fp32", False, adam),
            "bf16": ("bf16", False, adam),
            "reference": ("fp32", True, {}),  # naive attention, fp32, default Adam
        }
        steps = {
            name: TrainStep(preset, train_config.batch_size, precision, naive, kw, train_config.lr)
            for name, (precision, naive, kw) in variants.items()
        }
        seconds = round_robin(steps, budget.preset_warmup, steps_count)
        reference_median = statistics.median(seconds["reference"])
        for name, step in steps.items():
            precision, naive, kw = variants[name]
            stats = summary(seconds[name])
            rows.append(
                {
                    "preset": preset,
                    "batch": train_config.batch_size,
                    "precision": name if name == "reference" else precision,
                    "attention": "naive" if naive else "SDPA",
                    "speedup_vs_reference": reference_median / stats["median_s"],
                    "adam": adam_label(kw),
                    **stats,
                    "ms_per_step": 1e3 * stats["median_s"],
                    "images_per_s": train_config.batch_size / stats["median_s"],
                    **step.phase_medians(steps_count),
                }
            )
        del steps
    return {"rows": rows}


# --------------------------------------------------------------------------------------------
# NeRF sections


class NerfShared:
    """Per NeRF preset: its config and the INR weights a randomly initialised model generates
    from one random 9-channel view (1, 1, 9, S, S); built once for nerf-render and nerf-refine."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[ModelConfig, INRWeights, int]] = {}

    def get(self, preset: str) -> tuple[ModelConfig, INRWeights, int]:
        """(config, weights, meta-learner parameter count)."""
        if preset not in self._items:
            config = preset_config(preset, "nerf")
            torch.manual_seed(0)
            model = TransInr(config).eval()
            size = config.image_size
            views = torch.rand(1, 1, 9, size, size, generator=torch.Generator().manual_seed(3))
            weights = [w.clone() for w in encode_batch(model, views)]  # out of inference mode
            params = sum(p.numel() for p in model.parameters())
            self._items[preset] = (config, weights, params)
        return self._items[preset]


def nerf_flops(inr: INRConfig, rays: int, samples: int) -> int:
    """The INR's matmul FLOPs for `rays` rays of `samples` points: sum over the layers of
    2 in out, per point (`flops_per_point`). Fourier features, sampling and compositing are
    element-wise and not counted."""
    return flops_per_point(inr) * rays * samples


def bench_nerf_render(nerf: NerfShared, budget: Budget) -> dict:
    default_chunk = inspect.signature(render_view).parameters["chunk_points"].default
    chunk_options = sorted({*NERF_CHUNK_OPTIONS, default_chunk})

    def render(preset: str, rows: int, chunk: int = default_chunk) -> Callable[[], object]:
        config, weights, _ = nerf.get(preset)
        # `rows` rows of the view's width (same focal): every ray costs the same, so a strip
        # times like the matching part of the full view.
        return lambda: render_view(
            weights, config.inr, config.sampling, NERF_POSE, rows, NERF_VIEW, NERF_FOCAL, chunk
        )

    # Check the FLOP formula against torch's FLOP counter on a 2-row strip.
    checks = {}
    for preset in NERF_PRESETS:
        config = nerf.get(preset)[0]
        with FlopCounterMode(display=False) as counter:
            render(preset, 2)()
        rays = 2 * NERF_VIEW
        formula = nerf_flops(config.inr, rays, config.samples)
        counted = counter.get_total_flops()
        camera = CAMERA_RAY_FLOPS * rays
        checks[preset] = {
            "rays": rays,
            "formula_inr": formula,
            "camera_rays": camera,
            "counted": counted,
            "ok": counted == formula + camera,
        }

    reference = MatmulReference()
    reference.sample(budget.mm_repeats)
    for preset in NERF_PRESETS:  # warm-up: one row
        render(preset, 1)()
    seconds: dict[str, list[float]] = {preset: [] for preset in NERF_PRESETS}
    for _ in range(budget.nerf_rounds):
        for preset in NERF_PRESETS:
            seconds[preset].append(timed(render(preset, budget.nerf_rows)))
        reference.sample(budget.mm_repeats)

    sweep_preset = NERF_PRESETS[0]
    sweep_seconds: dict[str, list[float]] = {str(chunk): [] for chunk in chunk_options}
    for index in range(budget.nerf_sweep_rounds):  # alternate the order: drift spreads evenly
        for chunk in chunk_options if index % 2 == 0 else chunk_options[::-1]:
            strip = render(sweep_preset, budget.nerf_sweep_rows, chunk)
            sweep_seconds[str(chunk)].append(timed(strip))
        reference.sample(budget.mm_repeats)
    mm = reference.result()

    rows = []
    for preset in NERF_PRESETS:
        config, _, params = nerf.get(preset)
        stats = summary(seconds[preset])
        rays = budget.nerf_rows * NERF_VIEW
        flops = nerf_flops(config.inr, rays, config.samples)
        rate = flops / stats["median_s"] / 1e9
        rows.append(
            {
                "preset": preset,
                "params": params,
                "samples": config.samples,
                "layer_shapes": config.inr.layer_shapes(),
                "flops_per_point": flops_per_point(config.inr),
                "rows": budget.nerf_rows,
                "rays": rays,
                "gflop": flops / 1e9,
                **stats,
                "seconds_per_view": stats["median_s"] * NERF_VIEW / budget.nerf_rows,
                "megarays_per_s": rays / stats["median_s"] / 1e6,
                "gflops_per_s": rate,
                "ratio_to_mm": rate / mm["gflops_per_s"],
                "flop_formula_check": checks[preset],
            }
        )

    sweep_config = nerf.get(sweep_preset)[0]
    sweep_rays = budget.nerf_sweep_rows * NERF_VIEW
    sweep_flops = nerf_flops(sweep_config.inr, sweep_rays, sweep_config.samples)
    default_median = statistics.median(sweep_seconds[str(default_chunk)])
    sweep = []
    for chunk in chunk_options:
        stats = summary(sweep_seconds[str(chunk)])
        rate = sweep_flops / stats["median_s"] / 1e9
        sweep.append(
            {
                "chunk_points": chunk,
                "default": chunk == default_chunk,
                "chunks": math.ceil(sweep_rays / max(1, chunk // sweep_config.samples)),
                **stats,
                "megarays_per_s": sweep_rays / stats["median_s"] / 1e6,
                "gflops_per_s": rate,
                "ratio_to_mm": rate / mm["gflops_per_s"],
                "speedup_vs_default": default_median / stats["median_s"],
            }
        )
    return {
        "view": [NERF_VIEW, NERF_VIEW],
        "default_chunk_points": default_chunk,
        "mm": {"size": MM_SIZE, "dtype": "float32", **mm},
        "rows": rows,
        "sweep": {
            "preset": sweep_preset,
            "rows": budget.nerf_sweep_rows,
            "rays": sweep_rays,
            "gflop": sweep_flops / 1e9,
            "chunks": sweep,
        },
        "best_chunk_points": min(sweep, key=lambda row: row["median_s"])["chunk_points"],
    }


def bench_nerf_refine(nerf: NerfShared, budget: Budget) -> dict:
    generator = torch.Generator().manual_seed(4)
    support = PosedViews(
        torch.rand(1, 3, NERF_VIEW, NERF_VIEW, generator=generator),
        NERF_POSE,
        NERF_FOCAL,
        CAMERA_ANGLE_X,
    )
    rows = []
    for preset in NERF_PRESETS:
        config, weights, _ = nerf.get(preset)
        loss_fn = view_loss(config.inr, config.sampling, support, REFINE_RAYS)
        timed_steps = budget.refine_steps[preset]
        stamps = [time.perf_counter()]
        losses: list[float] = []

        def on_step(step: int, loss: float, stamps=stamps, losses=losses) -> None:
            stamps.append(time.perf_counter())
            losses.append(loss)

        refine(weights, loss_fn, 1 + timed_steps, REFINE_LR, on_step)
        steps_s = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
        stats = summary(steps_s[1:])  # the first step (Adam state, first allocations) is warm-up
        measured_all = len(steps_s) >= REFINE_STEPS
        rows.append(
            {
                "preset": preset,
                "samples": config.samples,
                "rays_per_step": REFINE_RAYS,
                "lr": REFINE_LR,
                "warmup_step_s": steps_s[0],
                **stats,
                "ms_per_step": 1e3 * stats["median_s"],
                "timed_s": sum(steps_s[1:]),
                "paper_steps": REFINE_STEPS,
                "paper_total_s": (  # measured, or the first step + the median for the rest
                    sum(steps_s[:REFINE_STEPS])
                    if measured_all
                    else steps_s[0] + (REFINE_STEPS - 1) * stats["median_s"]
                ),
                "paper_total_estimated": not measured_all,
                "rays_per_s": REFINE_RAYS / stats["median_s"],
                "megasamples_per_s": REFINE_RAYS * config.samples / stats["median_s"] / 1e6,
                "losses_finite": all(math.isfinite(v) for v in losses),
            }
        )
    return {"rows": rows}


def nerf_batch(objects: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training batch as the DataLoader builds it: images (B, V, 3, H, W), poses (B, V, 4, 4),
    focal (B,), from a few synthetic chairs (the train split's objects, repeated)."""
    with tempfile.TemporaryDirectory(prefix="transinr-bench-") as folder:
        write_dataset(Path(folder), "chairs", NERF_TRAIN_OBJECTS, views=25, extent=1.0)
        dataset = ViewDataset(folder, "chairs", "train")
        items = [dataset[index % len(dataset)] for index in range(objects)]
    return default_collate(items)


class NerfTrainStep(TrainStep):
    """One NeRF training step as `models.tasks.training.train` runs it (NerfObjective), on a
    fixed batch."""

    def __init__(
        self,
        preset: str,
        batch: tuple,
        precision: str,
        adam_kwargs: dict,
        naive_attention: bool = False,
    ):
        config, train_config = preset_config(preset, "nerf"), recipe(preset, "nerf")
        torch.manual_seed(0)  # every variant starts from the same weights
        self.model = TransInr(config).train()
        self.model.transformer.set_reference_attention(naive_attention)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=train_config.lr, **adam_kwargs
        )
        self.objective = NerfObjective(
            config,
            CPU,
            [],
            0,
            train_config.support_views,
            train_config.rays_per_object,
            train_config.foreground_epochs,
            train_config.seed,
        )
        self.batch = tuple(t[: train_config.batch_size] for t in batch)
        self.epoch = train_config.foreground_epochs  # past the foreground epochs: uniform rays
        self.step = 0
        self.precision = precision
        self.phases = []

    def forward_loss(self) -> torch.Tensor:
        loss, _ = self.objective.loss(self.model, self.batch, self.step, self.epoch)
        self.step += 1
        return loss


def bench_nerf_train(budget: Budget) -> dict:
    adam = trainer_adam_kwargs()
    largest = max(recipe(preset, "nerf").batch_size for preset in NERF_TRAIN_PRESETS)
    batch = nerf_batch(largest)
    rows = []
    for preset in NERF_TRAIN_PRESETS:
        config, train_config = preset_config(preset, "nerf"), recipe(preset, "nerf")
        steps_count = budget.nerf_train_steps[preset]
        variants = {  # name: (precision, naive attention, Adam options)
            "fp32": ("fp32", False, adam),
            "bf16": ("bf16", False, adam),
            "reference": ("fp32", True, {}),  # naive attention, fp32, default Adam
        }
        steps = {
            name: NerfTrainStep(preset, batch, precision, kw, naive)
            for name, (precision, naive, kw) in variants.items()
        }
        seconds = round_robin(steps, budget.nerf_train_warmup, steps_count)
        reference_median = statistics.median(seconds["reference"])
        rays = train_config.batch_size * train_config.rays_per_object
        for name, step in steps.items():
            precision, naive, kw = variants[name]
            precision = name if name == "reference" else precision
            stats = summary(seconds[name])
            rows.append(
                {
                    "preset": preset,
                    "batch": train_config.batch_size,
                    "support_views": train_config.support_views,
                    "rays_per_object": train_config.rays_per_object,
                    "samples": config.samples,
                    "precision": precision,
                    "attention": "naive" if naive else "SDPA",
                    "speedup_vs_reference": reference_median / stats["median_s"],
                    "adam": adam_label(kw),
                    **stats,
                    "ms_per_step": 1e3 * stats["median_s"],
                    "rays_per_s": rays / stats["median_s"],
                    "objects_per_s": train_config.batch_size / stats["median_s"],
                    **step.phase_medians(steps_count),
                }
            )
        del steps
    return {
        "batch_shapes": {
            name: list(t.shape) for name, t in zip(("images", "poses", "focal"), batch, strict=True)
        },
        "rows": rows,
    }


def cli_synth_extent() -> float:
    """The extent `transinr data synth` uses by default (read from the command, so this follows
    edits there)."""
    try:
        from transinr_cli.data import synth

        default = inspect.signature(synth).parameters["extent"].default
        return float(default)
    except (ImportError, KeyError, TypeError, ValueError):
        return 1.0


def bench_synth(budget: Budget) -> dict:
    extent = cli_synth_extent()
    defaults = inspect.signature(write_dataset).parameters
    views, size = defaults["views"].default, defaults["size"].default
    rows = []
    with tempfile.TemporaryDirectory(prefix="transinr-bench-") as folder:
        write_dataset(Path(folder) / "warm-up", "chairs", 1, views=2, size=32, extent=extent)
        for category in SYNTH_CATEGORIES:
            stamps = [time.perf_counter()]
            write_dataset(
                Path(folder) / category,
                category,
                budget.synth_objects,
                extent=extent,
                on_object=lambda index, stamps=stamps: stamps.append(time.perf_counter()),
            )
            total = time.perf_counter() - stamps[0]
            per_object = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
            rows.append(
                {
                    "category": category,
                    "objects": budget.synth_objects,
                    "views": views,
                    "size": size,
                    "extent": extent,
                    "total_s": total,
                    "objects_per_s": budget.synth_objects / total,
                    "views_per_s": budget.synth_objects * views / total,
                    **summary(per_object),
                }
            )
    return {"extent": extent, "views": views, "size": size, "rows": rows}


# --------------------------------------------------------------------------------------------
# Output


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:,.1f}"


def machine_table(facts: dict, budget_name: str) -> Table:
    table = Table(title="Machine", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("torch", f"{facts['torch']} (Python {facts['python']})")
    table.add_row("CPU", f"{facts['cpu_model']}, {facts['logical_cpus']} logical CPUs")
    table.add_row(
        "threads", f"{facts['torch_threads']} intra-op, {facts['torch_interop_threads']} inter-op"
    )
    table.add_row("ISA", " ".join(facts["isa"]) or "-")
    table.add_row("libraries", ", ".join(facts["libraries"]) or "-")
    table.add_row("oneDNN bf16", "yes" if facts["mkldnn_bf16"] else "no")
    table.add_row("load average", " ".join(str(v) for v in facts["load_average"]))
    table.add_row("budget", budget_name)
    return table


def encode_table(result: dict) -> Table:
    table = Table(
        title=(
            f"Encode latency: {result['preset']} ({result['params'] / 1e6:.2f}M params), "
            f"input {tuple(result['input'])}, {result['gflop']:.1f} GFLOP"
        ),
        caption=(
            f"ours vs reference: x{result['speedup']:.2f}; outputs allclose(1e-4): "
            f"{result['allclose_1e-4']} (max |diff| {result['max_abs_diff']:.2e}); "
            f"{others_text(result.get('others'))}"
        ),
        title_justify="left",
    )
    for name in ("path", "attention", "grad mode"):
        table.add_column(name)
    for name in ("median ms", "min ms", "max ms", "n", "GFLOP/s", "vs reference"):
        table.add_column(name, justify="right")
    for row in result["rows"]:
        table.add_row(
            row["path"],
            row["attention"],
            row["grad_mode"],
            ms(row["median_s"]),
            ms(row["min_s"]),
            ms(row["max_s"]),
            str(row["n"]),
            f"{row['gflops_per_s']:.1f}",
            f"x{row['speedup_vs_reference']:.2f}",
            style="bold" if row["path"] in ("ours", "reference") else "dim",
        )
    return table


def render_tables(result: dict) -> list[Table]:
    head, mm, check = result["headline"], result["mm"], result["flop_formula_check"]
    size = "x".join(str(v) for v in result["size"])
    check_text = (
        "executed-FLOP formula matches torch's FLOP counter"
        if check["ok"]
        else f"[red]executed-FLOP formula {check['formula']} != counted {check['counted']}[/]"
    )
    headline = Table(
        title=f"Render throughput: one celeba INR at {size}, render_quantized (uint8)",
        caption=(
            f"nominal = flops_per_point ({result['flops_per_point']:,}) x pixels; executed = "
            "separable first layer per row/column (+ column part per chunk) + hidden and output "
            f"layers per pixel; {check_text}; {others_text(result.get('others'))}"
        ),
        title_justify="left",
    )
    for name in ("what", "median", "n", "GFLOP", "GFLOP/s", "vs torch.mm"):
        table_justify = "left" if name == "what" else "right"
        headline.add_column(name, justify=table_justify)
    headline.add_row(
        f"torch.mm {mm['size']}^2 fp32 (reference)",
        f"{ms(mm['median_s'])} ms",
        str(mm["n"]),
        f"{2 * mm['size'] ** 3 / 1e9:.1f}",
        f"{mm['gflops_per_s']:.1f}",
        "1.00",
    )
    headline.add_row(
        f"render, executed FLOPs (chunk {head['chunk_pixels']})",
        f"{head['median_s']:.2f} s",
        str(head["n"]),
        f"{head['executed_gflop']:.1f}",
        f"{head['executed_gflops_per_s']:.1f}",
        f"[bold]{head['ratio_to_mm']:.2f}[/]",
        style="bold",
    )
    headline.add_row(
        "render, nominal FLOPs (per-pixel equivalent)",
        f"{head['median_s']:.2f} s",
        str(head["n"]),
        f"{head['nominal_gflop']:.1f}",
        f"{head['nominal_gflops_per_s']:.1f}",
        f"{head['nominal_gflops_per_s'] / mm['gflops_per_s']:.2f}",
    )

    sweep = Table(
        title=f"Render chunk size at {size} (default {result['default_chunk_pixels']})",
        caption=f"fastest: chunk_pixels={result['best_chunk_pixels']}",
        title_justify="left",
    )
    columns = ("chunk_pixels", "rows/chunk", "chunks", "median s", "min s", "n")
    columns += ("Mpixel/s", "exec GFLOP", "exec GFLOP/s", "vs mm", "vs default")
    for name in columns:
        sweep.add_column(name, justify="right")
    for row in result["chunks"]:
        sweep.add_row(
            f"{row['chunk_pixels']}{' *' if row['default'] else ''}",
            str(row["rows_per_chunk"]),
            str(row["chunks"]),
            f"{row['median_s']:.2f}",
            f"{row['min_s']:.2f}",
            str(row["n"]),
            f"{row['megapixels_per_s']:.3f}",
            f"{row['executed_gflop']:.1f}",
            f"{row['executed_gflops_per_s']:.1f}",
            f"{row['ratio_to_mm']:.2f}",
            f"x{row['speedup_vs_default']:.2f}",
        )
    return [headline, sweep]


def train_tables(result: dict) -> list[Table]:
    steps = Table(
        title=(
            f"Training step: {result['preset']} at batch {result['batch']} "
            f"(forward + full-image MSE + backward + Adam), goal < {result['goal_s']:g} s"
        ),
        caption=(
            f"trainer's Adam (models/tasks/training.py): "
            f"{adam_label(result['trainer_adam_kwargs'])}; "
            f"{others_text(result.get('others'))}"
        ),
        title_justify="left",
    )
    for name in ("variant", "attention", "precision", "Adam"):
        steps.add_column(name)
    for name in ("fwd+loss ms", "backward ms", "Adam ms", "step median s", "min s", "max s"):
        steps.add_column(name, justify="right")
    steps.add_column("n", justify="right")
    steps.add_column("goal")
    for row in result["rows"]:
        steps.add_row(
            row["variant"],
            row["attention"],
            row["precision"],
            row["adam"],
            ms(row["forward_loss_s"]),
            ms(row["backward_s"]),
            ms(row["optimizer_s"]),
            f"[bold]{row['median_s']:.2f}[/]",
            f"{row['min_s']:.2f}",
            f"{row['max_s']:.2f}",
            str(row["n"]),
            "[green]met[/]" if row["under_goal"] else "[red]missed[/]",
        )
    adam = Table(
        title=f"Adam step alone on the {result['params'] / 1e6:.2f}M celeba parameters",
        caption=f"fastest: {result['fastest_adam']}",
        title_justify="left",
    )
    adam.add_column("Adam")
    for name in ("median ms", "min ms", "max ms", "n", "vs default"):
        adam.add_column(name, justify="right")
    for row in result["adam_step"]:
        adam.add_row(
            row["adam"],
            ms(row["median_s"]),
            ms(row["min_s"]),
            ms(row["max_s"]),
            str(row["n"]),
            f"x{row['speedup_vs_default']:.2f}",
        )
    return [steps, adam]


def presets_table(result: dict) -> Table:
    table = Table(
        title=(
            "Training speed of the CPU presets (recipe batch size; reference: naive attention, "
            "fp32, default Adam)"
        ),
        caption=(
            "steps on a fixed in-memory batch (no data loading); "
            f"{others_text(result.get('others'))}"
        ),
        title_justify="left",
    )
    for name in ("preset", "batch", "precision"):
        table.add_column(name)
    columns = ("ms/step", "min ms", "max ms", "n", "images/s", "vs reference")
    columns += ("fwd+loss ms", "bwd ms", "Adam ms")
    for name in columns:
        table.add_column(name, justify="right")
    for row in result["rows"]:
        table.add_row(
            row["preset"],
            str(row["batch"]),
            row["precision"],
            f"[bold]{ms(row['median_s'])}[/]",
            ms(row["min_s"]),
            ms(row["max_s"]),
            str(row["n"]),
            f"{row['images_per_s']:.1f}",
            f"x{row['speedup_vs_reference']:.2f}",
            ms(row["forward_loss_s"]),
            ms(row["backward_s"]),
            ms(row["optimizer_s"]),
        )
    return table


def nerf_render_tables(result: dict) -> list[Table]:
    mm, rows = result["mm"], result["rows"]
    view = "x".join(str(v) for v in result["view"])
    partial = rows[0]["rows"] != result["view"][0]
    checks = []
    for row in rows:
        check = row["flop_formula_check"]
        checks.append(
            f"{row['preset']} ok"
            if check["ok"]
            else f"[red]{row['preset']}: {check['formula_inr']} + {check['camera_rays']} != "
            f"counted {check['counted']}[/]"
        )
    per_point = ", ".join(f"{row['preset']} {row['flops_per_point']:,}" for row in rows)
    headline = Table(
        title=(
            f"NeRF render: one {view} view per preset, render_view "
            f"(chunk_points {result['default_chunk_points']})"
            + (f", timed on {rows[0]['rows']} of its rows" if partial else "")
        ),
        caption=(
            "GFLOP = the INR's matmuls: sum of 2 x in x out over the layers per sample point "
            f"({per_point}) x rays x "
            "samples; Fourier features, sampling and compositing are not counted; vs torch's "
            f"FLOP counter (+ {CAMERA_RAY_FLOPS} FLOPs/ray of camera rotation): "
            f"{', '.join(checks)}; s/view = median x {result['view'][0]} / rows timed; "
            f"{others_text(result.get('others'))}"
        ),
        title_justify="left",
    )
    headline.add_column("what")
    columns = ("samples", "rays", "GFLOP", "median s", "min s", "n", "s/view", "Mrays/s")
    for name in columns + ("GFLOP/s", "vs torch.mm"):
        headline.add_column(name, justify="right")
    headline.add_row(
        f"torch.mm {mm['size']}^2 fp32 (reference)",
        "",
        "",
        f"{2 * mm['size'] ** 3 / 1e9:.1f}",
        f"{mm['median_s']:.3f}",
        f"{mm['min_s']:.3f}",
        str(mm["n"]),
        "",
        "",
        f"{mm['gflops_per_s']:.1f}",
        "1.00",
    )
    for row in rows:
        headline.add_row(
            f"{row['preset']} INR ({row['params'] / 1e6:.2f}M-param model)",
            str(row["samples"]),
            f"{row['rays']:,}",
            f"{row['gflop']:.1f}",
            f"{row['median_s']:.2f}",
            f"{row['min_s']:.2f}",
            str(row["n"]),
            f"[bold]{row['seconds_per_view']:.2f}[/]",
            f"{row['megarays_per_s']:.3g}",
            f"{row['gflops_per_s']:.1f}",
            f"[bold]{row['ratio_to_mm']:.2f}[/]",
        )

    sweep = result["sweep"]
    table = Table(
        title=(
            f"NeRF render chunk_points: {sweep['preset']}, {sweep['rows']} rows x "
            f"{result['view'][1]} ({sweep['rays']:,} rays, {sweep['gflop']:.1f} GFLOP), "
            f"default {result['default_chunk_points']}"
        ),
        caption=f"fastest: chunk_points={result['best_chunk_points']}",
        title_justify="left",
    )
    for name in ("chunk_points", "chunks", "median s", "n", "Mrays/s", "GFLOP/s", "vs mm"):
        table.add_column(name, justify="right")
    table.add_column("vs default", justify="right")
    for row in sweep["chunks"]:
        table.add_row(
            f"{row['chunk_points']}{' *' if row['default'] else ''}",
            str(row["chunks"]),
            f"{row['median_s']:.2f}",
            str(row["n"]),
            f"{row['megarays_per_s']:.3g}",
            f"{row['gflops_per_s']:.1f}",
            f"{row['ratio_to_mm']:.2f}",
            f"x{row['speedup_vs_default']:.2f}",
        )
    return [headline, table]


def nerf_refine_table(result: dict) -> Table:
    rows = result["rows"]
    estimated = any(row["paper_total_estimated"] for row in rows)
    table = Table(
        title=(
            f"NeRF test-time refinement: {REFINE_STEPS} steps of {REFINE_RAYS} random rays of one "
            f"support view, Adam lr {REFINE_LR:g} (models.tasks.refinement.refine + view_loss)"
        ),
        caption=(
            (
                f"{REFINE_STEPS}-step total = first step + {REFINE_STEPS - 1} x median step "
                "(not all steps timed); "
                if estimated
                else ""
            )
            + f"{others_text(result.get('others'))}"
        ),
        title_justify="left",
    )
    table.add_column("preset")
    columns = ("samples", "first step s", "ms/step", "min ms", "max ms", "n")
    columns += (f"{REFINE_STEPS} steps s", "rays/s", "Msamples/s")
    for name in columns:
        table.add_column(name, justify="right")
    mark = " (est.)"
    for row in rows:
        table.add_row(
            row["preset"],
            str(row["samples"]),
            f"{row['warmup_step_s']:.2f}",
            f"[bold]{ms(row['median_s'])}[/]",
            ms(row["min_s"]),
            ms(row["max_s"]),
            str(row["n"]),
            f"[bold]{row['paper_total_s']:.0f}[/]{mark if row['paper_total_estimated'] else ''}",
            f"{row['rays_per_s']:,.0f}",
            f"{row['megasamples_per_s']:.2f}",
        )
    return table


def nerf_train_table(result: dict) -> Table:
    shapes = result["batch_shapes"]
    table = Table(
        title=(
            "NeRF training step: NerfObjective.loss (support views in, rays of a query view out) "
            "+ backward + the trainer's Adam, recipe batch"
        ),
        caption=(
            f"fixed in-memory batch of synthetic chairs: images {tuple(shapes['images'])}, "
            f"poses {tuple(shapes['poses'])} (first `batch` objects used); rays sampled "
            f"uniformly (past the foreground epochs); {others_text(result.get('others'))}"
        ),
        title_justify="left",
    )
    for name in ("preset", "batch", "precision", "Adam"):
        table.add_column(name)
    columns = ("rays/step", "samples", "ms/step", "min ms", "max ms", "n", "rays/s")
    columns += ("vs reference", "objects/s", "fwd+loss ms", "bwd ms", "Adam ms")
    for name in columns:
        table.add_column(name, justify="right")
    for row in result["rows"]:
        table.add_row(
            row["preset"],
            str(row["batch"]),
            row["precision"],
            row["adam"],
            str(row["batch"] * row["rays_per_object"]),
            str(row["samples"]),
            f"[bold]{ms(row['median_s'])}[/]",
            ms(row["min_s"]),
            ms(row["max_s"]),
            str(row["n"]),
            f"{row['rays_per_s']:,.0f}",
            f"x{row['speedup_vs_reference']:.2f}",
            f"{row['objects_per_s']:.1f}",
            ms(row["forward_loss_s"]),
            ms(row["backward_s"]),
            ms(row["optimizer_s"]),
        )
    return table


def synth_table(result: dict) -> Table:
    table = Table(
        title=(
            f"Synthetic data: models.data.synth.write_dataset, {result['views']} views of "
            f"{result['size']}x{result['size']} per object, extent {result['extent']:g} "
            "(the `transinr data synth` default)"
        ),
        caption=f"PNGs and transforms.json written to a temporary folder; "
        f"{others_text(result.get('others'))}",
        title_justify="left",
    )
    table.add_column("category")
    for name in ("objects", "total s", "objects/s", "views/s", "median s/object", "max s"):
        table.add_column(name, justify="right")
    for row in result["rows"]:
        table.add_row(
            row["category"],
            str(row["objects"]),
            f"{row['total_s']:.2f}",
            f"[bold]{row['objects_per_s']:.2f}[/]",
            f"{row['views_per_s']:.0f}",
            f"{row['median_s']:.2f}",
            f"{row['max_s']:.2f}",
        )
    return table


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke check)")
    parser.add_argument("--json", action="store_true", help="JSON on stdout, tables on stderr")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, of: {','.join(SECTIONS)}",
    )
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown or not args.sections:
        parser.error(f"--only: unknown section(s) {unknown}; choose from {','.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=args.json)
    if not console.is_terminal:  # piped or captured: don't squeeze the tables into 80 columns
        console = Console(stderr=args.json, width=200)
    budget = QUICK if args.quick else FULL
    facts = machine_facts()
    console.print(machine_table(facts, "quick" if args.quick else "full"))
    report: dict = {"machine": facts, "quick": args.quick, "sections": {}}
    shared, nerf = Shared(), NerfShared()
    runners: dict[str, tuple[Callable[[], dict], Callable[[dict], Table | list[Table]]]] = {
        "encode": (lambda: bench_encode(shared, budget), encode_table),
        "render": (lambda: bench_render(shared, budget), render_tables),
        "train": (lambda: bench_train(budget), train_tables),
        "presets": (lambda: bench_presets(budget), presets_table),
        "nerf-render": (lambda: bench_nerf_render(nerf, budget), nerf_render_tables),
        "nerf-refine": (lambda: bench_nerf_refine(nerf, budget), nerf_refine_table),
        "nerf-train": (lambda: bench_nerf_train(budget), nerf_train_table),
        "synth": (lambda: bench_synth(budget), synth_table),
    }
    run_meter, run_started = CpuMeter(), time.perf_counter()
    for section in SECTIONS:
        if section not in args.sections:
            continue
        console.print(f"[dim]running {section} ...[/]")
        bench, tables = runners[section]
        meter, started = CpuMeter(), time.perf_counter()
        result = bench()
        result["seconds"] = round(time.perf_counter() - started, 1)
        result["others"] = meter.others()
        report["sections"][section] = result
        printed = tables(result)
        for table in printed if isinstance(printed, list) else [printed]:
            console.print(table)
    report["seconds"] = round(time.perf_counter() - run_started, 1)
    report["others"] = run_meter.others()
    report["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    console.print(
        f"total {report['seconds']:.0f} s; {others_text(report['others'])}; load average "
        f"{' '.join(str(v) for v in facts['load_average'])} at start, "
        f"{' '.join(str(v) for v in report['load_average_end'])} at end"
    )
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
