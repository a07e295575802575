"""The Python API: load a meta-learner, encode pictures or posed views into INRs in one forward
pass, render them at any size or from any camera, refine, save, export; train and evaluate
meta-learners and draw their attention, without a shell.

    from models.api import load_model, encode
    inr = encode(load_model(), "photo.jpg")        # the bundled face model
    pixels = inr.render(356, 356)                  # (356, 356, 3) uint8, anti-aliased
    inr.save("photo.inr")

The command line and `bench/` call these functions; they print nothing and raise
`TransInrError` (one line naming the problem and the fix) on bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from models.errors import TransInrError
from models.io.inr_file import InrFile, save_inr
from models.io.inr_file import load_inr as read_inr_file
from models.io.inr_header import with_refinement
from models.tasks.devices import resolve_device

if TYPE_CHECKING:  # the meta-learner is imported only by what encodes or trains
    from models.core.config import ModelConfig
    from models.core.metalearner import TransInr
    from models.io.checkpoint import Checkpoint
    from models.tasks.evaluation import EvalResult
    from models.tasks.training import Progress, TrainConfig, TrainResult

MAX_SIZE = 16384  # pixels per side of any render
RENDER_MEMORY_BUDGET = 1 << 30  # bytes the pixels of one render (or an orbit's frames) may take


def check_view_size(side: int) -> None:
    """A NeRF view's side: a ray of samples a pixel, so up to MAX_VIEW_SIZE."""
    from models.io.inr_header import MAX_VIEW_SIZE

    if not 1 <= side <= MAX_VIEW_SIZE:
        raise TransInrError(
            f"--size {side} is out of range for a NeRF view (a ray a pixel); use 1 to "
            f"{MAX_VIEW_SIZE}"
        )


def check_render_memory(
    width: int, height: int, bit_depth: int = 8, suffix: str = ".png", frames: int = 1
) -> None:
    """Refuse, before rendering, an output whose pixels would not fit RENDER_MEMORY_BUDGET: the
    array (3 channels of 1 or 2 bytes), plus Pillow's 4-byte copy for formats other than PNG."""
    per_pixel = 3 * bit_depth // 8 + (0 if suffix in (".png", "") else 4)
    needed = width * height * per_pixel * frames
    if needed > RENDER_MEMORY_BUDGET:
        what = f"{frames} frames of {width}x{height}" if frames > 1 else f"{width}x{height}"
        raise TransInrError(
            f"a render of {what} would take {needed / 1e9:.1f} GB of memory, over the "
            f"{RENDER_MEMORY_BUDGET / 1e9:.1f} GB budget; render smaller (--size), fewer frames, "
            "8-bit or as .png"
        )


@dataclass
class Model:
    """A trained meta-learner (Trans-INR or a baseline) ready to encode, on one device."""

    checkpoint: Checkpoint
    network: TransInr
    device: torch.device

    @property
    def task(self) -> str:
        return self.checkpoint.config.task

    @property
    def model_id(self) -> str:
        return self.checkpoint.model_id


def load_model(
    path_or_name: str | Path | None = None, task: str = "image", device: str = "auto"
) -> Model:
    """A checkpoint file or run folder; a bundled model's name (`image-celeba89`); or, with
    None, the bundled default model of `task`."""
    from models.io.bundle import bundled_cards, default_model
    from models.io.checkpoint import load_checkpoint

    if path_or_name is None:
        path = default_model(task).path
    else:
        cards = {card.name: card for card in bundled_cards()}
        name = str(path_or_name)
        path = cards[name].path if name in cards and not Path(name).exists() else Path(name)
    torch_device = resolve_device(device)
    checkpoint = load_checkpoint(path)
    return Model(checkpoint, checkpoint.build_model(torch_device).eval(), torch_device)


@dataclass
class Inr:
    """An INR: complete weights plus what they stand for (a picture or an object's cameras)."""

    file: InrFile

    @property
    def task(self) -> str:
        return self.file.task

    @property
    def header(self):
        return self.file.header

    def output_size(
        self, width: int | None = None, height: int | None = None, size: int | None = None
    ) -> tuple[int, int]:
        """(width, height) of an image render: both given, one given (the other at the
        native aspect), or `size` for the longer side; nothing: the native size."""
        native_w, native_h = self.header.native_width, self.header.native_height
        if size is not None and (width is not None or height is not None):
            raise TransInrError("give --size or --width/--height, not both")
        if width is not None and height is not None:
            chosen = width, height
        elif width is not None:
            chosen = width, max(1, round(width * native_h / native_w))
        elif height is not None:
            chosen = max(1, round(height * native_w / native_h)), height
        else:
            longer = size or max(native_w, native_h)
            if native_w >= native_h:
                chosen = longer, max(1, round(longer * native_h / native_w))
            else:
                chosen = max(1, round(longer * native_w / native_h)), longer
        for name, value in zip(("width", "height"), chosen, strict=True):
            if not 1 <= value <= MAX_SIZE:
                raise TransInrError(
                    f"the output {name} {value} is out of range; use 1 to {MAX_SIZE}"
                )
        return chosen

    def render(
        self,
        width: int | None = None,
        height: int | None = None,
        *,
        size: int | None = None,
        antialias: bool = True,
        bit_depth: int = 8,
        device: str = "auto",
        on_rows: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """An image INR drawn at any size: (H, W, 3) uint8 (uint16 for bit_depth 16), or (H, W)
        for a greyscale picture. Anti-aliased as `transinr render` (models/core/antialias.py)."""
        from models.core.antialias import render_gains
        from models.core.rendering import render_quantized
        from models.io.images import to_grey

        if self.task != "image":
            raise TransInrError("this is a NeRF INR: use render_view(pose)")
        width, height = self.output_size(width, height, size)
        check_render_memory(width, height, bit_depth)
        header = self.header
        gains = None
        if antialias:
            gains = render_gains(
                self.file.inr, header.input_size, height, width, header.content_box
            )
        weights = self.file.batched(resolve_device(device))
        array = render_quantized(
            weights, self.file.inr, height, width, header.content_box, bit_depth, on_rows=on_rows,
            gains=gains,
        )  # fmt: skip
        return to_grey(array) if header.greyscale else array

    def render_view(
        self,
        pose: torch.Tensor | None = None,
        *,
        azimuth: float = 30.0,
        elevation: float = 30.0,
        radius: float | None = None,
        size: int | None = None,
        samples: int | None = None,
        device: str = "auto",
    ) -> torch.Tensor:
        """A NeRF INR seen from a camera-to-world `pose` (4, 4), or from azimuth / elevation /
        radius (degrees, Z up, looking at the origin): (size, size, 3) in [0, 1], white
        background, the file's near, far and sample count unless `samples` is given."""
        from models.core.config import RaySampling
        from models.nerf.rays import check_camera_options, look_at_pose
        from models.nerf.volume_rendering import render_view

        if self.task != "nerf":
            raise TransInrError("this is an image INR: use render(width, height)")
        header = self.header
        side = header.view_size if size is None else size
        check_view_size(side)
        radius = header.camera_radius if radius is None else radius
        check_camera_options(azimuth, elevation, radius)
        if pose is None:
            pose = look_at_pose(azimuth, elevation, radius)
        sampling = RaySampling(header.near, header.far, samples or header.samples)
        torch_device = resolve_device(device)
        focal = header.focal * side / header.view_size
        weights = self.file.batched(torch_device)
        poses = pose.reshape(1, 4, 4).float().to(torch_device)
        return render_view(weights, self.file.inr, sampling, poses, side, side, focal)[0].cpu()

    def save(self, path: str | Path, dtype: str = "float32") -> None:
        """Write the `.inr` file (atomically: a temporary name, then renamed)."""
        save_inr(self.file, path, dtype)


def load_inr(path: str | Path) -> Inr:
    """Read and validate an `.inr` file."""
    return Inr(read_inr_file(path))


def encode(
    model: Model,
    images_or_views: str | Path | Sequence[str | Path],
    *,
    fit: str = "crop",
    views: list[int] | None = None,
    max_pixels: int | None = None,
    follow_links: bool = False,
    refine_steps: int = 0,
    refine_lr: float | None = None,
) -> Inr | list[Inr]:
    """Encode one input (or a list: a list back) in one forward pass each: image files for an
    image model (fitted with `fit`: crop, pad or resize); learnit object folders or
    transforms.json files for a NeRF model (`views`: the support view indices, default [0]).
    Images only: then `refine_steps` Adam steps against their inputs, batched (refine's image
    defaults, `refine_lr`), as `transinr encode --refine-steps`."""
    from models.tasks.encoding import encode_image_file, encode_views_file, refine_encoded_images

    if model.task == "nerf" and (refine_steps or refine_lr is not None):
        raise TransInrError(
            "refine_steps is for images; refine a NeRF INR with refine(inr, views_folder)"
        )
    settings = refine_settings("image", refine_lr)
    several = not isinstance(images_or_views, str | Path)
    sources = list(images_or_views) if several else [images_or_views]
    encoded = []
    for source in sources:
        if model.task == "nerf":
            inr_file, _ = encode_views_file(
                model.network, model.checkpoint, source, views, model.device, max_pixels,
                follow_links,
            )  # fmt: skip
        else:
            inr_file, _ = encode_image_file(
                model.network, model.checkpoint, source, fit, model.device, max_pixels
            )
        encoded.append(inr_file)
    if refine_steps:
        refine_encoded_images(encoded, sources, refine_steps, settings, model.device, max_pixels)
    inrs = [Inr(inr_file) for inr_file in encoded]
    return inrs if several else inrs[0]


def refine_settings(task: str, lr: float | None = None, schedule: str | None = None):
    """The task's default Adam settings (images: lr 1e-3 constant, measured in
    bench/refine.py; NeRF: the paper's 1e-4), with `lr` and `schedule` applied and checked."""
    import math

    from models.tasks.refinement import RefineSettings

    defaults = RefineSettings() if task == "image" else RefineSettings(1e-4, "constant")
    if lr is not None and not (math.isfinite(lr) and 0 < lr <= 100):
        raise TransInrError(f"--lr {lr} is out of range; use a positive rate up to 100, e.g. 1e-3")
    if schedule not in (None, "constant", "cosine"):
        raise TransInrError(f"unknown --schedule '{schedule}'; choose constant or cosine")
    return RefineSettings(
        defaults.lr if lr is None else lr, schedule or defaults.schedule, defaults.betas
    )


def image_objective(
    inr_file: InrFile, image: str | Path, device: torch.device, max_pixels: int | None = None,
    coordinates: str = "grid",
) -> tuple[Callable, Callable]:  # fmt: skip
    """Loss and PSNR on the observed pixels of the image, fitted as at encode time; warns when
    the image does not look like the one encoded."""
    from models.tasks.encoding import fitted_observation
    from models.tasks.refinement import check_refine_target, image_loss, observed_psnr

    fitted, mask, (height, width) = fitted_observation(inr_file.header, image, max_pixels)
    observed = fitted[None].to(device)

    def measure(weights) -> float:
        return observed_psnr(weights, inr_file.inr, observed, mask).item()

    check_refine_target(inr_file.header, height, width, measure(inr_file.batched(device)))
    return image_loss(inr_file.inr, observed, mask, coordinates), measure


def nerf_objective(
    inr_file: InrFile, views: str | Path, view_ids: list[int] | None, rays: int,
    device: torch.device, max_pixels: int | None = None, follow_links: bool = False,
) -> tuple[Callable, Callable]:  # fmt: skip
    """The paper's TTO: `rays` random rays of the support views a step; PSNR on 1024 rays.
    A ray count whose step would not fit in memory is refused before the views are read."""
    from models.core.config import RaySampling
    from models.data.view_data import load_views
    from models.nerf.volume_rendering import check_ray_batch
    from models.tasks.encoding import support_ray_psnr
    from models.tasks.refinement import view_loss

    header = inr_file.header
    sampling = RaySampling(header.near, header.far, header.samples)
    check_ray_batch(inr_file.inr, sampling.samples, rays)
    chosen = view_ids or header.support_views or [0]
    posed = load_views(views, chosen, max_pixels=max_pixels, follow_links=follow_links)

    def measure(weights) -> float:
        return support_ray_psnr(weights, inr_file.inr, sampling, posed, device)

    return view_loss(inr_file.inr, sampling, posed, rays, device=device), measure


def refine(
    inr: Inr,
    target: str | Path,
    steps: int = 100,
    *,
    lr: float | None = None,
    schedule: str | None = None,
    coordinates: str = "grid",
    view_ids: list[int] | None = None,
    rays: int = 1024,
    max_pixels: int | None = None,
    follow_links: bool = False,
    device: str = "auto",
    on_step: Callable[[int, float], None] | None = None,
) -> Inr:
    """Test-time optimisation (Sec. 4.2): `steps` Adam steps on every weight against the image
    it was encoded from (an image file) or the object's views (a learnit folder). The result's
    header records the PSNR before and after; it is never worse than the input (image INRs keep
    the best weights seen; a run that ends worse returns the input's weights, with a warning)."""
    from models.tasks.refinement import refine_and_check

    torch_device = resolve_device(device)
    if inr.task == "nerf":
        loss_fn, measure = nerf_objective(
            inr.file, target, view_ids, rays, torch_device, max_pixels, follow_links
        )
    else:
        loss_fn, measure = image_objective(inr.file, target, torch_device, max_pixels, coordinates)
    settings = refine_settings(inr.task, lr, schedule)
    tuned, before, after = refine_and_check(
        inr.file.batched(torch_device), loss_fn, measure, steps, settings, on_step,
        keep_best=inr.task == "image",  # NeRF: a loss on random rays; measure decides
    )  # fmt: skip
    header = with_refinement(inr.header, steps, settings.lr, settings.schedule, before, after)
    return Inr(InrFile([w[0].detach().cpu() for w in tuned], inr.file.inr, inr.task, header))


def export(
    inr: Inr,
    path: str | Path,
    fmt: str | None = None,
    *,
    name: str = "",
    dtype: str | None = None,
    resolution: int = 128,
    threshold: float | None = None,
    extent: float | None = None,
    device: str = "auto",
    on_slices: Callable[[int], None] | None = None,
) -> dict:
    """Write `inr` to `path` (atomically; its folder made) as a browser viewer (html, titled
    `name`), an ONNX graph (onnx) or, for a NeRF, a mesh by marching cubes (ply, obj;
    models/tasks/export.py): the format `fmt`, else the path's suffix. Returns the format and
    what was written (bytes; a mesh's vertex and face counts)."""
    from models.io.safetensors_io import atomic_write
    from models.tasks.export import ExportOptions, check_export, check_suffix, export_inr, format_of

    path = Path(path)
    chosen = format_of(fmt, path)
    check_suffix(chosen, path)
    options = ExportOptions(
        name, dtype, resolution, threshold, extent, str(resolve_device(device)), on_slices
    )
    check_export(inr.file, chosen, options)
    data, summary = export_inr(inr.file, chosen, options)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    return {"format": chosen, **summary}


def attention_map(
    model: Model,
    image: str | Path,
    *,
    tokens: int = 3,
    fit: str = "crop",
    cell: int = 178,
    max_pixels: int | None = None,
) -> tuple[np.ndarray, list[list[int]]]:
    """Fig. 7: the image (fitted with `fit`) masked by the last-layer attention of each INR
    layer's `tokens` most focused weight tokens, as a uint8 figure (a row of `cell`-pixel cells
    per layer), and those tokens' ids per layer; a Trans-INR image model only."""
    from models.io.images import read_fitted
    from models.tasks.attention_maps import attention_map_figure, check_attention_model

    config = model.checkpoint.config
    if config.task != "image":
        raise TransInrError(
            f"model {model.model_id} is a {config.task} model; attention maps need an "
            "image model (--model)"
        )
    check_attention_model(model.network)
    layers = len(model.network.hypernetwork.group_counts)
    for name, side in (("width", (1 + tokens) * cell), ("height", layers * cell)):
        if not 1 <= side <= MAX_SIZE:
            raise TransInrError(f"the figure {name} {side} is out of range; use 1 to {MAX_SIZE}")
    fitted, _, _ = read_fitted(image, config.image_size, fit, max_pixels)
    return attention_map_figure(model.network, fitted, tokens, cell)


def check_evaluation(
    model: Model, split: str, support_views: int, refine_steps: int, refine_lr: float | None,
    input_size: int | None, follow_links: bool,
) -> None:  # fmt: skip
    """evaluate's options against the model: refused, before any data is read, what cannot be
    scored (a NeRF on `all` objects, too many support views, a refinement step that would not
    fit, an upscale from larger than the model's input)."""
    import math

    config = model.checkpoint.config
    if model.task == "nerf" and split == "all":
        raise TransInrError(
            "--split all scores every image of an image data set; score a NeRF model on "
            "--split train, val or test"
        )
    if refine_lr is not None and not (math.isfinite(refine_lr) and 0 < refine_lr <= 100):
        raise TransInrError(
            f"--refine-lr {refine_lr} is out of range; use a positive rate up to 100, e.g. 1e-3"
        )
    if model.task == "image" and follow_links:
        raise TransInrError("--follow-links is for --task nerf (views); drop it")
    if model.task == "nerf" and support_views > config.max_views:
        raise TransInrError(
            f"--support-views {support_views} is more than this model allows ({config.max_views})"
        )
    if model.task == "nerf" and refine_steps:
        from models.nerf.volume_rendering import check_ray_batch

        check_ray_batch(config.inr, config.sampling.samples, 1024, "refinement with rays")
    if input_size is None:
        return
    if model.task == "nerf" or refine_steps:
        raise TransInrError(
            "--input-size scores one-pass image upscaling; drop --refine-steps (and use "
            "--task image)"
        )
    if input_size > config.image_size:
        raise TransInrError(
            f"--input-size {input_size} is larger than the model's input "
            f"({config.image_size}); use a smaller size"
        )


def evaluate(
    model: Model,
    data: str | Path,
    *,
    split: str = "test",
    limit: int = 0,
    refine_steps: int = 0,
    refine_lr: float | None = None,
    baseline: bool = False,
    dataset: str = "celeba",
    input_size: int | None = None,
    batch_size: int = 16,
    workers: int = 2,
    category: str = "chairs",
    support_views: int = 1,
    pairs: int = 1,
    seed: int = 0,
    max_pixels: int | None = None,
    follow_links: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """PSNR as the paper defines it (Tables 1-4) on a split (its first `limit` items), in one
    forward pass and, with `refine_steps`, after test-time steps (at `refine_lr`; default as
    refine's). `split`: train, val or test; for images also `all`, every image of the data set
    (a folder's own 80/10/10 split ignored). An image model scores the images of a `dataset`
    layout (celeba, imagenette, folder; `input_size`: as upscaling from that size); a NeRF model
    the `category` objects of a learnit root, from `pairs` random support/query pairs of
    `support_views` each (`seed`). `baseline` adds the trivial score (the mean training image,
    bicubic upsampling, or an all-white view); `on_progress(done, total)` after each batch or
    pair."""
    from models.tasks.evaluation import evaluate_image_split, evaluate_view_split

    check_evaluation(model, split, support_views, refine_steps, refine_lr, input_size, follow_links)
    common = {
        "limit": limit, "refine_steps": refine_steps, "refine_lr": refine_lr,
        "max_pixels": max_pixels, "baseline": baseline, "on_progress": on_progress,
    }  # fmt: skip
    if model.task == "nerf":
        return evaluate_view_split(
            model.network, model.device, Path(data), category, split, support_views=support_views,
            pairs=pairs, seed=seed, follow_links=follow_links, **common,
        )  # fmt: skip
    return evaluate_image_split(
        model.network, model.device, dataset, Path(data), split, batch_size=batch_size,
        workers=workers, input_size=input_size, **common,
    )  # fmt: skip


def train(
    run_dir: str | Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    device: str = "auto",
    *,
    overwrite: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Train a meta-learner (a `ModelConfig` from models.core.presets' `preset_config`, a
    `TrainConfig` from models.tasks.training's `recipe`; or both from models.tasks.train_setup's
    `new_run`, as `transinr train` makes them); checkpoints in `run_dir`, which must hold no run
    unless `overwrite`. Images: the `train_config.dataset` layout of `train_config.data`. NeRF:
    the learnit root `train_config.data` (category `train_config.category`, default chairs), or,
    left empty, a synthetic set generated once and cached (train_setup.synthetic_data). Returns
    the TrainResult (steps, validation PSNR history, seconds)."""
    import dataclasses

    from models.tasks import train_setup
    from models.tasks.training import resolve_precision
    from models.tasks.training import train as train_loop

    run_dir, torch_device = Path(run_dir), resolve_device(device)
    train_setup.check_run_dir(run_dir, False, overwrite)
    train_setup.check_augment(model_config, train_config.augment)
    train_config = dataclasses.replace(train_config)  # the caller's stays as given
    train_config.precision = resolve_precision(train_config.precision, torch_device)
    data = Path(train_config.data) if train_config.data else None
    if model_config.task == "nerf":
        sets = train_setup.nerf_sets(model_config, train_config, data, "chairs", torch_device)
    elif data is None:
        raise TransInrError("train_config.data is empty; set it to the image data set folder")
    else:
        size = model_config.image_size
        sets = train_setup.image_sets(
            train_config.dataset, data, size, 0, None, train_config.augment
        )
    if overwrite:
        train_setup.clear_run_dir(run_dir)
    with train_setup.no_leftovers(run_dir, keep=False):
        return train_loop(
            run_dir, model_config, train_config, *sets, torch_device,
            on_progress=on_progress or (lambda progress: None),
        )  # fmt: skip


__all__ = [
    "Inr", "Model", "attention_map", "encode", "evaluate", "export", "load_inr", "load_model",
    "refine", "refine_settings", "resolve_device", "train",
]  # fmt: skip
