"""Data-parallel training with torchrun (gloo on CPU): two processes with a global batch of 8
must end with the weights of one process with the same batch and seed. This catches gradients
that are never averaged (or averaged twice), shards that overlap, and a wrong global batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.io.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "assets" / "examples" / "photos"


def train(run_dir: Path, processes: int, steps: int, *extra: str) -> None:
    arguments = ["-m", "transinr_cli", "train", "--dataset", "folder", "--data", str(PHOTOS),
                 "--preset", "tiny", "--steps", str(steps), "--batch-size", "8", "--val-every",
                 "3", "--workers", "0", "--out", str(run_dir), "--quiet", *extra]  # fmt: skip
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc_per_node", str(processes)]  # fmt: skip
        command = launcher + arguments
    else:
        command = [sys.executable, *arguments]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.safetensors").model_state


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("single") / "run"
    train(run_dir, 1, 6)
    return run_dir


def test_two_processes_equal_one(tmp_path, single_run):
    train(tmp_path / "ddp", 2, 6)
    single, ddp = weights(single_run), weights(tmp_path / "ddp")
    assert single.keys() == ddp.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], atol=1e-5, rtol=0)
    train_state = load_checkpoint(tmp_path / "ddp" / "last.safetensors").train_state
    single_state = load_checkpoint(single_run / "last.safetensors").train_state
    # validation is sharded over the ranks and all-reduced: the same score as one process
    assert [h["step"] for h in train_state["history"]] == [3, 6]
    assert [h["val_psnr"] for h in train_state["history"]] == pytest.approx(
        [h["val_psnr"] for h in single_state["history"]], abs=1e-4
    )


def test_resume_with_another_world_size(tmp_path, single_run):
    train(tmp_path / "mixed", 2, 3)  # 3 steps on 2 processes ...
    train(tmp_path / "mixed", 1, 6, "--resume")  # ... then 3 more on 1
    single, mixed = weights(single_run), weights(tmp_path / "mixed")
    for name in single:
        torch.testing.assert_close(mixed[name], single[name], atol=1e-5, rtol=0)


def test_each_gpu_process_has_its_own_gpu_under_nccl_and_may_share_under_gloo(monkeypatch):
    from models.errors import TransInrError
    from models.tasks.distributed import cuda_backend, gpu_of

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert gpu_of(0, "nccl") == 0 and gpu_of(1, "gloo") == 0 and gpu_of(2, "gloo") == 0
    with pytest.raises(TransInrError, match="NCCL cannot share"):
        gpu_of(1, "nccl")
    monkeypatch.delenv("TRANSINR_DDP_BACKEND", raising=False)
    assert cuda_backend() == "nccl"
    monkeypatch.setenv("TRANSINR_DDP_BACKEND", "gloo")
    assert cuda_backend() == "gloo"
    monkeypatch.setenv("TRANSINR_DDP_BACKEND", "mpi")
    with pytest.raises(TransInrError, match="TRANSINR_DDP_BACKEND"):
        cuda_backend()
