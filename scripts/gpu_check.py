"""Prove the CUDA paths on one GPU in under 8 minutes; every figure goes to one JSON file.

    bash scripts/gpu_check.sh DATA [--json gpu-check.json] [--minutes 7.5] [--run-dir DIR]

DATA is a CelebA-layout folder (img_align_celeba/*.jpg + list_eval_partition.txt), such as
celeba-89. Without a CUDA GPU it prints one line and exits 0. With one, it runs, each within
its share of --minutes (default 7.5):

1. tests: the CUDA-marked tests (`pytest tests/test_cuda.py -m cuda`); agreement: the bundled
   models on the CPU and the GPU (`scripts/gpu_measure.py agreement`);
2. ddp: 2 processes against 1 (the CPU check of tests/test_distributed.py, on the GPU): over
   NCCL when there are 2 GPUs; on one GPU NCCL refuses two processes, so they share it over
   gloo (TRANSINR_DDP_BACKEND=gloo) and a one-process NCCL group is probed;
3. throughput: paper-scale encode, render and training steps against the measured bf16 matmul
   rate (`scripts/gpu_measure.py throughput`);
4. training: the paper's `celeba` preset on DATA upsampled to 178 px, bf16, for the time left,
   checkpointed, its validation curve beside the CPU presets' curves.

Each section runs in its own processes, so a failure (recorded with its reason) loses no other
section's figures; the JSON is rewritten atomically after every section, and a short table
ends the output. `--cpu-smoke` runs every section on the CPU at toy sizes: it tests this
script, its figures mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO, REPO / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from gpu_measure import clean, write_json  # noqa: E402

NO_GPU = "no CUDA GPU present: nothing to check"
SCHEMA = "transinr.gpu_check/1"
SHARES = {"tests": 0.15, "agreement": 0.05, "ddp": 0.14, "throughput": 0.36}  # training: the rest
RESERVE_S = 12.0  # kept back at the end for the JSON and the table
VALIDATIONS = 5  # points on the training run's validation curve, besides the last
PHOTOS = REPO / "assets" / "examples" / "photos"
TRAINING_NOTE = (
    "GPU: the paper's celeba preset (44.5M parameters) on celeba-89 faces upsampled to 178 px, "
    "lr 1e-4, batch 16, bf16; CPU curves: the celeba89 preset on the 89 px faces. Each scores "
    "its own validation images: compare the curves' shapes and times, not their dB."
)
SMOKE_NOTE = "a smoke run: the tiny preset on the CPU; its figures mean nothing"
NCCL_ONE_GPU = (
    "not run: one GPU, and NCCL refuses two processes on one GPU (ncclInvalidUsage, "
    "'Duplicate GPU detected', since NCCL 2.5); the two processes share it over gloo instead"
)


@dataclass
class Check:
    """What every section needs: where things go, the clock, the device and the budget."""

    data: Path
    json_path: Path
    run_root: Path
    device: str  # cuda, or cpu for --cpu-smoke
    smoke: bool
    gpus: int
    started: float
    total_s: float

    def remaining(self) -> float:
        return self.total_s - (time.monotonic() - self.started)

    def path(self, *parts: str) -> Path:
        path = self.run_root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Finished:
    """How a child process ended."""

    returncode: int | None
    seconds: float
    timed_out: bool
    tail: str


def run_process(
    command: list[str], timeout: float, log: Path, env: dict | None = None, grace: float = 20.0
) -> Finished:
    """Run `command` in its own process group from the repository root, output to `log`. At
    `timeout` it gets SIGTERM (the trainer then saves and exits), after `grace` more SIGKILL."""
    environment = {**os.environ, "PYTHONPATH": pythonpath(), **(env or {})}
    started = time.monotonic()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env=environment,
            start_new_session=True,
        )  # fmt: skip
        timed_out = False
        try:
            process.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            timed_out = True
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            kill_group(process)  # whatever it left: launcher workers, loaders
        except BaseException:  # Ctrl-C: the child is in its own session, stop it too
            kill_group(process)
            raise
    text = log.read_text(errors="replace")
    return Finished(process.returncode, time.monotonic() - started, timed_out, text[-2000:])


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group of `process` (started with start_new_session), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def pythonpath() -> str:
    current = os.environ.get("PYTHONPATH", "")
    return f"{REPO}{os.pathsep}{current}" if current else str(REPO)


def read_part(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def process_outcome(finished: Finished) -> dict:
    """The figures of a finished child beside the ones it wrote: seconds, and why it failed."""
    outcome = {"seconds": round(finished.seconds, 1), "returncode": finished.returncode}
    if finished.timed_out:
        outcome["timed_out"] = True
    if finished.returncode != 0 or finished.timed_out:
        outcome["output_tail"] = finished.tail
    return outcome


# --- 1. tests and agreement ------------------------------------------------------------------


def parse_junit(path: Path) -> list[dict]:
    """Per test case of a pytest JUnit XML file: name, outcome, seconds and any message."""
    cases = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = (child.get("message") or child.text or "")[:500]
                break
        cases.append(
            {
                "name": case.get("name", ""),
                "outcome": outcome,
                "seconds": float(case.get("time") or 0.0),
                "message": message,
            }
        )
    return cases


def parse_verbose_log(text: str) -> list[dict]:
    """Per test case from `pytest -v` lines, for a run stopped before it wrote its XML."""
    outcomes = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped"}
    cases = []
    for line in text.splitlines():
        match = re.match(r"^tests/\S+::(\S+) (PASSED|FAILED|ERROR|SKIPPED)", line)
        if match:
            name, outcome = match.groups()
            cases.append({"name": name, "outcome": outcomes[outcome], "seconds": None})
    return cases


def tests_status(cases: list[dict], finished: Finished) -> str:
    """ok (all ran and passed), failed, timed out, all skipped, or no tests."""
    counts = Counter(case["outcome"] for case in cases)
    if finished.timed_out:
        return "timed out"
    if counts["failed"] or counts["error"] or finished.returncode not in (0, 5):
        return "failed"
    if not cases:
        return "no tests"
    return "all skipped" if counts["passed"] == 0 else "ok"


def section_tests(check: Check, budget: float) -> dict:
    """The CUDA-marked tests, skipped with their reason where CUDA is absent (the DDP test is
    section ddp's)."""
    xml = check.path("logs", "tests.xml")
    xml.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "tests/test_cuda.py", "-m", "cuda", "-k",
               "not ddp", "-o", "addopts=", "-v", "-rs", "-p", "no:cacheprovider",
               f"--junitxml={xml}"]  # fmt: skip
    log = check.path("logs", "tests.log")
    finished = run_process(command, budget, log, grace=5.0)
    cases = parse_junit(xml) if xml.is_file() else parse_verbose_log(log.read_text())
    counts = Counter(case["outcome"] for case in cases)
    return {
        "status": tests_status(cases, finished),
        "command": " ".join(command[1:]),
        **{name: counts[name] for name in ("passed", "failed", "error", "skipped")},
        "tests": cases,
        **process_outcome(finished),
    }


def measure_child(check: Check, section: str, budget: float) -> dict:
    """Run one `gpu_measure.py` section; its figures, and how it ended."""
    part = check.path("parts", f"{section}.json")
    part.unlink(missing_ok=True)
    script = str(REPO / "scripts" / "gpu_measure.py")
    seconds = str(max(budget - 15, 5))
    command = [sys.executable, script, section, "--out", str(part), "--device", check.device,
               "--seconds", seconds]  # fmt: skip
    if check.smoke:
        command.append("--smoke")
    finished = run_process(command, budget, check.path("logs", f"{section}.log"), grace=5.0)
    return {**read_part(part), **process_outcome(finished)}


def section_agreement(check: Check, budget: float) -> dict:
    """CPU against the device on the bundled models: fp32 to 1e-4, bf16 within 0.1 dB."""
    result = measure_child(check, "agreement", budget)
    verdicts = [result.get(m, {}).get(k) for m in ("image", "nerf") for k in ("fp32_ok", "bf16_ok")]
    result["status"] = "ok" if all(v is True for v in verdicts) else "failed"
    return result


# --- 2. DDP ----------------------------------------------------------------------------------


def ddp_train(check: Check, run_dir: Path, processes: int, budget: float, env: dict) -> Finished:
    """tests/test_distributed.py's run: the tiny preset, 6 steps of a global batch of 8 on the
    example photos, fp32 (bf16 would not match to 1e-5), on 1 process or under torchrun."""
    arguments = ["-m", "transinr_cli", "train", "--dataset", "folder", "--data", str(PHOTOS),
                 "--preset", "tiny", "--steps", "6", "--batch-size", "8", "--val-every", "3",
                 "--workers", "0", "--out", str(run_dir), "--overwrite", "--quiet",
                 "--device", check.device, "--precision", "fp32"]  # fmt: skip
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                     str(processes)]  # fmt: skip
    log = check.path("logs", f"ddp-{run_dir.name}.log")
    return run_process(launcher + arguments, budget, log, {"OMP_NUM_THREADS": "1", **env})


def compare_runs(single: Path, ddp: Path) -> dict:
    """Largest weight difference and the validation PSNRs of two runs' last checkpoints."""
    from models.io.checkpoint import load_checkpoint

    one, two = (
        load_checkpoint(single / "last.safetensors"),
        load_checkpoint(ddp / "last.safetensors"),
    )
    diff = max(
        (one.model_state[k] - two.model_state[k]).abs().max().item() for k in one.model_state
    )
    psnr_one = [h["val_psnr"] for h in one.train_state["history"]]
    psnr_two = [h["val_psnr"] for h in two.train_state["history"]]
    psnr_gap = max(abs(a - b) for a, b in zip(psnr_one, psnr_two, strict=True))
    return {
        "max_abs_weight_diff": diff,
        "val_psnr_one_process": psnr_one,
        "val_psnr_two_processes": psnr_two,
        "ok": diff <= 1e-5 and psnr_gap <= 1e-4 and len(psnr_one) == 2,
    }


def ddp_pair(check: Check, single: Path, name: str, env: dict, budget: float) -> dict:
    """2 processes against the 1-process run `single` (already trained)."""
    run_dir = check.path("ddp", name)
    finished = ddp_train(check, run_dir, 2, budget, env)
    result = {
        "backend": env.get("TRANSINR_DDP_BACKEND", "nccl" if check.device == "cuda" else "gloo")
    }
    result |= process_outcome(finished)
    if finished.returncode == 0:
        result |= compare_runs(single, run_dir)
    else:
        result["ok"] = False
    return result


def section_ddp(check: Check, budget: float) -> dict:
    """The CPU equivalence check on the GPU: NCCL with 2 GPUs; one GPU shared over gloo (NCCL
    cannot share) plus a one-process NCCL probe."""
    deadline = time.monotonic() + budget
    single = check.path("ddp", "one-process")
    finished = ddp_train(check, single, 1, 0.35 * budget, {})
    result = {"gpus": check.gpus, "one_process": process_outcome(finished)}
    if finished.returncode != 0:
        return result | {"status": "failed", "reason": "the 1-process run failed"}
    left = lambda: deadline - time.monotonic()  # noqa: E731
    if check.device == "cuda" and check.gpus >= 2:
        result["nccl_two_processes"] = ddp_pair(check, single, "nccl", {}, left())
        pairs = [result["nccl_two_processes"]]
    else:
        env = {"TRANSINR_DDP_BACKEND": "gloo"} if check.device == "cuda" else {}
        shared = ddp_pair(
            check, single, "gloo", env, left() - (20 if check.device == "cuda" else 0)
        )
        result["gloo_two_processes"] = shared
        pairs = [shared]
        if check.device == "cuda":
            result["nccl_two_processes"] = {"skipped": NCCL_ONE_GPU}
            probe = measure_child(check, "nccl-probe", max(left(), 10))
            result["nccl_probe"] = probe
            pairs.append({"ok": probe.get("all_reduce_ok") is True})
    result["status"] = "ok" if all(pair.get("ok") for pair in pairs) else "failed"
    return result


# --- 3. throughput ---------------------------------------------------------------------------


def section_throughput(check: Check, budget: float) -> dict:
    result = measure_child(check, "throughput", budget)
    rows = [r for key in ("encode", "render", "train") for r in result.get(key) or []]
    failed = [r for r in rows if "error" in r] + [
        v for k, v in result.items() if k.startswith("matmul") and "error" in v
    ]
    skipped = [r for r in rows if "skipped" in r]
    result["status"] = "failed" if failed or result.get("returncode") else "ok"
    if skipped and result["status"] == "ok":
        result["status"] = f"ok, {len(skipped)} skipped"
    return result


# --- 4. a short paper-preset training run ----------------------------------------------------


def read_history(checkpoint: Path) -> list[dict]:
    """The validation history in a checkpoint's metadata (the header only: no tensors read)."""
    with open(checkpoint, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    state = json.loads(header["__metadata__"]["train_state"])
    return [
        {"step": h["step"], "seconds": h.get("seconds"), "val_psnr": h["val_psnr"]}
        for h in state.get("history", [])
    ]


def cpu_curves() -> dict:
    """The CPU presets' validation curves this repository records: the bundled Trans-INR
    celeba89 model (image-celeba89-transinr) and the 8- and 20-minute celeba89 runs of
    bench/experiments.py."""
    curves = {}
    bundled = REPO / "assets" / "models" / "image-celeba89-transinr.safetensors"
    if bundled.is_file():
        curves["celeba89 bundled Trans-INR model, 89 px, 2 CPU cores"] = read_history(bundled)
    results = REPO / "experiments" / "results.json"
    plots = read_part(results).get("plot", {}) if results.is_file() else {}
    for name, label in (("t1-trans-inr", "8 minutes"), ("long-trans-inr", "20 minutes")):
        if name in plots:
            points = [{"step": s, "seconds": t, "val_psnr": p} for s, t, p in plots[name]]
            curves[f"celeba89 Trans-INR, {label}, 89 px, 2 CPU cores"] = points
    return curves


def training_plan(check: Check, seconds: float, step_s: float) -> dict:
    """Preset, training-time budget and validation spacing for a run that fits `seconds` of
    wall time: startup, then VALIDATIONS validations, each writing `last` and `best` (534 MB
    each for the paper preset), which the trainer's time budget does not count."""
    preset = "tiny" if check.smoke else "celeba"
    startup, per_validation = (10.0, 1.0) if check.smoke else (25.0, 8.0)
    train_s = max(seconds - startup - (VALIDATIONS + 1) * per_validation, 6.0)
    if check.smoke:
        train_s = min(train_s, 6.0)
    steps = max(int(train_s / (1.2 * step_s)), VALIDATIONS)
    return {"preset": preset, "train_seconds": train_s, "val_every": steps // VALIDATIONS}


def image_step_seconds(report: dict, preset: str) -> float:
    """The eager bf16 image training step the throughput section measured (else a guess)."""
    wanted = {"task": "image", "preset": preset, "precision": "bf16", "compile": False}
    for row in report["sections"].get("throughput", {}).get("train") or []:
        if all(row.get(key) == value for key, value in wanted.items()) and row.get("median_s"):
            return row["median_s"]
    return 0.1


def section_training(check: Check, budget: float, report: dict) -> dict:
    """`transinr train` of the paper preset on DATA (178 px crops of the upsampled faces),
    precision auto (bf16 on the GPU), for the time left; SIGTERM at the hard cap."""
    if not (check.data / "img_align_celeba").is_dir():
        return {"status": "skipped", "reason": f"{check.data} has no img_align_celeba/"}
    step_s = image_step_seconds(report, "tiny" if check.smoke else "celeba")
    plan = training_plan(check, budget, step_s)
    run_dir = check.path("training", plan["preset"])
    for stale in ("last.safetensors", "best.safetensors"):  # a curve must be this run's
        (run_dir / stale).unlink(missing_ok=True)
    command = [sys.executable, "-m", "transinr_cli", "train", "--dataset", "celeba", "--data",
               str(check.data), "--preset", plan["preset"], "--minutes",
               f"{plan['train_seconds'] / 60:.3f}", "--val-every", str(plan["val_every"]),
               "--checkpoint-every", str(plan["val_every"]), "--val-images",
               "16" if check.smoke else "200", "--workers", str(loader_workers(check)),
               "--device", check.device, "--out", str(run_dir), "--overwrite", "--json",
               "--quiet"]  # fmt: skip
    finished = run_process(command, budget, check.path("logs", "training.log"))
    result = {"plan": plan, "command": " ".join(command[2:]), **process_outcome(finished)}
    result |= {"device": check.device, "run_dir": str(run_dir)}
    last = run_dir / "last.safetensors"
    if finished.returncode == 0:
        result["summary"] = last_json_object(finished.tail)
    if last.is_file():
        result["curve"] = read_history(last)
        result["checkpoint"] = str(last)
    result["cpu_curves"] = cpu_curves()
    result["note"] = SMOKE_NOTE if check.smoke else TRAINING_NOTE
    ran = finished.returncode == 0 or (finished.timed_out and result.get("curve"))
    result["status"] = "ok" if ran and result.get("curve") else "failed"
    if finished.timed_out and ran:
        result["status"] = "ok, stopped at the hard cap"
    return result


def last_json_object(text: str) -> dict | None:
    """The last line of `text` that is a JSON object (what `--json` prints), if any."""
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def loader_workers(check: Check) -> int:
    return 0 if check.smoke else max(1, min(8, (os.cpu_count() or 2) // 2))


# --- the report ------------------------------------------------------------------------------


def machine_facts(check: Check) -> dict:
    """Versions and the GPU as nvidia-smi and torch name them (no CUDA context made here)."""
    import torch

    facts = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "gpus": check.gpus,
        "device": check.device,
        "smoke": check.smoke,
    }
    if shutil.which("nvidia-smi"):
        query = "name,driver_version,memory.total,clocks.max.sm"
        smi = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        facts["nvidia_smi"] = smi.stdout.strip().splitlines()
    return facts


def write_report(check: Check, report: dict) -> None:
    report["wall_s"] = round(time.monotonic() - check.started, 1)
    write_json(check.json_path, report)


def run_section(check: Check, report: dict, name: str, budget: float) -> None:
    """Run one section within `budget` seconds; record its figures or why it failed."""
    functions = {
        "tests": section_tests,
        "agreement": section_agreement,
        "ddp": section_ddp,
        "throughput": section_throughput,
    }
    started = time.monotonic()
    try:
        if name == "training":
            result = section_training(check, budget, report)
        else:
            result = functions[name](check, budget)
    except Exception as error:  # one failing section must not lose the others
        result = {"status": "error", "error": f"{type(error).__name__}: {error}"[:500]}
    result["budget_s"] = round(budget, 1)
    result["section_s"] = round(time.monotonic() - started, 1)
    report["sections"][name] = result
    write_report(check, report)


def run_all(check: Check) -> dict:
    report = {
        "schema": SCHEMA,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "budget_s": check.total_s,
        "machine": machine_facts(check),
        "sections": {},
    }
    write_report(check, report)
    for name, share in SHARES.items():
        run_section(check, report, name, min(share * check.total_s, check.remaining() - RESERVE_S))
    left = check.remaining() - RESERVE_S
    if left >= (20 if check.smoke else 60):
        run_section(check, report, "training", left)
    else:
        report["sections"]["training"] = {"status": "skipped", "reason": f"{left:.0f} s left"}
    not_ok = [
        f"{name} {section.get('status')}"
        for name, section in report["sections"].items()
        if not str(section.get("status", "")).startswith("ok")
    ]
    report["status"] = "not ok: " + "; ".join(not_ok) if not_ok else "ok"
    if check.smoke:
        report["status"] = f"cpu smoke run, figures mean nothing; {report['status']}"
    write_report(check, report)
    return report


# --- the table -------------------------------------------------------------------------------

Row = tuple[str, str, str]  # section, what, figure


def number(value: object, spec: str = ".3g") -> str:
    return format(value, spec) if isinstance(value, int | float) else "-"


def verdict(ok: object) -> str:
    return "ok" if ok is True else "FAILED"


def table_rows(report: dict) -> list[Row]:
    """The headline figures of every section."""
    sections = report["sections"]
    tests = sections.get("tests", {})
    failed = tests.get("failed", 0) + tests.get("error", 0)
    counts = f"{tests.get('passed', 0)} passed, {failed} failed, {tests.get('skipped', 0)} skipped"
    rows = [("tests", "pytest tests/test_cuda.py -m cuda", f"{tests.get('status')}: {counts}")]
    for model in ("image", "nerf"):
        figures = sections.get("agreement", {}).get(model, {})
        gaps = (
            f"{number(figures.get('fp32_max_abs_diff'), '.1e')}, "
            f"{number(figures.get('bf16_psnr_gap_db'), '.3f')} dB"
        )
        ok = figures.get("fp32_ok") is True and figures.get("bf16_ok") is True
        what = f"{figures.get('model', model)}: fp32 |CPU-GPU|, bf16 PSNR gap"
        rows.append(("agreement", what, f"{gaps} ({verdict(ok)})"))
    flash = sections.get("agreement", {}).get("sdpa_kernels", {}).get("flash_attention_bf16")
    if flash:
        figure = f"max |diff| vs math {number(flash.get('max_abs_diff_vs_math'), '.1e')}"
        rows.append(("agreement", "SDPA flash kernel, bf16", figure if flash["runs"] else "FAILED"))
    rows += ddp_rows(sections.get("ddp", {}))
    rows += throughput_rows(sections.get("throughput", {}))
    return rows + training_rows(sections.get("training", {}))


def ddp_rows(ddp: dict) -> list[Row]:
    rows = []
    for key in ("nccl_two_processes", "gloo_two_processes"):
        pair = ddp.get(key)
        if pair and "skipped" not in pair:
            what = f"2 processes vs 1 ({pair.get('backend')}): max |weight diff|"
            diff = number(pair.get("max_abs_weight_diff"), ".1e")
            rows.append(("ddp", what, f"{diff} ({verdict(pair.get('ok'))})"))
    probe = ddp.get("nccl_probe")
    if probe:
        figure = f"{verdict(probe.get('all_reduce_ok'))} (NCCL {probe.get('nccl_version', '?')})"
        rows.append(("ddp", "one-process NCCL group all-reduce", figure))
    return rows or [("ddp", "2 processes vs 1", str(ddp.get("status", "not run")))]


def throughput_rows(throughput: dict) -> list[Row]:
    matmul = throughput.get("matmul_bf16", {})
    what = f"bf16 matmul {matmul.get('size', '?')}^2"
    rows = [("throughput", what, f"{number(matmul.get('tflops'), '.1f')} TFLOP/s")]
    for row in throughput.get("encode") or []:
        what = f"encode {row.get('preset')} batch {row.get('batch')} {row.get('precision')}"
        rows.append(("throughput", what, rate_figure(row, "latency_ms", "ms")))
    for row in throughput.get("render") or []:
        what = f"render {row.get('size')}^2, chunk {row.get('chunk_pixels')}"
        rows.append(("throughput", what, rate_figure(row, "median_s", "s")))
    for row in throughput.get("train") or []:
        variant = row.get("precision", "") + (" + compile" if row.get("compile") else "")
        what = f"train {row.get('preset')} batch {row.get('batch', '-')} {variant}"
        rows.append(("throughput", what, rate_figure(row, "ms_per_step", "ms/step")))
    return rows


def rate_figure(row: dict, key: str, unit: str) -> str:
    """'12.3 ms, 0.41 of bf16 mm', or why the row has no figure."""
    if key not in row:
        return str(row.get("skipped") or row.get("error") or "-")[:70]
    share = number(row.get("fraction_of_bf16_matmul"), ".2f")
    return f"{row[key]:.4g} {unit}, {share} of bf16 mm"


def training_rows(training: dict) -> list[Row]:
    curve = training.get("curve") or []
    if not curve:
        return [("training", "paper preset run", str(training.get("status", "not run")))]
    end = curve[-1]
    what = f"{training['plan']['preset']} on {training['device']}: val PSNR ({training['status']})"
    rows = [("training", what, curve_point(end))]
    for label, points in (training.get("cpu_curves") or {}).items():
        rows.append(("training", f"CPU: {label}", curve_point(points[-1])))
    return rows


def curve_point(point: dict) -> str:
    seconds = number(point.get("seconds"), ".0f")
    return f"{point['val_psnr']:.2f} dB at step {point['step']}, {seconds} s"


def print_table(report: dict, json_path: Path) -> None:
    machine = report["machine"]
    gpu = (machine.get("nvidia_smi") or [machine["device"]])[0].split(",")[0]
    spent = f"{report['wall_s']:.0f} s of {report['budget_s']:.0f} s"
    print(f"transinr GPU check: {gpu}, torch {machine['torch']}, {spent}; {report['status']}")
    print(f"JSON: {json_path}")
    rows = table_rows(report)
    width = max(len(what) for _, what, _ in rows)
    for section, what, figure in rows:
        print(f"{section:<11} {what:<{width}}  {figure}")


# --- entry point -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="CelebA-layout folder (e.g. celeba-89)")
    parser.add_argument("--json", type=Path, default=Path("gpu-check.json"), help="report file")
    parser.add_argument("--minutes", type=float, default=7.5, help="total time budget")
    parser.add_argument("--run-dir", type=Path, help="runs, logs and parts (default: JSON-run/)")
    parser.add_argument("--cpu-smoke", action="store_true", help="toy sizes on the CPU")
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error("--minutes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print(NO_GPU)
        report = {"schema": SCHEMA, "status": NO_GPU, "cuda_available": False,
                  "torch": torch.__version__, "sections": {}}  # fmt: skip
        write_json(args.json, report)
        return 0
    run_root = args.run_dir or args.json.with_name(args.json.stem + "-run")
    check = Check(
        data=args.data.resolve(),
        json_path=args.json.resolve(),
        run_root=run_root.resolve(),
        device="cpu" if args.cpu_smoke else "cuda",
        smoke=args.cpu_smoke,
        gpus=0 if args.cpu_smoke else torch.cuda.device_count(),
        started=time.monotonic(),
        total_s=args.minutes * 60.0,
    )
    report = run_all(check)
    print_table(clean(report), check.json_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
