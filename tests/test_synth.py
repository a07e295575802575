"""The synthetic learnit data: determinism, layout, analytic rendering and object bounds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.data.synth import (
    CAMERA_ANGLE_X,
    CATEGORIES,
    EXTENT,
    box,
    cylinder,
    make_object,
    render_view,
    scene_bounds,
    sphere,
    view_poses,
    write_dataset,
    write_object,
)
from models.nerf.rays import camera_rays, focal_from_angle, look_at_pose

SHAPENET_REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "shapenet-real"
SHAPENET_REAL = SHAPENET_REAL.resolve()
FOCAL = focal_from_angle(128, CAMERA_ANGLE_X)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def sphere_mask(pose: torch.Tensor, centre: tuple[float, float, float], radius: float, size=128):
    """Pixels whose centre ray meets the sphere, from models.nerf.rays directly (float64 maths)."""
    origins, directions = camera_rays(pose, size, size, focal_from_angle(size, CAMERA_ANGLE_X))
    o = origins.double().numpy() - np.asarray(centre)
    d = directions.double().numpy()
    a, b = (d * d).sum(-1), 2 * (o * d).sum(-1)
    c = (o * o).sum(-1) - radius**2
    return b * b - 4 * a * c >= 0  # the sphere is in front of the camera


def march(scene_inside, pose: torch.Tensor, size: int, steps: int = 600) -> np.ndarray:
    """Index of the first primitive a pixel-centre ray enters (-1: none), by brute-force
    marching t in [2, 6] with point-in-solid tests (independent of the analytic tracer)."""
    origins, directions = camera_rays(pose, size, size, focal_from_angle(size, CAMERA_ANGLE_X))
    o, d = origins.double().numpy(), directions.double().numpy()
    first = np.full((size, size), -1)
    for t in np.linspace(2.0, 6.0, steps):
        points = o + t * d
        for index, inside in enumerate(scene_inside):
            first = np.where((first < 0) & inside(points), index, first)
    return first


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, tuple[Path, list[str]]]:
    """Two full-size objects (50 views of 128x128) per category, each category its own root."""
    out = {}
    for category in CATEGORIES:
        root = tmp_path_factory.mktemp(category)
        out[category] = (root, write_dataset(root, category, 2, seed=3))
    return out


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    calls = []
    kwargs = dict(objects=2, views=4, size=48)
    first = write_dataset(tmp_path / "a", "lamps", seed=5, on_object=calls.append, **kwargs)
    again = write_dataset(tmp_path / "b", "lamps", seed=5, **kwargs)
    other = write_dataset(tmp_path / "c", "lamps", seed=6, **kwargs)
    assert calls == [0, 1]
    assert first == again and set(first).isdisjoint(other)
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a == b and len(a) == 2 * (4 + 1) + 1
    pngs_a = sorted(v for k, v in a.items() if k.endswith(".png"))
    pngs_c = sorted(v for k, v in files_of(tmp_path / "c").items() if k.endswith(".png"))
    assert pngs_a != pngs_c
    # object i depends only on (category, seed, i): asking for more objects only adds some
    more = write_dataset(tmp_path / "d", "lamps", objects=3, seed=5, views=4, size=48)
    assert more[:2] == first
    assert (tmp_path / "d" / "lamps" / first[1] / "003.png").read_bytes() == (
        tmp_path / "a" / "lamps" / first[1] / "003.png"
    ).read_bytes()


@pytest.mark.parametrize("category", CATEGORIES)
def test_layout_matches_the_learnit_convention(datasets, category):
    root, ids = datasets[category]
    assert len(ids) == 2 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    splits_file = root / {"chairs": "chair", "cars": "car", "lamps": "lamp"}[category]
    splits = json.loads(splits_file.with_name(splits_file.name + "_splits.json").read_text())
    assert set(splits) == {"train", "val", "test"} and splits["val"] == []
    assert sorted(splits["train"] + splits["test"]) == sorted(ids) and len(splits["test"]) == 1
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [category, splits_file.name + "_splits.json"]
    )
    for object_id in ids:
        folder = root / category / object_id
        names = sorted(p.name for p in folder.iterdir())  # no temporary files left behind
        assert names == [f"{i:03d}.png" for i in range(50)] + ["transforms.json"]
        transforms = json.loads((folder / "transforms.json").read_text())
        assert set(transforms) == {"camera_angle_x", "frames"}
        assert transforms["camera_angle_x"] == CAMERA_ANGLE_X
        assert len(transforms["frames"]) == 50
        for view, frame in enumerate(transforms["frames"]):
            assert set(frame) == {"file_path", "transform_matrix"}
            assert frame["file_path"] == f"./rgb/{view:03d}"
            pose = np.asarray(frame["transform_matrix"])
            assert pose.shape == (4, 4) and np.array_equal(pose[3], [0, 0, 0, 1])
            position = pose[:3, 3]
            assert np.linalg.norm(position) == pytest.approx(4.0, abs=1e-5)
            elevation = math.degrees(math.asin(position[2] / np.linalg.norm(position)))
            assert -1e-3 <= elevation <= 60.001
            assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5)
            # the camera looks at the origin (down its -z axis)
            assert np.allclose(-pose[:3, 2] * 4.0, -position, atol=1e-4)
        for view in (0, 17, 49):
            image = Image.open(folder / f"{view:03d}.png")
            assert image.format == "PNG" and image.mode == "RGBA" and image.size == (128, 128)
            rgba = np.asarray(image)
            assert (rgba[..., 3] == 255).sum() > 200  # the object is in view
            background = rgba[..., 3] == 0
            assert (rgba[background, :3] == 255).all()  # transparent white, like the real renders
            assert (rgba[[0, 0, -1, -1], [0, -1, 0, -1], 3] == 0).all()  # corners: background


@pytest.mark.skipif(not SHAPENET_REAL.is_dir(), reason=f"no real renders at {SHAPENET_REAL}")
def test_same_file_format_as_the_real_renders(datasets):
    real = next(p for p in sorted((SHAPENET_REAL / "benchs").iterdir()) if p.is_dir())
    root, ids = datasets["chairs"]
    ours = root / "chairs" / ids[0]
    real_text, our_text = (
        (real / "transforms.json").read_text(),
        (ours / "transforms.json").read_text(),
    )
    assert real_text.splitlines()[:4] == our_text.splitlines()[:4]  # same keys, indent, file_path
    assert our_text.endswith("]\n}") == real_text.endswith("]\n}")
    real_png, our_png = Image.open(real / "000.png"), Image.open(ours / "000.png")
    assert (real_png.mode, real_png.size) == (our_png.mode, our_png.size)
    real_splits = json.loads((SHAPENET_REAL / "bench_splits.json").read_text())
    assert set(real_splits) == set(json.loads((root / "chair_splits.json").read_text()))


@pytest.mark.parametrize(
    ("centre", "radius", "azimuth", "elevation"),
    [((0.0, 0.0, 0.0), 0.5, 30.0, 20.0), ((0.2, -0.1, 0.15), 0.3, 200.0, 55.0)],
)
def test_sphere_silhouette_is_the_analytic_one(centre, radius, azimuth, elevation):
    pose = look_at_pose(azimuth, elevation, 4.0)
    scene = [sphere(centre, radius, (0.8, 0.3, 0.1))]
    mask = sphere_mask(pose, centre, radius)
    sharp = render_view(scene, pose, supersample=1)
    assert set(np.unique(sharp[..., 3])) == {0, 255}
    assert np.array_equal(sharp[..., 3] == 255, mask)  # pixel for pixel
    smooth = render_view(scene, pose)  # 2x2 supersampled: alpha is coverage
    alpha = smooth[..., 3]
    full = alpha == 255  # supersampled edge pixels average 4 shades: nearly the centre's
    assert np.abs(smooth[full].astype(int) - sharp[full]).max() <= 8
    assert not (alpha == 255)[~mask].any() and (alpha > 0)[mask].all()  # differ on edges only
    assert 0 < ((alpha > 0) & (alpha < 255)).sum() < 0.5 * mask.sum()


def test_written_files_reproduce_the_analytic_silhouette(tmp_path):
    """Write a sphere through the writer, read it back like a loader: rays from the JSON pose."""
    scene = [sphere((0.1, 0.0, -0.05), 0.45, (0.2, 0.6, 0.9))]
    poses = view_poses(np.random.default_rng(0), count=3)
    write_object(tmp_path, scene, poses, supersample=1)
    transforms = json.loads((tmp_path / "transforms.json").read_text())
    for frame in transforms["frames"]:
        pose = torch.tensor(frame["transform_matrix"], dtype=torch.float32)
        image = np.asarray(Image.open(tmp_path / (Path(frame["file_path"]).name + ".png")))
        mask = sphere_mask(pose, (0.1, 0.0, -0.05), 0.45)
        assert np.array_equal(image[..., 3] == 255, mask)


def test_shading_is_lambertian_plus_ambient():
    colour = (0.9, 0.6, 0.3)
    rgba = render_view([sphere((0, 0, 0), 0.5, colour)], look_at_pose(45, 30, 4.0))
    inside = rgba[..., 3] == 255
    rgb = rgba[inside][:, :3].astype(float)
    assert rgb.max(0) == pytest.approx([255 * c for c in colour], abs=6)  # faces the light
    assert rgb.min(0) == pytest.approx([255 * 0.35 * c for c in colour], abs=2)  # ambient only
    assert np.allclose(rgb / np.asarray(colour), (rgb / np.asarray(colour))[:, :1], atol=2.5)


def test_box_is_hit_where_it_projects():
    pose = look_at_pose(0.0, 0.0, 4.0)  # camera on +x, image right = +y, image up = +z
    centred = render_view([box((0, 0, 0), (0.1, 0.1, 0.1), (1, 1, 1))], pose, supersample=1)
    assert (centred[63:65, 63:65, 3] == 255).all()
    # box faces at distance 3.9 and 4.1: its silhouette is the near face, 0.1 / 3.9 * f pixels
    half = 0.1 / 3.9 * FOCAL
    rows, cols = np.nonzero(centred[..., 3])
    assert cols.min() == math.ceil(64 - half - 0.5) and cols.max() == math.floor(64 + half - 0.5)
    assert rows.min() == math.ceil(64 - half - 0.5) and rows.max() == math.floor(64 + half - 0.5)
    shifted = render_view([box((0, 0.3, 0.2), (0.05, 0.05, 0.05), (1, 1, 1))], pose)
    x, y = 64 + 0.3 / 4.0 * FOCAL, 64 - 0.2 / 4.0 * FOCAL  # projection of the box centre
    assert shifted[int(y), int(x), 3] == 255 and shifted[64, 64, 3] == 0


def test_nearest_primitive_wins_and_matches_ray_marching():
    """Boxes, z and x cylinders, a cone and a sphere, overlapping: the first primitive along
    each ray (by brute-force marching) is the one whose colour the renderer shows."""
    scene = [
        box((0.0, 0.0, -0.2), (0.35, 0.25, 0.08), (1, 0, 0)),
        cylinder((0.15, 0.1, 0.05), 0.12, 0.25, (0, 1, 0)),
        cylinder((0.0, -0.15, -0.3), 0.1, 0.3, (0, 0, 1), axis=0),
        cylinder((-0.2, 0.15, 0.2), 0.18, 0.1, (1, 1, 0), radius_top=0.04),
        sphere((-0.05, -0.1, 0.1), 0.15, (0, 1, 1)),
    ]
    colours = np.array([p.color for p in scene])

    def in_box(c, h):
        return lambda q: (np.abs(q - c) <= h).all(-1)

    def in_frustum(c, axis, r0, r1, h):
        def inside(q):
            local = q - c
            w = local[..., axis]
            rho2 = (local**2).sum(-1) - w**2
            r = (r0 + r1) / 2 + (r1 - r0) / (2 * h) * w
            return (np.abs(w) <= h) & (rho2 <= r * r)

        return inside

    solids = [
        in_box(np.array([0.0, 0.0, -0.2]), np.array([0.35, 0.25, 0.08])),
        in_frustum(np.array([0.15, 0.1, 0.05]), 2, 0.12, 0.12, 0.25),
        in_frustum(np.array([0.0, -0.15, -0.3]), 0, 0.1, 0.1, 0.3),
        in_frustum(np.array([-0.2, 0.15, 0.2]), 2, 0.18, 0.04, 0.1),
        lambda q: ((q - np.array([-0.05, -0.1, 0.1])) ** 2).sum(-1) <= 0.15**2,
    ]
    for azimuth, elevation in [(20.0, 35.0), (250.0, 5.0), (120.0, 60.0)]:
        pose = look_at_pose(azimuth, elevation, 4.0)
        rgba = render_view(scene, pose, height=64, width=64, supersample=1)
        expected = march(solids, pose, 64)
        hit = rgba[..., 3] == 255
        assert (hit != (expected >= 0)).sum() <= 6  # marching steps blur a few edge pixels
        both = hit & (expected >= 0)
        # identify the primitive by the colour direction (all colours are distinct primaries)
        unit = rgba[..., :3].astype(float) / np.maximum(rgba[..., :3].max(-1, keepdims=True), 1)
        guess = np.argmin(((unit[..., None, :] - colours) ** 2).sum(-1), axis=-1)
        assert (guess[both] != expected[both]).sum() <= 6


@pytest.mark.parametrize("category", CATEGORIES)
def test_objects_are_centred_and_inside_the_cube(category):
    for seed in range(150):
        scene = make_object(category, np.random.default_rng(seed))
        lo, hi = scene_bounds(scene)
        assert (lo >= -0.6).all() and (hi <= 0.6).all()
        assert np.allclose(lo + hi, 0, atol=1e-9)
        assert max(hi - lo) / 2 == pytest.approx(EXTENT)
        for part in scene:
            assert all(0 <= c <= 1 for c in part.color)
            assert min(part.half) > 0 if part.kind == "box" else part.radius > 0
    big = make_object(category, np.random.default_rng(0), extent=1.0)
    assert max(np.abs(np.concatenate(scene_bounds(big)))) == pytest.approx(1.0)


def test_small_objects_leave_the_corners_transparent():
    rng = np.random.default_rng(11)
    for category in CATEGORIES:
        scene = make_object(category, rng)
        for pose in view_poses(rng, count=4):
            alpha = render_view(scene, pose, height=64, width=64)[..., 3]
            assert (alpha[[0, 0, -1, -1], [0, -1, 0, -1]] == 0).all()
            assert alpha.max() == 255


def test_view_poses_cover_the_upper_sphere():
    poses = torch.stack(view_poses(np.random.default_rng(0), count=400))
    positions = poses[:, :3, 3].double()
    assert torch.allclose(positions.norm(dim=-1), torch.full((400,), 4.0, dtype=torch.float64))
    elevation = torch.rad2deg(torch.asin(positions[:, 2] / 4.0))
    azimuth = torch.rad2deg(torch.atan2(positions[:, 1], positions[:, 0])) % 360
    assert elevation.min() >= -1e-4 and elevation.max() <= 60 + 1e-4 and elevation.max() > 55
    assert torch.histc(azimuth, bins=4, min=0, max=360).min() > 60


def test_bad_arguments_and_silence(tmp_path, capsys):
    with pytest.raises(ValueError, match="category"):
        write_dataset(tmp_path, "planes", 1)
    with pytest.raises(ValueError, match="category"):
        make_object("chair", np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive"):
        cylinder((0, 0, 0), 0.1, 0.0, (1, 1, 1))
    empty = render_view([], look_at_pose(10, 10, 4.0), height=8, width=8)
    assert (empty == [255, 255, 255, 0]).all()
    ids = write_dataset(tmp_path, "cars", 1, views=2, size=32)
    assert json.loads((tmp_path / "car_splits.json").read_text()) == {
        "train": ids,
        "val": [],
        "test": [],
    }
    assert capsys.readouterr() == ("", "")
