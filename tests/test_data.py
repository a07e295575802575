"""Data sets: the shared celeba-89 subset, folder splits, and the resumable epoch sampler."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from support import synthetic_image, write_png

from models.data.image_data import ImageDataset, folder_files
from models.data.loading import EpochSampler
from models.errors import TransInrError

CELEBA_89 = (Path(__file__).parents[1] / ".." / "shared" / "data" / "celeba-89").resolve()


@pytest.fixture(scope="module")
def celeba_root() -> Path:
    if not (CELEBA_89 / "list_eval_partition.txt").is_file():
        pytest.skip(f"celeba-89 data not found at {CELEBA_89}")
    return CELEBA_89


@pytest.mark.parametrize(
    ("split", "count", "first", "last"),
    [
        ("train", 8000, "000001.jpg", "008000.jpg"),
        ("val", 1000, "008001.jpg", "009000.jpg"),
        ("test", 1000, "009001.jpg", "010000.jpg"),
    ],
)
def test_celeba_89_splits(celeba_root, split, count, first, last):
    dataset = ImageDataset("celeba", celeba_root, split, 89)
    assert len(dataset) == count
    assert dataset.files[0].name == first and dataset.files[-1].name == last
    assert dataset.files[0].is_file() and dataset.files[-1].is_file()
    image = dataset[0]
    assert image.shape == (3, 89, 89)
    assert image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.01
    assert torch.equal(dataset[(0, 123)], image)  # no augmentation outside Imagenette


def test_celeba_89_limit(celeba_root):
    assert len(ImageDataset("celeba", celeba_root, "test", 89, limit=5)) == 5


def test_missing_data_folders_are_user_errors(tmp_path):
    with pytest.raises(TransInrError, match="img_align_celeba"):
        ImageDataset("celeba", tmp_path, "train", 32)
    with pytest.raises(TransInrError, match="not found"):
        ImageDataset("folder", tmp_path / "nowhere", "train", 32)
    with pytest.raises(TransInrError, match="no train images"):
        ImageDataset("folder", tmp_path, "train", 32)
    with pytest.raises(TransInrError, match="dataset"):
        ImageDataset("mnist", tmp_path, "train", 32)
    with pytest.raises(TransInrError, match="split"):
        ImageDataset("folder", tmp_path, "holdout", 32)


def test_folder_split_is_deterministic_and_covers_every_file(tmp_path):
    for index in range(30):
        write_png(tmp_path / f"a{index}.png", synthetic_image(index, 8, 8))
        write_png(tmp_path / "sub" / f"b{index}.jpg", synthetic_image(index, 8, 8))
    (tmp_path / "notes.txt").write_text("not an image")
    everything = sorted(p for p in tmp_path.rglob("*") if p.suffix in (".png", ".jpg"))
    splits = {split: folder_files(tmp_path, split) for split in ("train", "val", "test")}
    assert sorted(itertools.chain.from_iterable(splits.values())) == everything
    assert sum(len(files) for files in splits.values()) == 60  # disjoint
    assert all(splits.values())  # 60 files: every split gets some
    assert len(splits["train"]) > len(splits["val"]) and len(splits["train"]) > len(splits["test"])
    again = {split: folder_files(tmp_path, split) for split in ("train", "val", "test")}
    assert again == splits
    assert any(p.parent.name == "sub" for p in everything)  # searched recursively


def test_folder_split_depends_only_on_the_relative_path(tmp_path):
    for root in (tmp_path / "one", tmp_path / "two" / "deeper"):
        for index in range(12):
            write_png(root / f"x{index}.png", synthetic_image(index, 4, 4))
    names = {
        split: [p.name for p in folder_files(tmp_path / "one", split)]
        for split in ("train", "val", "test")
    }
    moved = {
        split: [p.name for p in folder_files(tmp_path / "two" / "deeper", split)]
        for split in ("train", "val", "test")
    }
    assert names == moved


def take(sampler: EpochSampler, count: int) -> list[tuple[int, int]]:
    return list(itertools.islice(iter(sampler), count))


def test_epoch_sampler_is_deterministic_per_seed_and_epoch():
    first = take(EpochSampler(10, seed=3), 30)
    assert first == take(EpochSampler(10, seed=3), 30)
    indices = [index for index, _ in first]
    for epoch in range(3):
        assert sorted(indices[epoch * 10 : (epoch + 1) * 10]) == list(range(10))
    assert indices[:10] != indices[10:20]  # reshuffled every epoch
    assert take(EpochSampler(10, seed=4), 10) != first[:10]
    epoch_one = take(EpochSampler(10, seed=3, epoch=1), 10)
    assert epoch_one == first[10:20]
    assert len({seed for _, seed in first}) == 30  # distinct augmentation seeds


@pytest.mark.parametrize("start", [0, 1, 7, 9])
def test_epoch_sampler_started_mid_epoch_continues_the_same_order(start):
    full = take(EpochSampler(10, seed=5), 40)
    resumed = take(EpochSampler(10, seed=5, epoch=0, start=start), 40 - start)
    assert resumed == full[start:]
    later = take(EpochSampler(10, seed=5, epoch=2, start=start), 10)
    assert later == full[20 + start : 30 + start]


def test_imagenette_layout_random_crop_and_flip(tmp_path):
    for split, count in (("train", 3), ("val", 2)):
        for class_index in range(2):
            folder = tmp_path / split / f"n0{class_index}"
            folder.mkdir(parents=True)
            for index in range(count):
                write_png(folder / f"{index}.png", synthetic_image(index, 48, 64))
    train = ImageDataset("imagenette", tmp_path, "train", 32)
    val = ImageDataset("imagenette", tmp_path, "val", 32)
    test = ImageDataset("imagenette", tmp_path, "test", 32)
    assert (len(train), len(val), len(test)) == (6, 4, 4)  # test reads val/
    crops = [train[(0, seed)] for seed in range(12)]
    assert all(crop.shape == (3, 32, 32) for crop in crops)
    assert torch.equal(train[(0, 5)], crops[5])  # same seed, same crop
    assert len({crop.sum().item() for crop in crops}) > 1  # random crops and flips differ
    full = torch.from_numpy(synthetic_image(0, 48, 64)).permute(2, 0, 1).float() / 255.0
    windows = full.unfold(1, 32, 1).unfold(2, 32, 1)  # (3, 17, 33, 32, 32): every crop
    for crop in crops:
        found = any(
            torch.allclose(candidate, windows[:, i, j], atol=1e-6)
            for candidate in (crop, crop.flip(-1))
            for i in range(windows.shape[1])
            for j in range(windows.shape[2])
        )
        assert found  # a real crop of the image, possibly flipped
    assert torch.equal(val[0], val[0])  # evaluation: deterministic resize + centre crop


def test_split_all_is_every_image_of_each_layout(tmp_path):
    """`all` (eval --split all): a folder's every file, CelebA's three partitions, Imagenette's
    train/ and val/; never a random crop."""
    folder = make_files(tmp_path / "folder", [f"sub/{index}.png" for index in range(12)])
    everything = ImageDataset("folder", folder, "all", 16).files
    splits = [folder_files(folder, split) for split in ("train", "val", "test")]
    assert everything == sorted(itertools.chain.from_iterable(splits)) and len(everything) == 12
    celeba = make_files(tmp_path / "celeba", [f"img_align_celeba/{i}.jpg" for i in range(4)])
    (celeba / "list_eval_partition.txt").write_text("0.jpg 0\n1.jpg 1\n2.jpg 2\n3.jpg 0\n")
    assert [p.name for p in ImageDataset("celeba", celeba, "all", 16).files] == [
        "0.jpg", "1.jpg", "2.jpg", "3.jpg"
    ]  # fmt: skip
    nette = make_files(tmp_path / "nette", ["train/n0/a.png", "train/n1/b.png", "val/n0/c.png"])
    every = ImageDataset("imagenette", nette, "all", 16)
    assert [p.name for p in every.files] == ["a.png", "b.png", "c.png"]
    assert not every.random_crop
    with pytest.raises(TransInrError, match="no images found"):
        ImageDataset("folder", make_files(tmp_path / "empty", ["notes.txt"]), "all", 16)


def make_files(root: Path, names: list[str]) -> Path:
    """Empty files (listing only: nothing is decoded) named `names` under `root`."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).touch()
    return root


class StopSignalHandlers(torch.utils.data.Dataset):
    """Items report the SIGINT and SIGTERM handlers of the process that loads them."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        import signal

        ignored = [signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM)]
        return torch.tensor(ignored)


def test_loader_workers_leave_stop_signals_to_the_main_process():
    from models.data.loading import guarded_loader

    batches = list(guarded_loader(StopSignalHandlers(), batch_size=2, num_workers=1))
    assert batches[0].all()  # ignored in the worker


def test_sigterm_to_the_whole_process_group_checkpoints_and_exits_cleanly(tmp_path, image_folder):
    """`pkill -f "transinr train"` or a cluster's stop reaches the loader workers too: the run
    still writes its checkpoint and says how to resume, with no traceback."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from models.io.checkpoint import load_checkpoint

    run = tmp_path / "run"
    command = [sys.executable, "-m", "transinr_cli", "train", "--dataset", "folder", "--data",
               str(image_folder), "--preset", "tiny", "--steps", "1000000", "--workers", "1",
               "--checkpoint-every", "3", "--val-every", "1000000", "--device", "cpu",
               "--out", str(run), "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (run / "last.safetensors").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (run / "last.safetensors").exists(), process.stderr.read()
        time.sleep(1.0)
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "resume with" in stderr
    step = load_checkpoint(run / "last.safetensors").train_state["step"]
    assert f"interrupted at step {step};" in stderr
