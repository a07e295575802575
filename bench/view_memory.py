"""Peak memory of `transinr encode` on large posed views (issue 18).

    python bench/view_memory.py                   # four 7000 x 7000 views, JPEG then PNG
    python bench/view_memory.py --side 4000 --formats png --json

Writes an object folder of four `--side` x `--side` RGBA-on-white views (a lit sphere seen from
four cameras, radius 4, learnit layout) in a temporary folder, once per format, then runs
`transinr encode FOLDER --views 0,1,2,3` in a child process with a tiny NeRF model (the `tiny`
preset, untrained, saved with models.io.checkpoint: the forward pass is what any model costs at
this size) and reads the child's peak resident memory from the kernel (os.wait4's ru_maxrss).
The goal: under 1 GB (views are decoded reduced to MAX_VIEW_SIDE, never at full size).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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


def peak_memory(command: list[str]) -> tuple[int, float, str]:
    """Run `command` in a child process: (its peak resident bytes, seconds, its stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode(errors="replace")
    child.stdout.close()
    child.stderr.close()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{stderr}")
    return usage.ru_maxrss * 1024, seconds, stderr


def prepare(scratch: Path, side: int, suffix: str) -> None:
    """Write the model and the views in a child process: this one stays small, so that the
    child measured next does not start from its memory (Linux counts a parent's pages in a
    forked child's peak until it execs)."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from bench.view_memory import tiny_nerf_model, write_views; "
        "scratch = Path(sys.argv[2]); tiny_nerf_model(scratch / 'tiny-nerf.safetensors'); "
        "write_views(scratch / sys.argv[4], int(sys.argv[3]), sys.argv[5])"
    )
    folder = f"views{suffix.replace('.', '-')}"
    subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(scratch), str(side), folder, suffix],
        check=True,
    )


def measure(side: int, suffix: str, scratch: Path) -> dict:
    prepare(scratch, side, suffix)
    folder = scratch / f"views{suffix.replace('.', '-')}"
    model = scratch / "tiny-nerf.safetensors"
    out = scratch / f"object{suffix.replace('.', '-')}.inr"
    command = [
        sys.executable, "-m", "transinr_cli", "encode", str(folder), "--views", "0,1,2,3",
        "--model", str(model), "-o", str(out), "--overwrite", "--device", "cpu", "--json",
    ]  # fmt: skip
    peak, seconds, _ = peak_memory(command)
    size = sum(p.stat().st_size for p in folder.iterdir())
    return {
        "format": suffix[1:],
        "views": 4,
        "side": side,
        "files_mb": round(size / 1e6, 1),
        "peak_rss_mb": round(peak / 1e6, 1),
        "seconds": round(seconds, 2),
        "goal_met": peak < GOAL_BYTES,
        "command": " ".join(command[1:]).replace(str(scratch), "$TMP"),
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
