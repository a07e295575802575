"""Model checkpoints: exact round trips, and refusal of every bad file with TransInrError."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.core.inr import init_weights
from models.core.metalearner import TransInr
from models.core.presets import preset_config
from models.errors import TransInrError
from models.io.checkpoint import load_checkpoint, save_checkpoint
from models.io.inr_file import InrFile, save_inr
from models.io.inr_header import ImageHeader

HEADER = ImageHeader(native_width=8, native_height=8)


@pytest.fixture
def checkpoint_path(tmp_path, tiny_run) -> Path:
    """A private copy of the tiny run's last checkpoint."""
    path = tmp_path / "model.safetensors"
    path.write_bytes((tiny_run / "last.safetensors").read_bytes())
    return path


def rewrite(path: Path, change) -> Path:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    change(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])
    return path


def change_config(**fields):
    def change(header):
        config = json.loads(header["__metadata__"]["config"])
        config.update(fields)
        header["__metadata__"]["config"] = json.dumps(config)

    return change


def change_metadata(**fields):
    return lambda header: header["__metadata__"].update(fields)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    config = preset_config("tiny", groups=4)
    model = TransInr(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 32, 32))[0].sum().backward()
    optimizer.step()
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, config, {"step": 1, "note": "x"}, optimizer)
    loaded = load_checkpoint(path)
    assert loaded.config == config
    assert loaded.train_state == {"step": 1, "note": "x"}
    assert loaded.model_id.startswith("tiny-") and len(loaded.model_id) == len("tiny-") + 12
    rebuilt = loaded.build_model()
    for name, tensor in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor), name
    fresh = torch.optim.Adam(rebuilt.parameters(), lr=1e-3)
    fresh.load_state_dict(loaded.optimizer_state)
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(fresh.state_dict()["state"][index][key]), value)
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert all(
            torch.equal(a, b)
            for a, b in zip(model.eval()(images), rebuilt.eval()(images), strict=True)
        )
    assert load_checkpoint(path).model_id == loaded.model_id  # stable id


def test_run_folder_resolves_to_a_checkpoint(tiny_run):
    assert load_checkpoint(tiny_run).config.preset == "tiny"


def test_missing_checkpoint(tmp_path):
    with pytest.raises(TransInrError, match="not found"):
        load_checkpoint(tmp_path / "none.safetensors")
    with pytest.raises(TransInrError, match="not found"):
        load_checkpoint(tmp_path)  # a folder without checkpoints


def test_truncated_checkpoint(tmp_path, checkpoint_path):
    data = checkpoint_path.read_bytes()
    for cut in (0, 7, 8, 200, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(data[:cut])
        with pytest.raises(TransInrError):
            load_checkpoint(path)


def test_foreign_and_inr_files_are_not_checkpoints(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(TransInrError, match="not a checkpoint"):
        load_checkpoint(foreign)
    config = preset_config("tiny").inr
    inr = tmp_path / "face.inr"
    save_inr(InrFile([w[0] for w in init_weights(config)], config, "image", HEADER), inr)
    with pytest.raises(TransInrError, match="an .inr file"):
        load_checkpoint(inr)


def test_newer_checkpoint_version(checkpoint_path):
    rewrite(checkpoint_path, change_metadata(format_version="999"))
    with pytest.raises(TransInrError, match="version 999"):
        load_checkpoint(checkpoint_path)


def test_config_not_matching_the_tensors(checkpoint_path):
    rewrite(checkpoint_path, change_config(dim=32))
    with pytest.raises(TransInrError, match="does not match"):
        load_checkpoint(checkpoint_path)


def test_non_finite_weights(tmp_path):
    model = TransInr(preset_config("tiny"))
    with torch.no_grad():
        model.tokenizer.position_embedding[0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_checkpoint(path, model, model.config, {})
    with pytest.raises(TransInrError, match="non-finite"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "change",
    [
        change_metadata(config="{broken"),
        change_metadata(config=json.dumps({"sparkle": 1})),
        lambda header: header.__setitem__("__metadata__", ["transinr.checkpoint"]),
        change_metadata(config="[1, 2]"),
        change_config(image_size="big"),
        change_config(patch_size=0),
        change_metadata(train_state="[1]"),
        change_metadata(param_groups="{}"),
    ],
    ids=[
        "config-json",
        "config-unknown-field",
        "metadata-list",
        "config-list",
        "config-string-size",
        "config-zero-patch",
        "train-state-list",
        "param-groups-dict",
    ],
)
def test_corrupt_metadata_is_refused(checkpoint_path, change):
    rewrite(checkpoint_path, change)
    with pytest.raises(TransInrError):
        load_checkpoint(checkpoint_path)
