"""The `.inr` file: round trips, exact renders from the file, and refusal of every bad file."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors
from safetensors.torch import save_file

from models.core.inr import init_weights
from models.core.presets import preset_config
from models.core.rendering import render_image, render_quantized
from models.errors import TransInrError
from models.io.images import FitInfo
from models.io.inr_file import FORMAT_NAME, InrFile, inr_bytes, load_inr, peek_format, save_inr
from models.io.inr_header import ImageHeader

FIT = FitInfo("pad", 40, 30, 40, 30, (-0.75, -1.0, 0.75, 1.0), (0, 0, 40, 30))
INFO = {
    "native_width": 40,
    "native_height": 30,
    "content_box": (-0.75, -1.0, 0.75, 1.0),
    "source_model": "tiny-0123456789ab",
    "encode_psnr": 21.5,
    "fit": FIT,
}


SIZE = {"native_width": 40, "native_height": 30}


@pytest.fixture
def inr_file() -> InrFile:
    torch.manual_seed(0)
    config = preset_config("tiny").inr
    weights = [w[0] + 0.05 * torch.randn_like(w[0]) for w in init_weights(config)]
    return InrFile(weights=weights, inr=config, task="image", header=ImageHeader(**INFO))


@pytest.fixture
def saved(tmp_path, inr_file) -> Path:
    path = tmp_path / "face.inr"
    save_inr(inr_file, path)
    return path


def split_file(data: bytes) -> tuple[dict, bytes]:
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size]), data[8 + size :]


def join_file(header: dict, payload: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + payload


def rewrite(path: Path, change) -> Path:
    """Apply `change(header)` to the safetensors header of `path`, keeping the tensor bytes."""
    header, payload = split_file(path.read_bytes())
    change(header)
    path.write_bytes(join_file(header, payload))
    return path


def test_round_trip_keeps_weights_config_and_info(saved, inr_file):
    loaded = load_inr(saved)
    assert loaded.task == "image"
    assert loaded.inr == inr_file.inr
    assert len(loaded.weights) == len(inr_file.weights)
    for a, b in zip(loaded.weights, inr_file.weights, strict=True):
        assert a.dtype == torch.float32
        assert torch.equal(a, b)
    for key, value in INFO.items():
        assert getattr(loaded.header, key) == value
    assert loaded.parameter_count() == inr_file.inr.parameter_count()
    assert peek_format(saved) == FORMAT_NAME
    assert not list(saved.parent.glob(".face.inr.*"))  # no temporary file left behind


def test_render_from_file_equals_render_from_memory(saved, inr_file):
    loaded = load_inr(saved)
    box = tuple(INFO["content_box"])
    memory = [w[None] for w in inr_file.weights]
    assert torch.equal(
        render_image(loaded.batched(), loaded.inr, 15, 20, box),
        render_image(memory, inr_file.inr, 15, 20, box),
    )
    assert (
        render_quantized(loaded.batched(), loaded.inr, 9, 9, bit_depth=16)
        == render_quantized(memory, inr_file.inr, 9, 9, bit_depth=16)
    ).all()


def test_float16_file_is_half_the_size_and_renders_closely(tmp_path, saved, inr_file):
    half = tmp_path / "half.inr"
    save_inr(inr_file, half, dtype="float16")
    loaded = load_inr(half)
    assert loaded.weights[0].dtype == torch.float16
    ratio = half.stat().st_size / saved.stat().st_size
    assert 0.45 < ratio < 0.6
    memory = [w[None] for w in inr_file.weights]
    reference = render_image(memory, inr_file.inr, 16, 16)
    approx = render_image(loaded.batched(), loaded.inr, 16, 16)
    assert (approx - reference).abs().max() < 2e-2
    assert not torch.equal(approx, reference)  # float16 really rounded something


def test_unknown_dtype_is_refused(inr_file):
    with pytest.raises(TransInrError, match="dtype"):
        inr_bytes(inr_file, "int8")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(TransInrError, match="not found"):
        load_inr(tmp_path / "nothing.inr")


def test_directory_is_refused(tmp_path):
    with pytest.raises(TransInrError):
        load_inr(tmp_path)


def test_truncated_files_are_refused(tmp_path, saved):
    data = saved.read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    cuts = [0, 1, 7, 8, 9, 50, 8 + header_size - 1, 8 + header_size, 8 + header_size + 3]
    cuts += [len(data) // 2, len(data) - 4, len(data) - 1]
    for cut in cuts:
        path = tmp_path / f"cut{cut}.inr"
        path.write_bytes(data[:cut])
        with pytest.raises(TransInrError):
            load_inr(path)


def test_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.randn(4, 4), "bias": torch.randn(4)}, str(path))
    with pytest.raises(TransInrError, match="not a transinr .inr file"):
        load_inr(path)
    path = tmp_path / "foreign-with-metadata.safetensors"
    save_file({"layer.0": torch.randn(4, 4)}, str(path), metadata={"format": "pt"})
    with pytest.raises(TransInrError, match="not a transinr .inr file"):
        load_inr(path)


def test_newer_format_version_is_refused(saved):
    rewrite(saved, lambda header: header["__metadata__"].update(format_version="999"))
    with pytest.raises(TransInrError, match="version 999"):
        load_inr(saved)


@pytest.mark.parametrize(
    "metadata_change",
    [
        {"format_version": "one"},
        {"transinr": "{not json"},
        {"transinr": json.dumps({"task": "image"})},  # no architecture
        {"transinr": json.dumps({"inr": {"width": 32}})},  # no task
        {"transinr": json.dumps({"task": "image", "inr": {"sparkle": 1}})},
        {"transinr": json.dumps(["task", "inr"])},
        {"transinr": "5"},
        {"transinr": "null"},
    ],
    ids=["version", "json", "no-inr", "no-task", "unknown-field", "list", "number", "null"],
)
def test_unreadable_metadata_is_refused(saved, metadata_change):
    def change(header):
        header["__metadata__"].update(metadata_change)

    rewrite(saved, change)
    with pytest.raises(TransInrError):
        load_inr(saved)


def edit_header(path: Path, **changes) -> Path:
    """Set (or, with value DROP, remove) fields of the file's typed header."""

    def change(header):
        fields = json.loads(header["__metadata__"]["transinr"])
        for key, value in changes.items():
            fields.pop(key) if value is DROP else fields.__setitem__(key, value)
        header["__metadata__"]["transinr"] = json.dumps(fields)

    return rewrite(path, change)


DROP = object()


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"sparkle": 1}, "unknown header field 'sparkle'"),
        ({"native_width": "40"}, "'native_width' is \"40\", not a int"),
        ({"native_width": 0}, "outside"),
        ({"native_width": True}, "not a int"),
        ({"native_width": DROP}, "'native_width' is missing"),
        ({"encode_psnr": 1e308 * 10}, "not a float"),
        ({"content_box": [-1, -1, 1]}, "needs 4 items"),
        ({"content_box": [1, -1, -1, 1]}, "empty"),
        ({"content_box": [-2, -1, 1, 1]}, "outside"),
        ({"greyscale": "yes"}, "not a bool"),
        ({"fit": {"mode": "pad"}}, "'fit.source_width' is missing"),
        ({"fit": [1]}, "not an object"),
        ({"source_image": "x" * 5000}, "not a str"),
        ({"support_views": [0]}, "unknown header field 'support_views'"),  # a NeRF field
    ],
    ids=lambda value: str(value)[:30],
)
def test_the_typed_header_is_strict(saved, changes, needle):
    """Unknown keys, wrong types, missing fields and out-of-range values are refused with one
    line naming the field; nothing else in the file is looked at first."""
    edit_header(saved, **changes)
    with pytest.raises(TransInrError) as error:
        load_inr(saved)
    message = str(error.value)
    assert needle in message
    assert "\n" not in message and message.endswith("re-encode it")


def test_files_without_the_newer_fields_still_load(saved):
    """A file of this release written before `greyscale` and `input_size` were recorded."""
    edit_header(saved, greyscale=DROP, input_size=DROP, fit=DROP)
    header = load_inr(saved).header
    assert (header.greyscale, header.input_size, header.fit) == (False, 40, None)


def test_a_header_is_written_as_it_is_read(saved, inr_file):
    """Fields left unset are not written; what is written comes back equal."""
    fields = json.loads(split_file(saved.read_bytes())[0]["__metadata__"]["transinr"])
    assert "refined_psnr" not in fields and "psnr" not in fields
    assert load_inr(saved).header == dataclasses.replace(
        inr_file.header, tool_version=fields["tool_version"]
    )


@pytest.mark.parametrize(
    "inr_change",
    [{"width": "wide"}, {"depth": "3"}, {"fourier_count": None}],
    ids=["width-string", "depth-string", "fourier-null"],
)
def test_mistyped_architecture_is_refused(saved, inr_change):
    def change(header):
        info = json.loads(header["__metadata__"]["transinr"])
        info["inr"].update(inr_change)
        header["__metadata__"]["transinr"] = json.dumps(info)

    rewrite(saved, change)
    with pytest.raises(TransInrError):
        load_inr(saved)


def test_wrong_tensor_shapes_are_refused(tmp_path, inr_file):
    tensors = {f"layer.{i}": w for i, w in enumerate(inr_file.weights)}
    tensors["layer.1"] = torch.zeros(33, 31)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": "1",
        "transinr": json.dumps({"task": "image", "inr": inr_file.inr.__dict__, **SIZE}),
    }
    path = tmp_path / "shapes.inr"
    path.write_bytes(save_safetensors(tensors, metadata=metadata))
    with pytest.raises(TransInrError, match="layer.1"):
        load_inr(path)


def test_missing_and_extra_tensors_are_refused(tmp_path, inr_file):
    metadata = {
        "format": FORMAT_NAME,
        "format_version": "1",
        "transinr": json.dumps({"task": "image", "inr": inr_file.inr.__dict__, **SIZE}),
    }
    tensors = {f"layer.{i}": w for i, w in enumerate(inr_file.weights)}
    for name, changed in [
        ("missing", {k: v for k, v in tensors.items() if k != "layer.2"}),
        ("extra", {**tensors, "layer.3": torch.zeros(4, 4)}),
    ]:
        path = tmp_path / f"{name}.inr"
        path.write_bytes(save_safetensors(changed, metadata=metadata))
        with pytest.raises(TransInrError, match="tensors"):
            load_inr(path)


def test_wrong_dtype_is_refused(tmp_path, inr_file):
    metadata = {
        "format": FORMAT_NAME,
        "format_version": "1",
        "transinr": json.dumps({"task": "image", "inr": inr_file.inr.__dict__, **SIZE}),
    }
    tensors = {f"layer.{i}": w.double() for i, w in enumerate(inr_file.weights)}
    path = tmp_path / "double.inr"
    path.write_bytes(save_safetensors(tensors, metadata=metadata))
    with pytest.raises(TransInrError, match="F64"):
        load_inr(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_non_finite_weights_are_refused(tmp_path, inr_file, bad, dtype):
    # Writing refuses them: nothing is written.
    path = tmp_path / "bad.inr"
    finite = [w.clone() for w in inr_file.weights]
    inr_file.weights[1][3, 4] = bad
    with pytest.raises(TransInrError, match="not finite"):
        save_inr(inr_file, path, dtype=dtype)
    assert list(tmp_path.iterdir()) == []
    # Reading refuses them too: a valid file whose weight [3, 4] of layer 1 is patched in place.
    inr_file.weights[:] = finite
    save_inr(inr_file, path, dtype=dtype)
    header, payload = split_file(path.read_bytes())
    torch_dtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
    item = torch.tensor([bad], dtype=torch_dtype).numpy().tobytes()
    start = header["layer.1"]["data_offsets"][0] + (3 * header["layer.1"]["shape"][1] + 4) * len(
        item
    )
    payload = payload[:start] + item + payload[start + len(item) :]
    path.write_bytes(join_file(header, payload))
    with pytest.raises(TransInrError, match="non-finite"):
        load_inr(path)


def test_header_claiming_a_huge_tensor_is_refused(saved):
    def huge_offsets(header):
        header["layer.0"]["shape"] = [1 << 20, 1 << 20]
        header["layer.0"]["data_offsets"] = [0, 4 << 40]

    rewrite(saved, huge_offsets)
    with pytest.raises(TransInrError):
        load_inr(saved)


def test_header_claiming_a_huge_shape_within_the_file_is_refused(saved):
    rewrite(saved, lambda header: header["layer.0"].update(shape=[1 << 30, 1 << 30]))
    with pytest.raises(TransInrError, match="layer.0"):
        load_inr(saved)


def test_header_size_field_beyond_the_file_is_refused(saved):
    data = saved.read_bytes()
    saved.write_bytes(struct.pack("<Q", 1 << 62) + data[8:])
    with pytest.raises(TransInrError):
        load_inr(saved)
    saved.write_bytes(struct.pack("<Q", 100) + b"x" * 100)
    with pytest.raises(TransInrError):
        load_inr(saved)


def test_offsets_not_matching_the_shape_are_refused(saved):
    # Offsets inside the file but too short for the declared shape: safetensors itself refuses.
    def shrink(header):
        start = header["layer.0"]["data_offsets"][0]
        header["layer.0"]["data_offsets"] = [start, start + 4]

    rewrite(saved, shrink)
    with pytest.raises(TransInrError):
        load_inr(saved)


def test_checkpoint_file_is_not_an_inr(tiny_run):
    with pytest.raises(TransInrError, match="not a transinr .inr file"):
        load_inr(tiny_run / "last.safetensors")
