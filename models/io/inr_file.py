"""The `.inr` file: a safetensors file holding an INR's complete weights plus JSON metadata.

Rendering needs only this file, not the meta-learner. Tensors `layer.{i}` of shape (in + 1, out),
and `shift_grid` (cells, width) for a spatial INR (INRConfig.tensor_shapes);
metadata key `format` = "transinr.inr", `format_version`, and `transinr` = JSON with the task, the
INR architecture, coordinate convention and the typed header of models/io/inr_header.py (native
size, content box or cameras, source model, PSNR).
The header is read and checked (format, version, every tensor's name, dtype and shape against
the declared architecture, sizes) before any tensor is allocated.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors

from models.core.config import INRConfig
from models.core.inr import INRWeights
from models.errors import TransInrError
from models.io.inr_header import HEADERS, Header, header_from_dict, header_to_dict, shown
from models.io.safetensors_io import (  # noqa: F401  (atomic_write, peek_format: re-exported)
    MAX_FILE_BYTES,
    atomic_write,
    parse_json,
    peek_format,
    read_safetensors_header,
    safetensors_bytes,
)

FORMAT_NAME = "transinr.inr"
FORMAT_VERSION = 1
COORDINATES = "pixel centres in (-1, 1), (y, x) order, row-major; y grows downwards"
DTYPES = {"float32": (torch.float32, "F32"), "float16": (torch.float16, "F16")}


@dataclass
class InrFile:
    """An INR's weights (per layer (in + 1, out), no batch dim) and what they stand for."""

    weights: INRWeights
    inr: INRConfig
    task: str
    header: Header  # what the INR stands for: ImageHeader or NerfHeader

    def batched(self, device: torch.device | str = "cpu") -> INRWeights:
        """Weights as a batch of one, float32 on `device`."""
        return [w.to(device=device, dtype=torch.float32)[None] for w in self.weights]

    def parameter_count(self) -> int:
        return sum(w.numel() for w in self.weights)


def inr_bytes(inr_file: InrFile, dtype: str = "float32") -> bytes:
    """Serialise to safetensors bytes; non-finite weights are refused, never written."""
    if dtype not in DTYPES:
        raise TransInrError(f"unknown --dtype '{dtype}'; choose float32 or float16")
    if not all(torch.isfinite(w).all() for w in inr_file.weights):
        raise TransInrError("the INR weights are not finite (NaN or inf); nothing written")
    names = [name for name, _ in inr_file.inr.tensor_shapes()]
    if len(names) != len(inr_file.weights):
        raise TransInrError(
            f"the INR has {len(inr_file.weights)} weight tensors, its architecture {len(names)}"
        )
    tensors = {
        name: weight.detach().to("cpu", DTYPES[dtype][0]).contiguous()
        for name, weight in zip(names, inr_file.weights, strict=True)
    }
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise TransInrError(f"the weights overflow {dtype}; use --dtype float32")
    if not isinstance(inr_file.header, HEADERS[inr_file.task]):
        raise TransInrError(f"a {inr_file.task} INR needs a {HEADERS[inr_file.task].__name__}")
    header = {
        **header_to_dict(inr_file.header),
        "task": inr_file.task,
        "inr": dataclasses.asdict(inr_file.inr),
        "coordinates": COORDINATES,
    }
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "transinr": json.dumps(header, sort_keys=True),
    }
    return safetensors_bytes(tensors, metadata)


def save_inr(inr_file: InrFile, path: str | Path, dtype: str = "float32") -> None:
    atomic_write(Path(path), inr_bytes(inr_file, dtype))


TASK_SHAPES = {"image": (2, 3), "nerf": (3, 4)}  # (coordinate dims, outputs) of each task's INR
MAX_INR_WIDTH = 2048  # widest INR a file may hold (the paper's: 256): rendering costs width^2
MAX_INR_PARAMETERS = 1 << 24  # 64 MB of float32 weights (the paper's INRs: 0.3 M parameters)


def check_cost(inr: INRConfig, name: str) -> None:
    """An INR a file may hold: not so wide or large that rendering it would take gigabytes."""
    count = inr.parameter_count()
    if inr.width > MAX_INR_WIDTH or count > MAX_INR_PARAMETERS:
        raise TransInrError(
            f"{name}: an INR of {inr.depth} layers of width {inr.width} ({count:,} parameters) "
            f"is larger than any transinr writes (width up to {MAX_INR_WIDTH}, "
            f"{MAX_INR_PARAMETERS:,} parameters); the file is corrupt or hostile: re-encode it"
        )


def check_task(task: str, inr: INRConfig, name: str) -> None:
    """The task must be known and match the architecture's coordinate and output sizes."""
    if task not in TASK_SHAPES:
        raise TransInrError(f"{name} is a {shown(task)} INR, unknown to this transinr; upgrade it")
    coord_dim, out_dim = TASK_SHAPES[task]
    if (inr.coord_dim, inr.out_dim) != (coord_dim, out_dim):
        raise TransInrError(
            f"{name}: a {task} INR maps {coord_dim}-D coordinates to {out_dim} outputs, this one "
            f"{inr.coord_dim}-D to {inr.out_dim}; the file is corrupt: re-encode it"
        )


FILE_SIGNATURES = {
    b"\x89PNG": "PNG image",
    b"\xff\xd8\xff": "JPEG image",
    b"GIF8": "GIF image",
    b"RIFF": "RIFF (WebP image or audio) file",
    b"BM": "BMP image",
    b"II*\x00": "TIFF image",
    b"MM\x00*": "TIFF image",
    b"PK\x03\x04": "zip archive",
    b"%PDF": "PDF document",
    b"\x80\x02": "pickle",
    b"{": "JSON file",
}


def known_file_kind(start: bytes) -> str | None:
    """What a file that is not safetensors is, from its first bytes (None: no known signature).
    A safetensors file starts with a little-endian header length, then '{'."""
    if len(start) >= 9 and start[8:9] == b"{":
        return None
    for signature, kind in FILE_SIGNATURES.items():
        if start.startswith(signature):
            return kind
    return None


def load_inr(path: str | Path) -> InrFile:
    """Read and validate an `.inr` file; any problem is a one-line TransInrError."""
    path = Path(path)
    if not path.is_file():
        raise TransInrError(f".inr file not found: {path}; check the path")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise TransInrError(f"{path} is larger than any .inr file we write; is it the right file?")
    data = path.read_bytes()
    kind = known_file_kind(data[:16])
    if kind is not None:
        raise TransInrError(
            f"{path} is not an .inr file (it is a {kind}); make one with `transinr encode`"
        )
    header = read_safetensors_header(data, str(path))
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise TransInrError(
            f"{path} is not a transinr .inr file (no '{FORMAT_NAME}' format tag); "
            "make one with `transinr encode`"
        )
    try:
        version = int(metadata.get("format_version", ""))
        info = parse_json(metadata["transinr"])
        if not isinstance(info, dict) or not isinstance(info.get("task"), str):
            raise ValueError("not an object with a task")
    except (KeyError, ValueError, TypeError, OverflowError):  # e.g. a version of Infinity
        raise TransInrError(f"{path} has unreadable transinr metadata; re-encode it") from None
    if version > FORMAT_VERSION:
        raise TransInrError(
            f"{path} is .inr format version {version}, newer than this transinr reads "
            f"({FORMAT_VERSION}); upgrade transinr"
        )
    inr = INRConfig.from_dict(info.pop("inr", None), f"{path}: INR architecture")
    task = info.pop("task")
    check_task(task, inr, str(path))
    check_cost(inr, str(path))
    info.pop("coordinates", None)
    typed_header = header_from_dict(task, info, str(path))
    expected = dict(inr.tensor_shapes())
    found = {key: value for key, value in header.items() if key != "__metadata__"}
    if set(found) != set(expected):
        raise TransInrError(
            f"{path} holds tensors {sorted(found)} but its architecture needs {sorted(expected)}; "
            "the file is corrupt: re-encode it"
        )
    allowed = {code for _, code in DTYPES.values()}
    for key, shape in expected.items():
        dtype, found_shape = found[key].get("dtype"), found[key].get("shape")
        if not isinstance(dtype, str) or dtype not in allowed or found_shape != shape:
            raise TransInrError(
                f"{path}: tensor {key} is {dtype!r} {found_shape!r}, expected F32/F16 {shape}; "
                "the file is corrupt: re-encode it"
            )
    try:
        tensors = load_safetensors(data)
    except Exception as error:  # safetensors raises its own error types
        raise TransInrError(f"cannot read tensors from {path} ({error}); re-encode it") from None
    weights = [tensors[name] for name in expected]
    if not all(torch.isfinite(w).all() for w in weights):
        raise TransInrError(f"{path} holds non-finite weights; re-encode it")
    return InrFile(weights=weights, inr=inr, task=task, header=typed_header)
