"""Peak memory of encoding large posed views (`transinr encode`; issue 18).

    python bench/view_memory.py                   # four 7000 x 7000 views, JPEG then PNG
    python bench/view_memory.py --side 4000 --formats png --json

Writes an object folder of four `--side` x `--side` RGBA-on-white views (a lit sphere seen from
four cameras, radius 4, learnit layout) in a temporary folder, once per format, then encodes it
with the Python API (models.api.encode: what `transinr encode FOLDER --views 0,1,2,3` does,
recorded as that command) in a freshly spawned process, with a tiny NeRF model (the `tiny`
preset, untrained, saved with models.io.checkpoint: the forward pass is what any model costs at
this size), and reads that process's peak resident memory from the kernel (its ru_maxrss).
The goal: under 1 GB (views are decoded reduced to MAX_VIEW_SIDE, never at full size).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_BYTES = 1 << 30
CAMERA_ANGLE_X = 0.6911112070083618  # learnit's


def sphere_view(side: int, shade: float):
    """A shaded disc on a transparent background, built a band of rows at a time."""
    import numpy as np
    from PIL import Image

    rgba = np.zeros((side, side, 4), dtype=np.uint8)
    centre, radius = side / 2, side / 4
    cols = np.arange(side, dtype=np.float32) - centre
    for top in range(0, side, 512):
        rows = np.arange(top, min(side, top + 512), dtype=np.float32)[:, None] - centre
        inside = rows**2 + cols[None, :] ** 2 < radius**2
        band = rgba[top : top + len(rows)]
        band[inside] = (int(200 * shade), int(120 * shade), 60, 255)
    return Image.fromarray(rgba, "RGBA")


def write_views(folder: Path, side: int, suffix: str) -> None:
    """Four views in the learnit layout; JPEG views are flattened on white (no alpha)."""
    from PIL import Image

    from models.nerf.rays import look_at_pose

    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for index in range(4):
        image = sphere_view(side, 0.6 + 0.1 * index)
        name = f"{index:03d}{suffix}"
        if suffix == ".jpg":
            white = Image.new("RGB", image.size, (255, 255, 255))
            white.paste(image, mask=image.split()[3])
            white.save(folder / name, quality=90)
        else:
            image.save(folder / name, compress_level=1)
        pose = look_at_pose(90.0 * index, 20.0, 4.0).double().tolist()
        frames.append({"file_path": f"./rgb/{name}", "transform_matrix": pose})
    transforms = {"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}
    (folder / "transforms.json").write_text(json.dumps(transforms))


def tiny_nerf_model(path: Path) -> Path:
    """An untrained `tiny` NeRF meta-learner, saved as a checkpoint."""
    import torch

    from models.core.metalearner import TransInr
    from models.core.presets import preset_config
    from models.io.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = preset_config("tiny", "nerf")
    save_checkpoint(path, TransInr(config), config, {"step": 0})
    return path


def report_peak(connection, function: Callable, args: tuple) -> None:
    """In the spawned process: function(*args), then its result and this process's peak
    resident bytes sent back."""
    result = function(*args)
    connection.send((result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
    connection.close()


def in_fresh_process(function: Callable, *args) -> tuple[object, int, float]:
    """function(*args) in a newly spawned interpreter (one thread), which starts from none of
    this process's pages: (its result, that process's peak resident bytes, seconds)."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # the child reads them
    started = time.perf_counter()
    child = context.Process(target=report_peak, args=(sender, function, args))
    child.start()
    sender.close()
    try:
        result, peak = receiver.recv()
    except EOFError:  # the child failed, its traceback on stderr
        child.join()
        raise SystemExit(f"{function.__name__} failed (exit code {child.exitcode})") from None
    child.join()
    return result, peak, time.perf_counter() - started


def prepare(scratch: Path, side: int, suffix: str) -> None:
    """The model and the views (written by their own process, measured by nothing)."""
    tiny_nerf_model(scratch / "tiny-nerf.safetensors")
    write_views(scratch / f"views{suffix.replace('.', '-')}", side, suffix)


def encode_views(folder: Path, model: Path, out: Path) -> None:
    """`transinr encode FOLDER --views 0,1,2,3 --model MODEL -o OUT --device cpu`, through
    the Python API."""
    from models.api import encode, load_model

    encode(load_model(model, device="cpu"), folder, views=[0, 1, 2, 3]).save(out)


def measure(side: int, suffix: str, scratch: Path) -> dict:
    in_fresh_process(prepare, scratch, side, suffix)
    folder = scratch / f"views{suffix.replace('.', '-')}"
    model = scratch / "tiny-nerf.safetensors"
    out = scratch / f"object{suffix.replace('.', '-')}.inr"
    _, peak, seconds = in_fresh_process(encode_views, folder, model, out)
    command = [
        "transinr", "encode", str(folder), "--views", "0,1,2,3", "--model", str(model), "-o",
        str(out), "--overwrite", "--device", "cpu", "--json",
    ]  # fmt: skip
    size = sum(p.stat().st_size for p in folder.iterdir())
    return {
        "format": suffix[1:],
        "views": 4,
        "side": side,
        "files_mb": round(size / 1e6, 1),
        "peak_rss_mb": round(peak / 1e6, 1),
        "seconds": round(seconds, 2),
        "goal_met": peak < GOAL_BYTES,
        "command": " ".join(command).replace(str(scratch), "$TMP"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=7000, help="view side in pixels")
    parser.add_argument("--formats", default="jpg,png", help="comma-separated: jpg, png")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    if not 8 <= args.side <= 20000:
        raise SystemExit("--side: 8 to 20000")
    results = []
    with tempfile.TemporaryDirectory(prefix="transinr-view-memory-") as folder:
        for name in args.formats.split(","):
            suffix = "." + name.strip().lstrip(".")
            results.append(measure(args.side, suffix, Path(folder)))
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"{'format':6} {'views':>5} {'side':>6} {'files MB':>9} {'peak RSS MB':>12} {'s':>7}")
    for row in results:
        print(
            f"{row['format']:6} {row['views']:5d} {row['side']:6d} {row['files_mb']:9.1f} "
            f"{row['peak_rss_mb']:12.1f} {row['seconds']:7.2f}"
            f"  {'under' if row['goal_met'] else 'OVER'} 1 GiB"
        )


if __name__ == "__main__":
    main()
