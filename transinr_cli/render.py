"""`transinr render`: draw an .inr file: an image at any size, or NeRF views and orbits."""

from __future__ import annotations

import importlib.util
import io
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from models.errors import TransInrError

if TYPE_CHECKING:
    import numpy as np
from transinr_cli.common import (
    Device,
    DeviceOption,
    InrFileArgument,
    JsonOption,
    OverwriteOption,
    QuietOption,
    check_output,
    check_size,
    ensure_parent,
    handle_errors,
    print_result,
    progress_bar,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_SUFFIXES = (".gif", ".mp4")


def image_bytes(array: np.ndarray, suffix: str) -> bytes:
    """Encode an (H, W, 3) RGB or (H, W) grey uint8 / uint16 array for a file name suffix."""
    from models.io.images import encode_png

    if suffix == ".png":
        return encode_png(array)
    from PIL import Image

    buffer = io.BytesIO()
    kind = "JPEG" if suffix in (".jpg", ".jpeg") else suffix[1:].upper()
    Image.fromarray(array).save(buffer, format=kind)
    return buffer.getvalue()


def write_video(frames: list[np.ndarray], target: Path, fps: int) -> None:
    """GIF (Pillow) or MP4 (imageio-ffmpeg), encoded in a private temporary folder, then
    written to `target` atomically."""
    import imageio.v3 as iio
    import numpy as np

    from models.io.safetensors_io import atomic_write

    with tempfile.TemporaryDirectory(prefix="transinr-video-") as folder:
        encoded = Path(folder) / f"orbit{target.suffix}"
        try:
            if target.suffix == ".gif":
                iio.imwrite(
                    encoded, np.stack(frames), extension=".gif", duration=1000 / fps, loop=0
                )
            else:
                iio.imwrite(encoded, np.stack(frames), extension=".mp4", plugin="FFMPEG", fps=fps)
            data = encoded.read_bytes()
        except (OSError, RuntimeError, ValueError) as error:
            raise TransInrError(f"cannot encode {target.name} ({error}); nothing written") from None
    atomic_write(target, data)


OutOption = Annotated[
    Path | None,
    typer.Option("-o", "--out", help="Output image; orbits: .gif, .mp4 or a folder/."),
]
SizeOption = Annotated[int | None, typer.Option(help="Longer side in pixels, native aspect.")]
WidthOption = Annotated[int | None, typer.Option(help="Image: output width.")]
HeightOption = Annotated[int | None, typer.Option(help="Image: output height.")]
BitDepthOption = Annotated[int, typer.Option(help="8 or 16 bits per channel (16: PNG only).")]
PoseOption = Annotated[
    Path | None, typer.Option(help="NeRF: camera-to-world 4x4 matrix file (JSON or text).")
]
AzimuthOption = Annotated[
    float | None, typer.Option(help="NeRF: camera azimuth, degrees (default 30).")
]
ElevationOption = Annotated[
    float | None, typer.Option(help="NeRF: camera elevation, degrees (default 30).")
]
RadiusOption = Annotated[
    float | None, typer.Option(help="NeRF: camera distance (default: the inputs').")
]
OrbitOption = Annotated[
    int | None, typer.Option(min=1, max=3600, help="NeRF: N frames around the object.")
]
FpsOption = Annotated[int, typer.Option(min=1, max=120, help="Orbit video frame rate.")]
SamplesOption = Annotated[int | None, typer.Option(min=2, max=4096, help="NeRF: samples per ray.")]
AntialiasOption = Annotated[
    bool,
    typer.Option(
        help="Image: filter the INR's Fourier features for the output grid (integrated "
        "encoding below the native size, nothing at or above the native Nyquist rate off "
        "it); --no-antialias renders the raw function.",
    ),
]


@handle_errors
def render(
    inr: InrFileArgument,
    out: OutOption = None,
    size: SizeOption = None,
    width: WidthOption = None,
    height: HeightOption = None,
    bit_depth: BitDepthOption = 8,
    pose: PoseOption = None,
    azimuth: AzimuthOption = None,
    elevation: ElevationOption = None,
    radius: RadiusOption = None,
    orbit: OrbitOption = None,
    fps: FpsOption = 24,
    samples: SamplesOption = None,
    antialias: AntialiasOption = True,
    overwrite: OverwriteOption = False,
    device: DeviceOption = Device.auto,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Render an .inr file: an image at any resolution, or NeRF novel views and orbits."""
    from models.io.inr_file import load_inr
    from models.tasks.devices import resolve_device

    if bit_depth not in (8, 16):
        raise TransInrError(f"--bit-depth {bit_depth} is not supported; use 8 or 16")
    if size is not None and (width is not None or height is not None):
        raise TransInrError(
            "--size sets the longer side at the native aspect; give either --size or "
            "--width / --height, not both"
        )
    inr_file = load_inr(inr)
    torch_device = resolve_device(device.value)
    started = time.perf_counter()
    if inr_file.task == "nerf":
        if width or height:
            raise TransInrError("NeRF views are square: use --size, not --width / --height")
        if not antialias:
            raise TransInrError("--no-antialias is for image INRs; drop it for NeRF files")
        outputs, out_w, out_h = render_nerf(
            inr_file, inr, out, size=size, bit_depth=bit_depth, pose_file=pose,
            azimuth=30.0 if azimuth is None else azimuth,
            elevation=30.0 if elevation is None else elevation, radius=radius, orbit=orbit,
            fps=fps, samples=samples,
            device=torch_device, quiet=quiet, overwrite=overwrite,
        )  # fmt: skip
    else:
        nerf_only = (pose, orbit, samples, azimuth, elevation, radius)
        if any(option is not None for option in nerf_only):
            raise TransInrError(
                f"{inr} is an image INR; --pose, --orbit, --samples, --azimuth, --elevation and "
                "--radius are for NeRF .inr files: drop them"
            )
        outputs, out_w, out_h = render_image(
            inr_file, inr, out, size=size, width=width, height=height, bit_depth=bit_depth,
            antialias=antialias, device=torch_device, quiet=quiet, overwrite=overwrite,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    if as_json:
        summary = {"outputs": outputs, "width": out_w, "height": out_h, "seconds": seconds}
        print(json.dumps({"output": outputs[0], **summary}))
    else:
        where = outputs[0] if len(outputs) == 1 else f"{len(outputs)} frames in {out}"
        print_result(f"{inr} -> {where}  {out_w}x{out_h}  {seconds:.2f} s")


def render_image(
    inr_file, inr: Path, out: Path | None, *, size: int | None, width: int | None,
    height: int | None, bit_depth: int, antialias: bool, device, quiet: bool, overwrite: bool,
) -> tuple[list[str], int, int]:  # fmt: skip
    """Render an image INR at --size (the longer side) or --width / --height, native aspect
    otherwise, into one image file."""
    from models.api import Inr, check_render_memory

    target = out or Path(inr.stem + ".png")
    check_image_target(target, bit_depth)
    check_output(target, overwrite)
    for name, value in (("--size", size), ("--width", width), ("--height", height)):
        check_size(name, value)
    out_w, out_h = Inr(inr_file).output_size(width, height, size)
    check_render_memory(out_w, out_h, bit_depth, target.suffix.lower())
    with progress_bar(quiet) as bar:
        task_id = bar.add_task("render", total=out_h)
        array = Inr(inr_file).render(
            out_w, out_h, antialias=antialias, bit_depth=bit_depth, device=device,
            on_rows=lambda rows: bar.advance(task_id, rows),
        )  # fmt: skip
    write_image(array, target)
    return [str(target)], out_w, out_h


def check_image_target(target: Path, bit_depth: int) -> None:
    suffix = target.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise TransInrError(f"cannot write '{target.suffix}' images; name the output .png or .jpg")
    if bit_depth == 16 and suffix != ".png":
        raise TransInrError("16-bit output needs a .png file name")


def write_image(array: np.ndarray, target: Path) -> None:
    from models.io.safetensors_io import atomic_write

    ensure_parent(target)
    atomic_write(target, image_bytes(array, target.suffix.lower()))


def render_nerf(
    inr_file, inr: Path, out: Path | None, *, size: int | None, bit_depth: int,
    pose_file: Path | None, azimuth: float, elevation: float, radius: float | None,
    orbit: int | None, fps: int, samples: int | None, device, quiet: bool, overwrite: bool,
) -> tuple[list[str], int, int]:  # fmt: skip
    """Render one view (--pose, or azimuth / elevation / radius) or an orbit of a NeRF file."""
    from models.api import Inr, check_render_memory, check_view_size
    from models.nerf.rays import check_camera_options, look_at_pose, read_pose_file
    from models.nerf.volume_rendering import orbit_poses

    header = inr_file.header
    side = header.view_size if size is None else size
    check_view_size(side)
    if radius is None:
        radius = header.camera_radius
    check_camera_options(azimuth, elevation, radius)
    if orbit:
        poses = orbit_poses(orbit, elevation, radius)
        target = out or Path(inr.stem + "-orbit.gif")
        as_folder = target.suffix == "" or target.is_dir()
        if not as_folder and target.suffix.lower() not in VIDEO_SUFFIXES:
            raise TransInrError("an orbit goes to .gif, .mp4 or a folder/; rename -o")
        if target.suffix.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
            raise TransInrError(
                "writing .mp4 needs imageio-ffmpeg: pip install 'transinr[video]', "
                "or write .gif or a folder/"
            )
        if bit_depth == 16 and not as_folder:
            raise TransInrError("16-bit orbits go to a folder of PNGs; use -o DIR/")
    else:
        poses = (
            read_pose_file(pose_file) if pose_file else look_at_pose(azimuth, elevation, radius)
        )[None]
        target = out or Path(inr.stem + ".png")
        check_image_target(target, bit_depth)
        as_folder = False
    frame_paths = (
        [target / f"{index:03d}.png" for index in range(len(poses))] if as_folder else [target]
    )
    suffix = ".png" if as_folder else target.suffix.lower()
    check_render_memory(side, side, bit_depth, suffix, frames=len(poses))
    for path in frame_paths:
        check_output(path, overwrite)
    import numpy as np

    scale, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    frames = []
    with progress_bar(quiet) as bar:
        task_id = bar.add_task("render", total=len(poses))
        for pose in poses:
            image = Inr(inr_file).render_view(pose, size=side, samples=samples, device=device)
            frames.append((image.numpy() * scale).round().astype(dtype))
            bar.advance(task_id)
    if not orbit:
        write_image(frames[0], target)
        return [str(target)], side, side
    if as_folder:
        target.mkdir(parents=True, exist_ok=True)
        for frame, path in zip(frames, frame_paths, strict=True):
            write_image(frame, path)
        return [str(p) for p in frame_paths], side, side
    ensure_parent(target)
    write_video(frames, target, fps)
    return [str(target)], side, side
