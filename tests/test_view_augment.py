"""Training augmentation (models/data/view_augment.py): mirrored objects keep their views
consistent, colour permutations keep white white, images flip at random, and `train --augment`
is checked per task and stored."""

from __future__ import annotations

import pytest
import torch
from nerf_support import (
    assert_fails,
    assert_ok,
    fixture_nerf_data,  # noqa: F401 (a fixture)
    invoke,
)

from models.data.view_augment import augment_views, mirror_views, parse_augmentations
from models.io.checkpoint import load_checkpoint
from models.nerf.rays import camera_rays, look_at_pose

MIRROR = torch.tensor([-1.0, 1.0, 1.0])  # x -> -x: objects face +y, as ShapeNet's


@pytest.mark.parametrize(("azimuth", "elevation"), [(0.0, 0.0), (37.0, 20.0), (200.0, 55.0)])
def test_a_mirrored_view_sees_the_mirror_image_of_each_ray(azimuth, elevation):
    """Pixel (r, W-1-c) of the flipped view looks along the mirror image (x -> -x) of the ray of
    pixel (r, c) of the original: so a mirrored object's views agree with each other."""
    pose = look_at_pose(azimuth, elevation, 4.0)
    height, width, focal = 6, 8, 7.5
    image = torch.rand(3, height, width)
    flipped, mirrored_pose = mirror_views(image, pose)
    origins, directions = camera_rays(pose, height, width, focal)
    mirrored_origins, mirrored_directions = camera_rays(mirrored_pose, height, width, focal)
    assert torch.allclose(mirrored_origins.flip(1), origins * MIRROR, atol=1e-6)
    assert torch.allclose(mirrored_directions.flip(1), directions * MIRROR, atol=1e-6)
    assert torch.equal(flipped.flip(-1), image)
    rotation = mirrored_pose[:3, :3]
    assert torch.allclose(rotation @ rotation.T, torch.eye(3), atol=1e-6)
    assert torch.linalg.det(rotation).item() == pytest.approx(1.0, abs=1e-6)


def test_augment_views_per_object():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(64, 3, 3, 4, 4)
    images[:, :, :, 0, 0] = 1.0  # a white pixel in every view
    poses = torch.stack([look_at_pose(10.0 * v, 20.0, 4.0) for v in range(3)]).expand(
        64, -1, -1, -1
    )
    out_images, out_poses = augment_views(images, poses, ("mirror", "colours"), generator)
    mirrored = ~torch.isclose(out_poses, poses).all(dim=(1, 2, 3))
    assert 10 < mirrored.sum() < 54  # about half the objects
    for index in range(64):
        views = out_images[index].flip(-1) if mirrored[index] else out_images[index]
        # one channel order per object, the same in all its views
        order = [
            next(c for c in range(3) if torch.equal(views[0, k], images[index, 0, c]))
            for k in range(3)
        ]
        assert sorted(order) == [0, 1, 2]
        assert torch.equal(views, images[index][:, order])
    white = out_images.flip(-1)[mirrored][:, :, :, 0, 0]
    assert (white == 1.0).all()
    assert len({tuple(row) for row in out_images[:, 0, :, 1, 1].argsort(dim=1).tolist()}) > 1
    unchanged, _ = augment_views(images, poses, (), generator)
    assert unchanged is images


@pytest.mark.parametrize(
    ("text", "kinds"),
    [("", ()), ("none", ()), ("mirror", ("mirror",)), ("colours, mirror", ("colours", "mirror"))],
)
def test_parse_augmentations(text, kinds):
    assert parse_augmentations(text) == kinds


@pytest.mark.parametrize("text", ["flip", "mirror,mirror", "mirror,none"])
def test_parse_augmentations_refuses(text):
    with pytest.raises(ValueError):
        parse_augmentations(text)


def test_train_with_augmentation_stores_it(tmp_path, nerf_data):
    run = tmp_path / "run"
    assert_ok(
        invoke("train", "--task", "nerf", "--category", "chairs", "--data", nerf_data,
               "--preset", "tiny", "--steps", 2, "--val-every", 2, "--workers", 0,
               "--augment", "mirror,colours", "--out", run, "--quiet")
    )  # fmt: skip
    checkpoint = load_checkpoint(run / "last.safetensors")
    assert checkpoint.train_state["train_config"]["augment"] == "mirror,colours"
    assert_fails(
        invoke("train", "--task", "nerf", "--out", run, "--resume", "--augment", "mirror"),
        "fixed by the checkpoint",
    )


def test_train_refuses_bad_augmentation(tmp_path, nerf_data):
    assert_fails(
        invoke("train", "--task", "nerf", "--data", nerf_data, "--preset", "tiny",
               "--augment", "flip", "--out", tmp_path / "a", "--quiet"),
        "--augment 'flip'", "mirror,colours",
    )  # fmt: skip
    assert_fails(
        invoke("train", "--dataset", "folder", "--data", tmp_path, "--preset", "tiny",
               "--augment", "mirror", "--out", tmp_path / "b", "--quiet"),
        "--augment 'mirror' is not a list of flip", "--augment flip",
    )  # fmt: skip
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_image_flip_mirrors_some_items_reproducibly(tmp_path):
    from support import make_image_folder

    from models.data.image_data import ImageDataset

    folder = make_image_folder(tmp_path / "images")
    plain = ImageDataset("folder", folder, "train", 16)
    flipped = ImageDataset("folder", folder, "train", 16, flip=True)
    image = plain[0]
    assert not torch.equal(image, image.flip(-1))
    outcomes = []
    for seed in range(16):
        item = flipped[(0, seed)]
        assert torch.equal(item, image) or torch.equal(item, image.flip(-1))
        assert torch.equal(item, flipped[(0, seed)])  # the seed decides
        assert torch.equal(plain[(0, seed)], image)
        outcomes.append(torch.equal(item, image))
    assert 0 < sum(outcomes) < 16


def test_train_images_with_flip_stores_it(tmp_path):
    from support import make_image_folder

    folder = make_image_folder(tmp_path / "images")
    run = tmp_path / "run"
    assert_ok(
        invoke("train", "--dataset", "folder", "--data", folder, "--preset", "tiny",
               "--steps", 2, "--val-every", 2, "--workers", 0, "--augment", "flip",
               "--out", run, "--quiet")
    )  # fmt: skip
    checkpoint = load_checkpoint(run / "last.safetensors")
    assert checkpoint.train_state["train_config"]["augment"] == "flip"
