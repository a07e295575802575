"""Safetensors files, read and written defensively: the only file format for tensors we use.

Writing: the header is ours (sorted keys), so the same tensors give the same bytes, and every
file is written to a temporary name, fsynced and renamed. Reading: the header is parsed and
checked (size, JSON, every tensor inside the file) before any tensor is touched.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import torch

from models.errors import TransInrError

MAX_HEADER_BYTES = 1 << 20
MAX_FILE_BYTES = 1 << 30


SAFETENSORS_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.uint8: "U8", torch.int8: "I8", torch.int32: "I32", torch.int64: "I64",
    torch.bool: "BOOL",
}  # fmt: skip


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file, written with sorted keys so that the same tensors and metadata always
    give the same bytes (the safetensors package orders the metadata differently each call)."""
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the tensor data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def parse_json(text: bytes | str) -> object:
    """json.loads that turns every failure (bad UTF-8 or syntax, deep nesting, giant integers)
    into ValueError."""
    try:
        return json.loads(text)
    except (UnicodeDecodeError, RecursionError, ValueError) as error:
        raise ValueError(str(error)[:100]) from None


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: never a partial file."""
    path = Path(path)
    kept = "the previous file is intact" if path.exists() else "nothing was written"
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        raise TransInrError(
            f"cannot write {path} ({error.strerror}); {kept}: check the folder"
        ) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise TransInrError(f"cannot write {path} ({error.strerror}); {kept}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; some filesystems refuse fsync on a folder
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass


def read_safetensors_header(data: bytes, name: str) -> dict:
    """Parse and sanity-check a safetensors header without touching the tensor data."""
    if len(data) < 8:
        raise TransInrError(f"{name} is too short to be a safetensors file; is it truncated?")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > MAX_HEADER_BYTES or 8 + header_size > len(data):
        raise TransInrError(f"{name} has a broken safetensors header; is it truncated?")
    try:
        header = parse_json(data[8 : 8 + header_size])
    except ValueError:
        raise TransInrError(f"{name} has a broken safetensors header; is it corrupt?") from None
    if not isinstance(header, dict):
        raise TransInrError(f"{name} has a broken safetensors header; is it corrupt?")
    payload = len(data) - 8 - header_size
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= payload
        ):
            raise TransInrError(f"{name}: tensor {key!r} lies outside the file; is it truncated?")
    return header


def peek_format(path: str | Path) -> str | None:
    """The `format` tag in a safetensors file's metadata (None if absent or unreadable)."""
    try:
        with open(path, "rb") as stream:
            (size,) = struct.unpack("<Q", stream.read(8))
            if size > MAX_HEADER_BYTES:
                return None
            metadata = parse_json(stream.read(size)).get("__metadata__") or {}
        return metadata.get("format") if isinstance(metadata, dict) else None
    except (OSError, ValueError, struct.error, AttributeError):
        return None
