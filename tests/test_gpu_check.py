"""scripts/gpu_check.sh without a GPU: one line, exit 0, nothing that reads as a result; the CUDA
tests reported as skipped, never as passed; and every section of the check run end to end on the
CPU at toy sizes (--cpu-smoke), so the script a GPU session will run has run before."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support import REPO_ROOT, synthetic_image

SCRIPT = REPO_ROOT / "scripts" / "gpu_check.sh"
NO_GPU_REASON = "a CUDA GPU is present: the no-GPU path cannot be reached"
without_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason=NO_GPU_REASON)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def load_gpu_check():
    path = REPO_ROOT / "scripts" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)  # its dataclasses look themselves up there
    spec.loader.exec_module(sys.modules["gpu_check"])
    return sys.modules["gpu_check"]


gpu_check = load_gpu_check()


def celeba_folder(root: Path, count: int = 24) -> Path:
    """A CelebA-layout folder of small 89 x 109 JPEGs: 16 train, 4 val, 4 test."""
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    lines = []
    for index in range(count):
        name = f"{index + 1:06d}.jpg"
        Image.fromarray(synthetic_image(index, 109, 89)).save(images / name, quality=90)
        lines.append(f"{name} {0 if index < 16 else 1 if index < 20 else 2}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


@without_gpu
def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(tmp_path):
    report = tmp_path / "gpu.json"
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "no-data"), "--json", str(report)],
        capture_output=True, text=True, timeout=120, env=ENV, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 60
    assert result.stdout == "no CUDA GPU present: nothing to check\n"
    assert result.stderr == ""
    written = json.loads(report.read_text())
    assert written["cuda_available"] is False and written["sections"] == {}
    assert set(written) == {"schema", "status", "cuda_available", "torch", "sections"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu.json"]  # no run folder


@without_gpu
def test_the_cuda_tests_are_reported_skipped_without_a_gpu(tmp_path):
    xml = tmp_path / "cuda.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_cuda.py", "-m", "cuda", "-rs", "-p",
         "no:cacheprovider", f"--junitxml={xml}"],
        capture_output=True, text=True, timeout=300, env=ENV, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    cases = gpu_check.parse_junit(xml)
    assert len(cases) >= 10
    assert {case["outcome"] for case in cases} == {"skipped"}
    assert all("CUDA is not available" in case["message"] for case in cases)
    assert " passed" not in result.stdout
    finished = gpu_check.Finished(result.returncode, 1.0, False, "")
    assert gpu_check.tests_status(cases, finished) == "all skipped"


def test_test_outcomes_are_read_from_junit_xml_and_verbose_logs(tmp_path):
    xml = tmp_path / "results.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_cuda" name="test_a[cuda]" time="1.5"/>'
        '<testcase classname="tests.test_cuda" name="test_b[cuda]" time="0.1">'
        '<failure message="assert 1 == 2">trace</failure></testcase>'
        '<testcase classname="tests.test_cuda" name="test_c[cuda]" time="0">'
        '<skipped type="pytest.skip" message="CUDA is not available"/></testcase>'
        '<testcase classname="tests.test_cuda" name="test_d[cuda]" time="0">'
        '<error message="fixture failed"/></testcase>'
        "</testsuite></testsuites>"
    )
    cases = gpu_check.parse_junit(xml)
    assert [(c["name"], c["outcome"]) for c in cases] == [
        ("test_a[cuda]", "passed"), ("test_b[cuda]", "failed"),
        ("test_c[cuda]", "skipped"), ("test_d[cuda]", "error"),
    ]  # fmt: skip
    assert cases[1]["message"] == "assert 1 == 2" and cases[0]["seconds"] == 1.5
    ran = gpu_check.Finished(1, 1.0, False, "")
    assert gpu_check.tests_status(cases, ran) == "failed"
    assert gpu_check.tests_status(cases[:1], gpu_check.Finished(0, 1.0, False, "")) == "ok"
    assert gpu_check.tests_status([], gpu_check.Finished(None, 9.0, True, "")) == "timed out"
    log = (
        "tests/test_cuda.py::test_a[cuda] PASSED   [ 50%]\n"
        "tests/test_cuda.py::test_b[cuda] FAILED\n"
    )
    assert [(c["name"], c["outcome"]) for c in gpu_check.parse_verbose_log(log)] == [
        ("test_a[cuda]", "passed"), ("test_b[cuda]", "failed"),
    ]  # fmt: skip


def test_the_report_is_strict_json(tmp_path):
    path = tmp_path / "r.json"
    gpu_check.write_json(path, {"a": float("nan"), "b": [1.0, float("inf")], "c": (2, "x")})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None], "c": [2, "x"]}
    assert not list(tmp_path.glob(".*"))  # written through a temporary file, renamed


def test_every_section_runs_end_to_end_on_the_cpu(tmp_path):
    """--cpu-smoke: the whole check at toy sizes on the CPU, with its own CelebA folder."""
    data, report = celeba_folder(tmp_path / "celeba"), tmp_path / "out" / "check.json"
    report.parent.mkdir()
    command = [sys.executable, str(REPO_ROOT / "scripts" / "gpu_check.py"), str(data), "--json",
               str(report), "--cpu-smoke", "--minutes", "6"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    written = json.loads(report.read_text())
    sections = written["sections"]
    assert list(sections) == ["tests", "agreement", "ddp", "throughput", "training"]
    # without a GPU the CUDA tests are all skipped: the only part not "ok"
    assert written["status"] == "cpu smoke run, figures mean nothing; not ok: tests all skipped"
    assert written["wall_s"] < written["budget_s"]
    tests = sections["tests"]
    assert tests["status"] == "all skipped" and tests["passed"] == 0 and tests["skipped"] >= 9
    assert sections["agreement"]["status"] == "ok"
    assert sections["agreement"]["image"]["fp32_ok"] and sections["agreement"]["nerf"]["bf16_ok"]
    ddp = sections["ddp"]
    assert ddp["status"] == "ok", ddp
    assert ddp["gloo_two_processes"]["max_abs_weight_diff"] <= 1e-5
    assert_throughput(sections["throughput"])
    training = sections["training"]
    assert training["status"] == "ok", training
    assert len(training["curve"]) >= 2
    assert all({"step", "seconds", "val_psnr"} <= set(point) for point in training["curve"])
    assert training["cpu_curves"] and Path(training["checkpoint"]).is_file()
    for name in sections:
        assert f"\n{name}" in result.stdout  # a table row per section


def assert_throughput(throughput: dict) -> None:
    assert throughput["status"] == "ok, 2 skipped", throughput  # the smoke run does not compile
    assert throughput["matmul_bf16"]["tflops"] > 0
    for key in ("encode", "render"):
        assert throughput[key] and all("fraction_of_bf16_matmul" in r for r in throughput[key])
    train = throughput["train"]
    measured = [row for row in train if "median_s" in row]
    assert {(r["task"], r["precision"]) for r in measured} == {
        ("image", "fp32"), ("image", "bf16"), ("nerf", "fp32"), ("nerf", "bf16"),
    }  # fmt: skip
    assert all(row["fraction_of_bf16_matmul"] > 0 for row in measured)
    assert [row["compile"] for row in train if "skipped" in row] == [True, True]
    assert np.isfinite([row["ms_per_step"] for row in measured]).all()
