"""View synthesis core (paper Sec. 4.2): rays, volume rendering, the view tokenizer, the paper
model's size, the learnit reader (on real ShapeNet renders too), the synthetic data, the
support/query objective, test-time refinement, encoding, evaluation, and every bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nerf_support import (
    SHAPENET_REAL,
    fixture_chair,  # noqa: F401 (a fixture)
    fixture_nerf_data,  # noqa: F401 (a fixture)
    fixture_nerf_run,  # noqa: F401 (a fixture)
    rigid_pose,
    write_views,
)
from PIL import Image

from models.core.config import RaySampling
from models.core.inr import init_weights
from models.core.metalearner import TransInr, parameter_breakdown
from models.core.presets import preset_config
from models.core.tokenizers import ViewTokenizer
from models.data import synth
from models.data.view_data import (
    ViewDataset,
    load_views,
    object_folders,
    read_transforms,
    views_to_tokens_input,
)
from models.errors import TransInrError
from models.io.checkpoint import load_checkpoint
from models.nerf.rays import camera_rays, check_pose, focal_from_angle, look_at_pose, read_pose_file
from models.nerf.volume_rendering import (
    camera_radius,
    composite,
    orbit_poses,
    render_rays,
    render_view,
    sample_depths,
)
from models.tasks.encoding import encode_views_file, support_ray_psnr
from models.tasks.evaluation import evaluate_views
from models.tasks.objectives import NerfObjective, pick_views
from models.tasks.refinement import random_view_rays, refine, view_loss

TINY = preset_config("tiny", "nerf")


def rotation_z90() -> torch.Tensor:
    return torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


# --- rays -----------------------------------------------------------------------------------


def test_identity_camera_rays_of_a_2x2_image():
    origins, directions = camera_rays(torch.eye(4), 2, 2, 1.0)
    assert origins.shape == directions.shape == (2, 2, 3)
    assert torch.equal(origins, torch.zeros(2, 2, 3))
    # x grows to the right (+x camera), y grows down in the image (-y camera), looking down -z.
    expected = torch.tensor(
        [
            [[-0.5, 0.5, -1.0], [0.5, 0.5, -1.0]],  # top row: up
            [[-0.5, -0.5, -1.0], [0.5, -0.5, -1.0]],  # bottom row: down
        ]
    )
    assert torch.allclose(directions, expected)


def test_rays_are_not_normalised_and_scale_with_focal():
    _, directions = camera_rays(torch.eye(4), 2, 2, 1.0)
    assert torch.allclose(directions.norm(dim=-1), torch.full((2, 2), math.sqrt(1.5)))
    _, longer = camera_rays(torch.eye(4), 2, 2, 2.0)
    assert torch.allclose(longer[..., :2], directions[..., :2] / 2)
    assert torch.equal(longer[..., 2], directions[..., 2])


def test_rotated_and_translated_pose_moves_the_rays():
    pose = torch.eye(4)
    pose[:3, :3] = rotation_z90()  # camera x -> world y, camera y -> world -x
    pose[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    origins, directions = camera_rays(pose, 2, 2, 1.0)
    assert torch.allclose(origins, torch.tensor([1.0, 2.0, 3.0]).expand(2, 2, 3))
    # camera (x, y, z) -> world (-y, x, z)
    expected = torch.tensor(
        [
            [[-0.5, -0.5, -1.0], [-0.5, 0.5, -1.0]],
            [[0.5, -0.5, -1.0], [0.5, 0.5, -1.0]],
        ]
    )
    assert torch.allclose(directions, expected)
    # A 90-degree turn about x: camera (x, y, z) -> world (x, -z, y); the centre looks along +y.
    pose = torch.eye(4)
    pose[:3, :3] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    _, directions = camera_rays(pose, 2, 2, 1.0)
    assert torch.allclose(directions[0, 0], torch.tensor([-0.5, 1.0, 0.5]))
    assert torch.allclose(directions[1, 1], torch.tensor([0.5, 1.0, -0.5]))


def test_batched_poses_with_one_focal_per_camera():
    poses = torch.stack([torch.eye(4), torch.eye(4)])
    origins, directions = camera_rays(poses, 2, 3, torch.tensor([1.0, 2.0]))
    assert origins.shape == directions.shape == (2, 2, 3, 3)
    _, single = camera_rays(torch.eye(4), 2, 3, 2.0)
    assert torch.allclose(directions[1], single)
    assert torch.allclose(directions[0, 0, 0], torch.tensor([-1.0, 0.5, -1.0]))  # (0.5 - 1.5) / 1


def test_focal_from_angle():
    assert focal_from_angle(2, math.pi / 2) == pytest.approx(1.0)
    assert focal_from_angle(128, 0.6911112070083618) == pytest.approx(
        64 / math.tan(0.3455556035041809)
    )
    assert focal_from_angle(256, 0.6911112070083618) == pytest.approx(
        2 * focal_from_angle(128, 0.6911112070083618)
    )


@pytest.mark.parametrize(
    ("azimuth", "elevation", "radius"),
    [(0.0, 0.0, 4.0), (30.0, 30.0, 4.0), (217.0, 55.0, 3.0), (90.0, 90.0, 4.0), (10.0, -20.0, 5.0)],
)
def test_look_at_pose_is_rigid_and_looks_at_the_origin(azimuth, elevation, radius):
    pose = look_at_pose(azimuth, elevation, radius)
    assert pose.shape == (4, 4)
    rotation = pose[:3, :3].double()
    assert torch.allclose(rotation.T @ rotation, torch.eye(3, dtype=torch.float64), atol=1e-6)
    assert torch.linalg.det(rotation).item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(pose[3], torch.tensor([0.0, 0.0, 0.0, 1.0]))
    assert pose[:3, 3].norm().item() == pytest.approx(radius, rel=1e-6)
    check_pose(pose.tolist(), "look_at_pose")  # accepted as rigid
    # The centre pixel of an odd-sized image sees the origin: its ray passes within a pixel.
    size = 65
    focal = focal_from_angle(size, 0.6911112070083618)
    origins, directions = camera_rays(pose, size, size, focal)
    o, d = origins[size // 2, size // 2].double(), directions[size // 2, size // 2].double()
    t = -(o @ d) / (d @ d)
    assert t > 0  # in front of the camera
    miss = (o + t * d).norm().item()
    assert miss < radius / focal  # one pixel's footprint at the origin's depth
    if abs(elevation) < 89:
        assert pose[2, 1] > 0  # Z up: the camera's up vector points up


def rigid(rotation: torch.Tensor | None = None, translation=(0.0, 0.0, 4.0)) -> list:
    pose = torch.eye(4, dtype=torch.float64)
    if rotation is not None:
        pose[:3, :3] = rotation.double()
    pose[:3, 3] = torch.tensor(translation, dtype=torch.float64)
    return pose.tolist()


def test_check_pose_accepts_rigid_transforms():
    pose = check_pose(rigid(rotation_z90(), (1.0, -2.0, 3.0)), "test")
    assert pose.dtype == torch.float32 and pose.shape == (4, 4)
    assert torch.equal(pose[:3, 3], torch.tensor([1.0, -2.0, 3.0]))


@pytest.mark.parametrize(
    ("matrix", "needle"),
    [
        (rigid(2 * torch.eye(3)), "rigid"),  # scaled
        (rigid(torch.diag(torch.tensor([1.0, 1.0, -1.0]))), "rigid"),  # a reflection
        (rigid(torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])), "rigid"),
        ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 1, 1]], "rigid"),  # bottom row
        ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], "4x4"),
        ([[1, 0, 0, 0]] * 3, "4x4"),
        ([1.0] * 16, "4x4"),
        ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, float("nan")], [0, 0, 0, 1]], "finite"),
        ([[1, 0, 0, float("inf")], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "finite"),
        ([[1, 0], [0, 1, 0]], "4x4"),  # ragged
        ("eye", "4x4"),
        (None, "4x4"),
        ([["1", "0", "0", "0"]] * 4, "4x4"),
    ],
)
def test_check_pose_refuses(matrix, needle):
    with pytest.raises(TransInrError, match=needle):
        check_pose(matrix, "frame 3")


def test_read_pose_file_formats(tmp_path):
    pose = rigid(rotation_z90(), (0.5, 1.0, 2.0))
    (tmp_path / "list.json").write_text(json.dumps(pose))
    (tmp_path / "frame.json").write_text(json.dumps({"transform_matrix": pose}))
    (tmp_path / "pose.txt").write_text("\n".join(" ".join(str(v) for v in row) for row in pose))
    expected = torch.tensor(pose, dtype=torch.float32)
    for name in ("list.json", "frame.json", "pose.txt"):
        assert torch.equal(read_pose_file(tmp_path / name), expected), name
    (tmp_path / "words.txt").write_text("not a pose")
    (tmp_path / "short.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0")
    (tmp_path / "other.json").write_text(json.dumps({"matrix": pose}))
    for name in ("words.txt", "short.txt", "other.json", "missing.json"):
        with pytest.raises(TransInrError, match=name.split(".")[0]):
            read_pose_file(tmp_path / name)


# --- volume rendering -----------------------------------------------------------------------


def test_composite_of_zero_density_is_white():
    colour = torch.rand(5, 16, 3)
    depths = torch.linspace(2.0, 6.0, 16).expand(5, 16)
    rgb, opacity = composite(colour, torch.zeros(5, 16), depths)
    assert torch.equal(rgb, torch.ones(5, 3))
    assert torch.equal(opacity, torch.zeros(5))


def test_composite_of_a_dense_slab_is_its_colour():
    depths = torch.linspace(2.0, 6.0, 32).expand(4, 32)
    colour = torch.rand(4, 32, 3)  # in front of and behind the slab: hidden or empty
    slab_colour = torch.tensor([0.1, 0.6, 0.3])
    colour[:, 10:20] = slab_colour
    density = torch.zeros(4, 32)
    density[:, 10:20] = 1e4  # opaque within its first sample
    rgb, opacity = composite(colour, density, depths)
    assert torch.allclose(opacity, torch.ones(4), atol=1e-5)
    assert torch.allclose(rgb, slab_colour.expand(4, 3), atol=1e-5)
    # Everything dense: the first sample's colour.
    rgb, opacity = composite(colour, torch.full((4, 32), 1e6), depths)
    assert torch.allclose(rgb, colour[:, 0], atol=1e-5)


def test_composite_of_a_thin_fog_is_partial():
    depths = torch.linspace(2.0, 6.0, 5)[None]
    density = torch.full((1, 5), 0.1)
    rgb, opacity = composite(torch.zeros(1, 5, 3), density, depths)
    # alpha per interval 1 - exp(-0.1 * 1) for four unit intervals, then 1e-3.
    expected = 1 - math.exp(-0.1 * (4 + 1e-3))
    assert opacity.item() == pytest.approx(expected, rel=1e-4)
    assert torch.allclose(rgb, torch.full((1, 3), 1 - expected), atol=1e-5)  # black fog on white


def zero_density_weights(batch: int = 1):
    torch.manual_seed(0)
    weights = init_weights(TINY.inr, batch)
    weights[-1][:, :-1, 3] = 0.0  # the density column: no dependence on the features
    weights[-1][:, -1, 3] = -100.0  # and a very negative bias: ReLU gives 0
    return weights


def test_render_rays_of_an_empty_nerf_is_white():
    origins = torch.tensor([0.0, 0.0, 4.0]).expand(2, 7, 3)
    directions = torch.randn(2, 7, 3)
    sampling = RaySampling(2.0, 6.0, 8)
    rgb = render_rays(zero_density_weights(2), TINY.inr, sampling, origins, directions)
    assert rgb.shape == (2, 7, 3)
    assert torch.allclose(rgb, torch.ones(2, 7, 3), atol=1e-6)
    image = render_view(
        zero_density_weights(), TINY.inr, sampling, look_at_pose(0.0, 30.0, 4.0)[None], 5, 5, 6.0
    )
    assert image.shape == (1, 5, 5, 3)
    assert torch.allclose(image, torch.ones_like(image), atol=1e-6)


def test_render_rays_of_a_random_nerf_is_not_white_and_in_range():
    torch.manual_seed(1)
    weights = init_weights(TINY.inr)
    weights[-1][:, -1, 3] = 5.0  # some density everywhere
    pose = look_at_pose(0.0, 30.0, 4.0)[None]
    image = render_view(weights, TINY.inr, RaySampling(2.0, 6.0, 8), pose, 6, 6, 7.0)
    assert image.min() >= 0 and image.max() <= 1
    assert (image < 0.99).any()


def test_sample_depths_without_jitter_is_linspace():
    depths = sample_depths((3, 4), 2.0, 6.0, 9)
    assert depths.shape == (3, 4, 9)
    assert torch.allclose(depths, torch.linspace(2.0, 6.0, 9).expand(3, 4, 9))


def test_sample_depths_with_jitter():
    step = (6.0 - 2.0) / 8

    def jittered(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return sample_depths((50, 10), 2.0, 6.0, 9, jitter=True, generator=generator)

    depths = jittered(7)
    assert depths.min() >= 2.0 and depths.max() < 6.0 + step
    assert (depths[..., 1:] > depths[..., :-1] - step).all()
    plain = torch.linspace(2.0, 6.0, 9)
    offsets = depths - plain
    assert offsets.min() >= 0 and offsets.max() < step
    assert offsets.std() > 0.05  # really jittered
    assert torch.equal(depths, jittered(7))  # deterministic for a seeded generator
    assert not torch.equal(depths, jittered(8))


def test_orbit_poses_and_camera_radius():
    poses = orbit_poses(4, 20.0, 3.5)
    assert poses.shape == (4, 4, 4)
    assert camera_radius(poses) == pytest.approx(3.5, rel=1e-6)
    assert torch.allclose(poses[:, 2, 3], torch.full((4,), 3.5 * math.sin(math.radians(20))))
    assert torch.allclose(poses[1], look_at_pose(90.0, 20.0, 3.5))


# --- the view tokenizer ---------------------------------------------------------------------


@pytest.mark.parametrize("views", [1, 2])
def test_view_tokenizer_shapes_with_the_paper_config(views):
    config = preset_config("chairs", "nerf")
    assert (config.image_size, config.patch_size, config.channels) == (128, 8, 9)
    torch.manual_seed(0)
    tokenizer = ViewTokenizer(config.image_size, config.patch_size, config.channels, config.dim)
    assert tokenizer.position_embedding is None  # views carry their rays, not positions
    assert tokenizer.patch_embedding.in_features == 9 * 8 * 8 == 576
    assert tokenizer.patch_embedding.out_features == 768
    batch = torch.rand(2, views, 9, 128, 128)
    tokens = tokenizer(batch)
    assert tokens.shape == (2, views * config.data_token_count, 768)
    assert config.data_token_count == 256
    # No positional embedding: each view's tokens are what it gives on its own.
    for view in range(views):
        alone = tokenizer(batch[:, view : view + 1])
        part = tokens[:, view * 256 : (view + 1) * 256]
        assert torch.allclose(part, alone, atol=1e-5)


def test_views_to_tokens_input_resizes_and_adds_the_rays():
    torch.manual_seed(0)
    images = torch.rand(1, 2, 3, 64, 64)
    poses = torch.stack([look_at_pose(10.0, 20.0, 4.0), look_at_pose(200.0, 45.0, 4.0)])[None]
    focal = focal_from_angle(64, 0.6911112070083618)
    tokens_input = views_to_tokens_input(images, poses, focal, 32)
    assert tokens_input.shape == (1, 2, 9, 32, 32)
    assert torch.allclose(tokens_input[:, :, :3], F.avg_pool2d(images[0], 2)[None], atol=1e-6)
    origins, directions = camera_rays(poses, 32, 32, focal / 2)  # focal scaled with the size
    assert torch.allclose(tokens_input[:, :, 3:6], origins.movedim(-1, -3))
    assert torch.allclose(tokens_input[:, :, 6:9], directions.movedim(-1, -3))
    same = views_to_tokens_input(images, poses, focal, 64)  # at its own size: unchanged
    assert torch.equal(same[:, :, :3], images)


def test_the_paper_nerf_model_has_the_paper_parameter_count():
    for preset in ("chairs", "chairs-2view"):
        config = preset_config(preset, "nerf")
        counts = parameter_breakdown(TransInr(config))
        assert counts["total"] == 44_463_484, preset
        assert counts["weight tokens"] == (5 * 32 + 4) * 768
    assert sum(preset_config("chairs", "nerf").group_counts()) == 164


# --- the learnit reader -------------------------------------------------------------------


@pytest.mark.skipif(not SHAPENET_REAL.is_dir(), reason=f"{SHAPENET_REAL} is not present")
def test_the_learnit_loader_reads_real_shapenet_unchanged():
    dataset = ViewDataset(SHAPENET_REAL, "benchs", "test")
    ids = json.loads((SHAPENET_REAL / "bench_splits.json").read_text())["test"]
    assert len(dataset) == len(ids) == 10
    assert [folder.name for folder in dataset.folders] == ids
    assert dataset.views is None  # test objects: all 50 views
    images, poses, focal = dataset[0]
    assert images.shape == (50, 3, 128, 128) and images.dtype == torch.float32
    assert poses.shape == (50, 4, 4)
    assert focal.item() == pytest.approx(0.5 * 128 / math.tan(0.5 * 0.6911112070083618), rel=1e-6)
    transforms = json.loads((dataset.folders[0] / "transforms.json").read_text())
    for view in (0, 49):
        exact = torch.tensor(transforms["frames"][view]["transform_matrix"], dtype=torch.float32)
        assert torch.equal(poses[view], exact)
        with Image.open(dataset.folders[0] / f"{view:03d}.png") as png:
            rgba = np.asarray(png.convert("RGBA"))
        transparent = torch.from_numpy(rgba[..., 3] == 0)
        opaque = torch.from_numpy(rgba[..., 3] == 255)
        assert transparent.any() and opaque.any()
        assert (images[view][:, transparent] == 1.0).all()  # composited on white
        colour = torch.from_numpy(rgba[..., :3].astype(np.float32) / 255).permute(2, 0, 1)
        assert torch.allclose(images[view][:, opaque], colour[:, opaque])
    assert camera_radius(poses) == pytest.approx(4.0, abs=0.05)
    for pose in poses:
        check_pose(pose.tolist(), "real")


def test_train_split_yields_the_first_25_views(nerf_data):
    train_set = ViewDataset(nerf_data, "chairs", "train")
    test_set = ViewDataset(nerf_data, "chairs", "test")
    assert (len(train_set), len(test_set)) == (3, 1)
    images, poses, focal = train_set[0]
    assert images.shape == (25, 3, 128, 128) and poses.shape == (25, 4, 4)
    full = load_views(train_set.folders[0])
    assert torch.equal(images, full.images[:25]) and torch.equal(poses, full.poses[:25])
    assert len(test_set[0][0]) == 50
    assert len(ViewDataset(nerf_data, "chairs", "train", limit=2)) == 2


def test_a_cached_train_split_reads_each_object_once(nerf_data, monkeypatch):
    train_set = ViewDataset(nerf_data, "chairs", "train", cache_bytes=1 << 30)
    uncached = ViewDataset(nerf_data, "chairs", "train")
    assert train_set.cache is not None and uncached.cache is None
    assert ViewDataset(nerf_data, "chairs", "train", cache_bytes=1000).cache is None  # too big
    reads: list[tuple[bool, int]] = []
    original = ViewDataset.read

    def counted_read(self, index):
        reads.append((self is train_set, index))
        return original(self, index)

    monkeypatch.setattr(ViewDataset, "read", counted_read)
    for _ in range(2):
        for index in range(len(train_set)):
            cached, fresh = train_set[index], uncached[index]
            assert all(torch.equal(a, b) for a, b in zip(cached, fresh, strict=True))
    assert sorted(index for is_cached, index in reads if is_cached) == [0, 1, 2]
    assert len([1 for is_cached, _ in reads if not is_cached]) == 6


def test_load_views_of_a_transforms_json_path_and_chosen_views(chair):
    whole = load_views(chair)
    assert whole.images.shape == (50, 3, 128, 128)
    assert whole.camera_angle_x == pytest.approx(synth.CAMERA_ANGLE_X)
    chosen = load_views(chair / "transforms.json", [7, 0])
    assert torch.equal(chosen.images, whole.images[[7, 0]])
    assert torch.equal(chosen.poses, whole.poses[[7, 0]])
    assert chosen.focal == whole.focal == pytest.approx(focal_from_angle(128, synth.CAMERA_ANGLE_X))


# --- the synthetic data -------------------------------------------------------------------


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:].astype(np.float64) / 255
    return (rgba[..., :3].astype(np.float64) / 255) * alpha + (1 - alpha)


def test_written_views_read_back_as_the_analytic_render(tmp_path):
    scene = [
        synth.sphere((0.0, 0.0, 0.2), 0.3, (0.8, 0.2, 0.2)),
        synth.box((0.0, 0.0, -0.3), (0.4, 0.3, 0.1), (0.2, 0.5, 0.9)),
        synth.cylinder((0.3, 0.3, 0.0), 0.1, 0.3, (0.3, 0.8, 0.3)),
    ]
    poses = [look_at_pose(a, e, 4.0) for a, e in ((0, 10), (75, 35), (200, 60))]
    synth.write_object(tmp_path / "obj", scene, poses, size=32)
    posed = load_views(tmp_path / "obj")
    assert posed.images.shape == (3, 3, 32, 32)
    assert torch.equal(posed.poses, torch.stack(poses))
    assert posed.focal == pytest.approx(focal_from_angle(32, synth.CAMERA_ANGLE_X))
    for view, pose in enumerate(poses):
        expected = composite_on_white(synth.render_view(scene, pose, 32, 32))
        found = posed.images[view].permute(1, 2, 0).double().numpy()
        assert np.abs(found - expected).max() <= 1 / 255 + 1e-6
        assert (found < 0.9).any(axis=-1).sum() > 20  # the object is in view


def test_sphere_silhouette_matches_the_camera_rays(tmp_path):
    """Pixels well inside the projected sphere (by models.nerf.rays maths) are object, pixels well
    outside are white: the generator and the loader agree with the ray convention."""
    centre, radius, size = np.array([0.1, -0.2, 0.3]), 0.45, 48
    scene = [synth.sphere(tuple(centre), radius, (0.2, 0.3, 0.9))]
    poses = [look_at_pose(a, e, 4.0) for a, e in ((15, 5), (130, 40))]
    synth.write_object(tmp_path / "ball", scene, poses, size=size)
    posed = load_views(tmp_path / "ball")
    focal = focal_from_angle(size, synth.CAMERA_ANGLE_X)
    for view, pose in enumerate(poses):
        origins, directions = camera_rays(pose.double(), size, size, focal)
        o, d = origins.numpy() - centre, directions.numpy()
        d_unit = d / np.linalg.norm(d, axis=-1, keepdims=True)
        closest = np.linalg.norm(o - (o * d_unit).sum(-1, keepdims=True) * d_unit, axis=-1)
        pixel = 4.0 / focal  # a pixel's footprint near the sphere
        inside, outside = closest < radius - 1.5 * pixel, closest > radius + 1.5 * pixel
        image = posed.images[view].numpy()
        white = (image == 1.0).all(axis=0)
        assert inside.sum() > 50 and outside.sum() > 50
        assert not white[inside].any()
        assert white[outside].all()


# --- the objective, refinement, encoding, evaluation --------------------------------------


def test_pick_views_support_and_query_differ():
    generator = torch.Generator().manual_seed(0)
    for support_views in (1, 2, 3):
        support, query = pick_views(6, 40, support_views, generator)
        assert support.shape == (40, support_views) and query.shape == (40,)
        for row, other in zip(support.tolist(), query.tolist(), strict=True):
            assert len(set(row)) == support_views
            assert other not in row
            assert 0 <= other < 6 and all(0 <= v < 6 for v in row)
    first = pick_views(6, 4, 1, torch.Generator().manual_seed(3))
    again = pick_views(6, 4, 1, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def nerf_batch(nerf_data, objects: int = 2):
    dataset = ViewDataset(nerf_data, "chairs", "train")
    items = [dataset[i] for i in range(objects)]
    return dataset, tuple(torch.stack(parts) for parts in zip(*items, strict=True))


def test_nerf_objective_is_deterministic_per_step(nerf_data, monkeypatch):
    dataset, batch = nerf_batch(nerf_data)
    torch.manual_seed(0)
    model = TransInr(TINY)
    objective = NerfObjective(TINY, torch.device("cpu"), dataset, 1, 1, 64, 1.0, seed=0)
    import models.tasks.objectives as objectives

    seen: dict[str, list] = {"support": [], "query": []}
    original_support, original_rays = objectives.support_input, objective.sample_rays

    def spy_support(config, images, poses, focal, support):
        seen["support"].append(support.clone())
        return original_support(config, images, poses, focal, support)

    def spy_rays(images, poses, focal, query, generator, foreground):
        seen["query"].append(query.clone())
        return original_rays(images, poses, focal, query, generator, foreground)

    monkeypatch.setattr(objectives, "support_input", spy_support)
    monkeypatch.setattr(objective, "sample_rays", spy_rays)
    with torch.no_grad():
        loss, item_psnr = objective.loss(model, batch, step=3, epoch=0.0)
        again, _ = objective.loss(model, batch, step=3, epoch=0.0)
        other, _ = objective.loss(model, batch, step=4, epoch=0.0)
    assert loss.ndim == 0 and torch.isfinite(loss) and item_psnr.shape == (2,)
    assert loss.item() == again.item()
    assert other.item() != loss.item()
    assert torch.equal(seen["support"][0], seen["support"][1])
    assert torch.equal(seen["query"][0], seen["query"][1])
    for support, query in zip(seen["support"], seen["query"], strict=True):
        assert support.shape == (2, 1)
        assert (support[:, 0] != query).all()


def test_foreground_rays_are_on_the_object(nerf_data):
    dataset, (images, poses, focal) = nerf_batch(nerf_data)
    objective = NerfObjective(TINY, torch.device("cpu"), dataset, 0, 1, 64, 1.0, seed=0)
    query = torch.tensor([3, 5])
    _, _, colours = objective.sample_rays(
        images, poses, focal, query, torch.Generator().manual_seed(0), foreground=True
    )
    assert colours.shape == (2, 64, 3)
    assert ((colours[:, :32] < 0.99).any(dim=-1)).all()  # the first half: on the object


def test_refinement_lowers_the_view_loss(chair):
    posed = load_views(chair, [0, 1])
    sampling = RaySampling(2.0, 6.0, 16)
    torch.manual_seed(2)
    weights = init_weights(TINY.inr)
    loss_fn = view_loss(TINY.inr, sampling, posed, rays_per_step=256, seed=0)
    before = loss_fn(weights, 0).item()
    assert loss_fn(weights, 0).item() == before  # the same step: the same rays and jitter
    losses: list[float] = []
    tuned = refine(weights, loss_fn, steps=20, lr=1e-3, on_step=lambda s, v: losses.append(v))
    after = loss_fn(tuned, 0).item()
    assert len(losses) == 20
    assert after < 0.95 * before, (before, after)
    assert not torch.equal(tuned[0], weights[0])
    psnr_before = support_ray_psnr(weights, TINY.inr, sampling, posed)
    assert support_ray_psnr(tuned, TINY.inr, sampling, posed) > psnr_before


def test_random_view_rays_pick_pixels_of_the_views(chair):
    posed = load_views(chair, [2, 9])
    origins, directions, colours = random_view_rays(posed, 100, torch.Generator().manual_seed(1))
    assert origins.shape == directions.shape == colours.shape == (1, 100, 3)
    cameras = posed.poses[:, :3, 3]
    assert all(
        any(torch.allclose(o, c) for c in cameras) for o in origins[0]
    )  # every ray starts at a support camera
    all_o, all_d = camera_rays(posed.poses, 128, 128, posed.focal)
    pixels = posed.images.permute(0, 2, 3, 1).reshape(-1, 3)
    flat_d = all_d.reshape(-1, 3)
    for ray in range(0, 100, 17):
        index = (flat_d - directions[0, ray]).abs().sum(-1).argmin()
        assert torch.equal(pixels[index], colours[0, ray])


def test_encode_views_file_writes_camera_metadata(nerf_run, chair):
    checkpoint = load_checkpoint(nerf_run)
    model = checkpoint.build_model().eval()
    inr_file, seconds = encode_views_file(model, checkpoint, chair, [0, 3])
    assert seconds >= 0 and inr_file.task == "nerf"
    assert [tuple(w.shape) for w in inr_file.weights] == [
        (fan_in + 1, fan_out) for fan_in, fan_out in TINY.inr.layer_shapes()
    ]
    header = inr_file.header
    assert (header.near, header.far, header.samples) == (2.0, 6.0, TINY.samples)
    assert header.support_views == [0, 3]
    assert header.focal == pytest.approx(focal_from_angle(128, synth.CAMERA_ANGLE_X))
    assert header.camera_radius == pytest.approx(4.0, rel=1e-5)
    assert header.view_size == 128 and len(header.support_poses) == 2
    assert 0 < header.encode_psnr < 100
    again, _ = encode_views_file(model, checkpoint, chair / "transforms.json", [0, 3])
    assert all(torch.equal(a, b) for a, b in zip(inr_file.weights, again.weights, strict=True))
    single, _ = encode_views_file(model, checkpoint, chair)  # default: view 0
    assert single.header.support_views == [0]
    assert not torch.equal(single.weights[0], inr_file.weights[0])


def test_evaluate_views_with_one_and_two_support_views(nerf_run, nerf_data):
    checkpoint = load_checkpoint(nerf_run)
    model = checkpoint.build_model().eval()
    dataset = ViewDataset(nerf_data, "chairs", "test")
    cpu = torch.device("cpu")
    result = evaluate_views(model, dataset, cpu, support_views=1, pairs_per_object=2)
    assert result.images == 2 and len(result.per_image) == 2
    assert 5 < result.psnr < 60 and result.psnr_refined is None
    again = evaluate_views(model, dataset, cpu, support_views=1, pairs_per_object=2)
    assert again.per_image == result.per_image  # a fixed seed: the same pairs
    two = evaluate_views(model, dataset, cpu, support_views=2, refine_steps=1, refine_lr=1e-3)
    assert two.images == 1 and two.refine_steps == 1
    assert two.psnr_refined is not None and math.isfinite(two.psnr_refined)
    assert two.psnr_refined != two.psnr


# --- bad input: always a TransInrError ------------------------------------------------------


@pytest.fixture
def views_folder(tmp_path) -> Path:
    return write_views(tmp_path / "obj", [(16, 16)] * 3)


def rewrite(folder: Path, change) -> Path:
    path = folder / "transforms.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return folder


def test_a_hand_made_views_folder_loads(views_folder):
    posed = load_views(views_folder)
    assert posed.images.shape == (3, 3, 16, 16)
    assert posed.images[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]  # transparent -> white
    assert torch.allclose(posed.images[0, :, 8, 8], torch.tensor([90, 60, 30]) / 255)
    angle, frames = read_transforms(views_folder / "transforms.json")
    assert angle == pytest.approx(synth.CAMERA_ANGLE_X) and len(frames) == 3


def drop(key):
    return lambda data: data.pop(key)


def frame_change(**changes):
    def change(data):
        for key, value in changes.items():
            if value is None:
                data["frames"][1].pop(key)
            else:
                data["frames"][1][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (drop("camera_angle_x"), ("malformed", "camera_angle_x")),
        (drop("frames"), ("malformed",)),
        (lambda d: d.update(frames=[]), ("malformed",)),
        (lambda d: d.update(frames={"0": 1}), ("malformed",)),
        (lambda d: d.update(frames=[1, 2]), ("malformed",)),
        (frame_change(transform_matrix=None), ("malformed", "transform_matrix")),
        (frame_change(file_path=None), ("malformed",)),
        (frame_change(file_path=7), ("malformed",)),
        (lambda d: d.update(camera_angle_x="wide"), ("malformed",)),
        (lambda d: d.update(camera_angle_x=None), ("malformed",)),
        (lambda d: d.update(camera_angle_x=4.0), ("camera_angle_x", "(0, pi)")),
        (lambda d: d.update(camera_angle_x=0.0), ("camera_angle_x",)),
        (lambda d: d.update(camera_angle_x=-0.7), ("camera_angle_x",)),
        (lambda d: d.update(camera_angle_x=float("nan")), ("camera_angle_x",)),
        (
            frame_change(transform_matrix=[[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]),
            ("frame 1", "rigid"),
        ),  # fmt: skip
        (frame_change(transform_matrix="identity"), ("frame 1", "4x4")),
        (lambda d: d.update(camera_angle_x=0.7, frames=[[]]), ("malformed",)),
    ],
)
def test_bad_transforms_json(views_folder, change, needles):
    rewrite(views_folder, change)
    with pytest.raises(TransInrError) as error:
        load_views(views_folder)
    for needle in needles:
        assert needle.lower() in str(error.value).lower()
    assert "\n" not in str(error.value)


def test_transforms_json_missing_or_not_json(tmp_path, views_folder):
    with pytest.raises(TransInrError, match="transforms.json"):
        load_views(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TransInrError, match="not found"):
        load_views(empty)
    (views_folder / "transforms.json").write_text("{ not json")
    with pytest.raises(TransInrError, match="malformed"):
        load_views(views_folder)
    (views_folder / "transforms.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TransInrError, match="malformed"):
        load_views(views_folder)
    (views_folder / "transforms.json").write_text("[1, 2, 3]")
    with pytest.raises(TransInrError, match="malformed"):
        load_views(views_folder)


def test_missing_image_file(tmp_path):
    folder = write_views(tmp_path / "obj", [(16, 16)] * 3, skip_images=(1,))
    assert load_views(folder, [0, 2]).images.shape == (2, 3, 16, 16)  # unused views may be gone
    with pytest.raises(TransInrError, match="001.png"):
        load_views(folder, [0, 1])


def test_an_image_that_is_not_an_image(views_folder):
    (views_folder / "001.png").write_text("not a png")
    with pytest.raises(TransInrError, match="001.png"):
        load_views(views_folder)


def test_non_square_and_mismatched_views(tmp_path):
    folder = write_views(tmp_path / "wide", [(16, 16), (20, 16)])
    with pytest.raises(TransInrError, match="square"):
        load_views(folder, [1])
    folder = write_views(tmp_path / "mixed", [(16, 16), (24, 24)])
    assert load_views(folder, [1]).images.shape == (1, 3, 24, 24)
    with pytest.raises(TransInrError, match="same-size"):
        load_views(folder)


@pytest.mark.parametrize("views", [[3], [-1], [0, 50], [-4]])
def test_view_index_out_of_range(views_folder, views):
    with pytest.raises(TransInrError, match="does not exist"):
        load_views(views_folder, views)


def test_an_empty_view_list(views_folder):
    with pytest.raises(TransInrError):
        load_views(views_folder, [])


def test_encode_more_views_than_the_model_allows(nerf_run, chair, views_folder):
    checkpoint = load_checkpoint(nerf_run)
    model = checkpoint.build_model().eval()
    assert checkpoint.config.max_views == 4
    with pytest.raises(TransInrError, match=r"5 support views.*\(4\)"):
        encode_views_file(model, checkpoint, chair, [0, 1, 2, 3, 4])
    with pytest.raises(TransInrError, match="does not exist"):
        encode_views_file(model, checkpoint, views_folder, [0, 7])


def test_encode_views_with_an_image_model(chair):
    from models.io.checkpoint import Checkpoint

    config = preset_config("tiny")
    model = TransInr(config)
    checkpoint = Checkpoint(config, model.state_dict(), model_id="tiny-image")
    with pytest.raises(TransInrError, match="NeRF model"):
        encode_views_file(model, checkpoint, chair, [0])


def test_split_file_errors(tmp_path, nerf_data):
    with pytest.raises(TransInrError, match="chair_splits.json"):
        ViewDataset(tmp_path, "chairs", "train")
    root = tmp_path / "data"
    root.mkdir()
    (root / "chair_splits.json").write_text(json.dumps({"train": [], "test": "abc"}))
    with pytest.raises(TransInrError, match="no train objects"):
        ViewDataset(root, "chairs", "train")
    with pytest.raises(TransInrError, match="'test'"):
        ViewDataset(root, "chairs", "test")
    assert object_folders(nerf_data, "chairs", "train")[0].parent == nerf_data / "chairs"


def test_synthetic_poses_are_rigid_views_of_the_object(nerf_data, chair):
    posed = load_views(chair)
    assert camera_radius(posed.poses) == pytest.approx(synth.RADIUS, rel=1e-5)
    elevations = torch.rad2deg(torch.asin(posed.poses[:, 2, 3] / synth.RADIUS))
    assert elevations.min() >= -1e-3 and elevations.max() <= 60 + 1e-3
    covered = (posed.images < 0.99).any(dim=1).float().mean(dim=(1, 2))
    assert (covered > 0.01).all()  # every view shows the chair
    assert torch.equal(posed.images[:, :, 0, 0], torch.ones(50, 3))  # white corners
    assert json.loads((nerf_data / "chair_splits.json").read_text())["test"] == [chair.name]


def test_rigid_pose_helper_is_rigid():
    check_pose(rigid_pose(), "helper")
