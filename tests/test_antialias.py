"""Rendering off the training grid (issue 12): anti-aliasing gains, continuous-coordinate
training, the learned-upscale option and fine-tuning from a checkpoint."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from support import tiny_train_config

from models.core.antialias import axis_gains, highest_frequency_ratio, render_gains
from models.core.config import INRConfig
from models.core.inr import fourier_frequencies, image_inr
from models.core.inr import init_weights as fresh_weights
from models.core.presets import IMAGE_PRESETS, preset_config
from models.core.rendering import coordinate_grid, pixel_centres, render_image
from models.data.image_data import ImageDataset
from models.errors import TransInrError
from models.tasks.objectives import ImageLoss, degrade, jittered_centres, sample_image
from models.tasks.training import train


@pytest.fixture
def weights():
    torch.manual_seed(0)
    layers = fresh_weights(preset_config("tiny").inr, batch=2)
    return [w + 0.05 * torch.randn_like(w) for w in layers]


def test_cpu_presets_keep_every_frequency_below_the_input_nyquist_rate():
    for name in ("celeba89", "tiny"):
        config = IMAGE_PRESETS[name].model
        assert highest_frequency_ratio(config.inr, config.image_size) < 0.9, name
    paper = IMAGE_PRESETS["celeba"].model  # the paper's 1024 pi at 178 px: far above, kept faithful
    assert highest_frequency_ratio(paper.inr, paper.image_size) > 10


def test_the_issue_arithmetic_a_nyquist_sine_is_zero_on_every_pixel_centre():
    # The old celeba89 band: sin(pi 44.5 x) at the 89 pixel centres is 0, so no loss sees it.
    centres = pixel_centres(89).double()
    assert torch.sin(math.pi * 44.5 * centres).abs().max() < 1e-4  # float32 centres
    between = centres + 1.0 / 89  # pixel edges: the same feature is +-1 there
    assert torch.sin(math.pi * 44.5 * between).abs().min() > 0.999


def test_native_grid_renders_the_raw_function_bit_for_bit(weights):
    config = preset_config("tiny").inr
    assert render_gains(config, 32, 32, 32) is None
    raw = render_image(weights, config, 32, 32)
    assert torch.equal(render_image(weights, config, 32, 32, gains=None), raw)


def test_gains_drop_frequencies_at_or_above_native_nyquist_off_the_grid():
    config = INRConfig(fourier_count=16, fourier_max=32.0, depth=3, width=8)
    frequencies = fourier_frequencies(config)
    nyquist = math.pi * 32 / 2  # 32 px native grid
    above = axis_gains(config, 2.0 / 32, 2.0 / 128)  # 4x upscale: no blur, only the cut
    assert torch.all(above[frequencies >= nyquist * (1 - 1e-6)] == 0)
    assert torch.all(above[frequencies < nyquist * 0.999] == 1)
    below = axis_gains(config, 2.0 / 32, 2.0 / 8)  # 4x smaller: Gaussian footprint too
    variance = ((2.0 / 8) ** 2 - (2.0 / 32) ** 2) / 12
    kept = frequencies < nyquist * 0.999
    expected = torch.exp(-0.5 * variance * frequencies[kept].double() ** 2).float()
    assert torch.allclose(below[kept], expected)
    assert torch.all(below[1:] <= below[:-1])  # higher frequencies attenuated more


def test_gains_are_per_axis_and_follow_the_box():
    config = preset_config("tiny").inr
    assert render_gains(config, 32, 64, 64) is None  # a band-limited INR upscaled: raw
    rows, cols = render_gains(config, 32, 32, 16)  # height native, width half
    assert torch.all(rows == 1) and torch.all(cols < 1) and torch.all(cols[1:] < cols[:-1])
    # Half the square on 16 rows is the native pixel size: those rows are native again.
    rows, _ = render_gains(config, 32, 16, 16, box=(-1.0, -1.0, 0.0, 1.0))
    assert torch.all(rows == 1)


def test_antialiased_render_equals_the_per_pixel_integrated_encoding(weights):
    # The separable renderer with gains is the per-pixel MLP on gained features.
    config = preset_config("tiny").inr
    gains = render_gains(config, 32, 8, 12)
    rendered = render_image(weights, config, 8, 12, gains=gains)
    coords = coordinate_grid(8, 12)  # (N, 2) (y, x)
    frequencies = fourier_frequencies(config)
    parts = []
    for axis, gain in enumerate(gains):
        phases = coords[:, axis : axis + 1] * frequencies
        parts.append((torch.cos(phases) * gain, torch.sin(phases) * gain))
    features = torch.cat([parts[0][0], parts[1][0], parts[0][1], parts[1][1]], dim=-1)
    hidden = features[None].expand(2, -1, -1)
    for index, wb in enumerate(weights):
        hidden = torch.baddbmm(wb[:, -1:], hidden, wb[:, :-1])
        if index < len(weights) - 1:
            hidden = torch.relu(hidden)
    expected = (hidden + config.out_bias).clamp(0, 1).view(2, 8, 12, 3).permute(0, 3, 1, 2)
    assert torch.allclose(rendered, expected, atol=1e-5)


def test_a_nyquist_feature_striping_between_pixels_is_removed_by_the_cut():
    # An INR whose only signal is the feature cos(pi 16 x) at the 32 px Nyquist rate: flat grey
    # on its own pixel centres (an even grid puts them at its zeros; on the odd 89 px grid it is
    # the sine), stripes at 4x raw, flat again anti-aliased.
    config = INRConfig(fourier_count=2, fourier_max=16.0, depth=2, width=3)
    first = torch.zeros(1, config.in_dim + 1, 3)
    first[0, 3, :] = 0.4  # [cos y, cos x, sin y, sin x] x 2 frequencies: cos x, top one
    last = torch.eye(3)[None].repeat(1, 1, 1)
    last = torch.cat([last, torch.zeros(1, 1, 3)], dim=1)
    layers = [first, last]
    native = render_image(layers, config, 32, 32)
    assert (native - 0.5).abs().max() < 1e-5
    raw = render_image(layers, config, 128, 128)
    assert (raw - 0.5).abs().max() > 0.3
    smooth = render_image(layers, config, 128, 128, gains=render_gains(config, 32, 128, 128))
    assert (smooth - 0.5).abs().max() < 1e-6


def test_jittered_centres_stay_inside_their_pixels():
    generator = torch.Generator().manual_seed(0)
    centres = jittered_centres(9, generator)
    low = -1 + 2 * torch.arange(9) / 9
    assert torch.all(centres >= low) and torch.all(centres <= low + 2 / 9)
    assert not torch.allclose(centres, pixel_centres(9))


def test_sample_image_is_exact_at_pixel_centres_and_interpolates_between():
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 7, 5, generator=generator)
    at_centres = sample_image(images, pixel_centres(7), pixel_centres(5))
    assert torch.allclose(at_centres, images.permute(0, 2, 3, 1).reshape(2, 35, 3), atol=1e-5)
    ramp = torch.linspace(0.1, 0.9, 5).expand(1, 3, 7, 5).contiguous()  # linear in x
    between = sample_image(ramp, pixel_centres(7), pixel_centres(5)[1:3] + 0.2)
    assert torch.allclose(between[0, :2, 0], ramp[0, 0, 0, 1:3] + 0.2 * 0.8 / (8 / 5), atol=1e-4)


def test_continuous_loss_is_the_inr_on_the_jittered_grid(weights):
    config = preset_config("tiny")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    loss_fn = ImageLoss(config, torch.device("cpu"), "continuous")
    loss, _ = loss_fn(weights, images, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    rows, cols = jittered_centres(32, generator), jittered_centres(32, generator)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).view(1, -1, 2)
    prediction = image_inr(grid.expand(2, -1, -1), weights, config.inr)
    target = sample_image(images, rows, cols)
    assert torch.allclose(loss, (prediction - target).pow(2).mean(), atol=1e-6)
    grid_loss, _ = ImageLoss(config, torch.device("cpu"), "grid")(weights, images)
    assert not torch.allclose(loss, grid_loss)


def test_degrade_downsamples_and_resizes_back():
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    assert torch.equal(degrade(images, 0), images) and torch.equal(degrade(images, 32), images)
    degraded = degrade(images, 8)
    assert degraded.shape == images.shape
    # Fine detail is gone: the degraded image is much closer to its own 8 px version.
    lost = (degraded - images).abs().mean()
    assert lost > 0.1
    assert (degrade(degraded, 8) - degraded).abs().mean() < 0.25 * lost


def test_continuous_and_upscale_training_runs_and_records_its_choices(tmp_path, image_folder):
    from models.io.checkpoint import load_checkpoint

    config = preset_config("tiny")
    train_set = ImageDataset("folder", image_folder, "train", config.image_size)
    val_set = ImageDataset("folder", image_folder, "val", config.image_size)
    train_config = tiny_train_config(steps=2, input_size=16)
    assert train_config.coordinates == "continuous"  # the tiny recipe's default
    train(tmp_path / "run", config, train_config, train_set, val_set, torch.device("cpu"))
    saved = load_checkpoint(tmp_path / "run" / "last.safetensors").train_state["train_config"]
    assert saved["coordinates"] == "continuous" and saved["input_size"] == 16


def test_init_from_starts_at_the_checkpoint_and_refuses_other_shapes(
    tmp_path, image_folder, tiny_run
):
    from models.io.checkpoint import load_checkpoint

    config = preset_config("tiny")
    train_set = ImageDataset("folder", image_folder, "train", config.image_size)
    val_set = ImageDataset("folder", image_folder, "val", config.image_size)
    start = tiny_run / "last.safetensors"
    train_config = tiny_train_config(steps=1, lr=1e-12, warmup_steps=0, init_from=str(start))
    train(tmp_path / "ft", config, train_config, train_set, val_set, torch.device("cpu"))
    tuned = load_checkpoint(tmp_path / "ft" / "last.safetensors").model_state
    original = load_checkpoint(start).model_state
    assert all(torch.allclose(tuned[k], original[k], atol=1e-6) for k in original)
    other = dataclasses.replace(config, groups=4)
    with pytest.raises(TransInrError, match="init-from"):
        train(tmp_path / "bad", other, train_config, train_set, val_set, torch.device("cpu"))


def test_flat_images_replace_a_share_of_the_batch_by_uniform_colours():
    from models.tasks.objectives import add_flat_images

    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    assert add_flat_images(images, 0.0, torch.Generator()) is images
    mixed = add_flat_images(images, 0.0625, torch.Generator().manual_seed(5))
    assert torch.equal(mixed[1:], images[1:])
    assert torch.all(mixed[0] == mixed[0, :, :1, :1]) and not torch.equal(mixed[0], images[0])
    assert images.std() > 0.2  # the input batch is untouched


def test_flat_weight_scales_the_loss_of_the_uniform_images_only():
    from models.core.metalearner import build_meta_learner
    from models.tasks.objectives import ImageLoss, ImageObjective

    config = preset_config("tiny")
    model = build_meta_learner(config).eval()
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    loss = ImageLoss(config, torch.device("cpu"))
    with torch.no_grad():
        weights = model(images)
        each = torch.stack([loss([w[i : i + 1] for w in weights], images[i : i + 1])[0]
                            for i in range(4)])  # fmt: skip
        weighted, _ = loss(weights, images, image_weights=torch.tensor([5.0, 1, 1, 1]))
    torch.testing.assert_close(weighted, (5 * each[0] + each[1:].sum()) / 4)
    # the objective weights the batch's first round(share x B) images: the flat ones
    plain = ImageObjective(config, torch.device("cpu"), images, 1, flat_images=0.5)
    heavy = ImageObjective(config, torch.device("cpu"), images, 1, flat_images=0.5, flat_weight=9)
    with torch.no_grad():
        assert heavy.loss(model, images, 0, 0)[0] > plain.loss(model, images, 0, 0)[0]


def test_continuous_refinement_lowers_its_loss_and_respects_the_mask(weights):
    from models.tasks.refinement import image_loss, refine

    config = preset_config("tiny").inr
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[:, :16] = True  # only the left half observed
    loss_fn = image_loss(config, images, mask, "continuous")
    before = loss_fn(weights, 0).sum().item()
    tuned = refine(weights, loss_fn, 20, 1e-2)
    assert loss_fn(tuned, 0).sum().item() < before
    # The right half is unobserved: changing it changes nothing, not even the interpolated
    # targets next to the boundary.
    changed = images.clone()
    changed[..., 16:] = 1 - changed[..., 16:]
    other = image_loss(config, changed, mask, "continuous")
    for step in range(4):
        assert torch.allclose(other(weights, step), loss_fn(weights, step), rtol=1e-6)


def test_observed_samples_are_exact_at_observed_pixel_centres():
    from models.tasks.refinement import observed_samples

    images = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(8))
    mask = torch.zeros(12, 10, dtype=torch.bool)
    mask[2:9, 3:10] = True
    rows, cols = pixel_centres(12)[2:9], pixel_centres(10)[3:10]
    samples = observed_samples(images, mask, rows, cols)
    expected = images[:, :, 2:9, 3:10].permute(0, 2, 3, 1).reshape(1, -1, 3)
    assert torch.allclose(samples, expected, atol=1e-5)
