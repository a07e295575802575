"""Real meshes -> learnit views (`models.data.meshes`, `transinr data mesh`): the renderer's cameras
are the loader's, OBJ/MTL/texture and .sh3f reading, bad input skipped with a reason,
determinism, and the command end to end. Every mesh here is a tiny one the test writes."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from models.data.meshes import (
    FolderModelFiles,
    Material,
    Mesh,
    catalogue_entries,
    find_sources,
    normalise,
    parse_obj,
    parse_properties,
    place,
    render_mesh_views,
    split_ids,
    turn_about_up,
    write_mesh_dataset,
)
from models.data.synth import CAMERA_ANGLE_X
from models.data.view_data import ViewDataset, load_views
from models.nerf.rays import camera_rays, look_at_pose
from transinr_cli.app import app

SHAPENET_REAL = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "shapenet-real"
).resolve()
RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
runner = CliRunner()


def file_xyz(point) -> str:
    """A Z-up point as an OBJ (Y-up) vertex line: world (x, y, z) is file (x, z, -y)."""
    x, y, z = point
    return f"v {x:.6f} {z:.6f} {-y:.6f}"


def cube(centre, half: float, first: int, material: str | None = None) -> list[str]:
    """OBJ lines of an axis-aligned cube (8 vertices numbered from `first`, 6 quads)."""
    corners = [
        (centre[0] + sx * half, centre[1] + sy * half, centre[2] + sz * half)
        for sx in (-1, 1)
        for sy in (-1, 1)
        for sz in (-1, 1)
    ]
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    lines = [file_xyz(c) for c in corners]
    lines += [f"usemtl {material}"] if material else []
    lines += ["f " + " ".join(str(first + i) for i in quad) for quad in quads]
    return lines


def write_two_cubes(folder: Path, name: str = "cubes") -> Path:
    """A red cube at A and a blue one at -A, half size 0.1: their bounding box is centred with
    longest side 2, so normalisation leaves them where they are."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.mtl").write_text(
        "newmtl red\nKd 1 0 0\n\nnewmtl blue\nKd 0 0 1\n", encoding="utf-8"
    )
    lines = [f"mtllib {name}.mtl"] + cube(CUBE_A, 0.1, 1, "red") + cube(-CUBE_A, 0.1, 9, "blue")
    path = folder / f"{name}.obj"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


CUBE_A = np.array([0.9, 0.45, 0.3])


def nearest_pixel(pose: torch.Tensor, size: int, focal: float, point) -> tuple[int, int]:
    """(row, col) of the pixel whose loader ray (models.nerf.rays) passes closest to `point`."""
    origins, directions = camera_rays(pose.double(), size, size, focal)  # (H, W, 3)
    offset = torch.as_tensor(point, dtype=torch.float64) - origins
    distance = torch.linalg.cross(offset, directions).norm(dim=-1) / directions.norm(dim=-1)
    row, col = divmod(int(distance.argmin()), size)
    return row, col


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.png")}


def test_cube_centres_land_where_the_loader_rays_point(tmp_path):
    source = write_two_cubes(tmp_path / "src")
    result = write_mesh_dataset(source, tmp_path / "out", "cubes", views=6, size=64, seed=1)
    assert result.skipped == [] and len(result.ids) == 1
    folder = tmp_path / "out" / "cubes" / result.ids[0]
    views = load_views(folder)  # the loader's own reading: poses from JSON, its focal
    assert views.camera_angle_x == CAMERA_ANGLE_X and views.images.shape == (6, 3, 64, 64)
    for index, pose in enumerate(views.poses):
        rgba = np.asarray(Image.open(folder / f"{index:03d}.png"))
        for centre, colour in ((CUBE_A, RED), (-CUBE_A, BLUE)):
            row, col = nearest_pixel(pose, 64, views.focal, centre)
            seen = rgba[row, col]
            channel = int(np.argmax(colour))
            assert seen[3] == 255 and seen[channel] >= 127, (index, centre, seen)
            assert seen[[c for c in range(3) if c != channel]].max() == 0
            mask = (rgba[..., 3] > 0) & (rgba[..., channel] > 100) & (rgba[..., 1] == 0)
            rows, cols = np.nonzero(mask)
            # the silhouette of a cube centred there is centred on that pixel
            assert abs(rows.mean() - row) <= 1.0 and abs(cols.mean() - col) <= 1.0


def test_a_vertex_projects_into_the_pixel_the_camera_model_predicts():
    """A small square facing the camera, centred on a vertex (a fan of 4 triangles around it):
    its coverage is centred in the pixel whose loader ray passes closest to that vertex."""
    vertex = np.array([0.37, -0.52, 0.21])
    size = 96
    focal = 0.5 * size / math.tan(0.5 * CAMERA_ANGLE_X)
    for azimuth, elevation in [(10.0, 5.0), (100.0, 30.0), (230.0, 55.0)]:
        pose = look_at_pose(azimuth, elevation, 4.0)
        right, up = pose[:3, 0].double().numpy(), pose[:3, 1].double().numpy()
        depth = float(np.dot(pose[:3, 3].double().numpy() - vertex, pose[:3, 2].double().numpy()))
        half = 1.5 * depth / focal  # 1.5 pixels
        ring = [
            vertex + half * (sx * right + sy * up)
            for sx, sy in [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        ]
        mesh = Mesh(
            vertices=np.stack([vertex, *ring]),
            faces=np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]]),
            uvs=np.zeros((0, 2)),
            face_uvs=np.full((4, 3), -1),
            face_materials=np.zeros(4, dtype=np.int64),
            materials=[Material("white", (1.0, 1.0, 1.0))],
        )
        alpha = render_mesh_views(mesh, pose[None], size)[0, ..., 3].astype(np.float64)
        rows, cols = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
        centre = (alpha * rows).sum() / alpha.sum(), (alpha * cols).sum() / alpha.sum()
        row, col = nearest_pixel(pose, size, focal, vertex)
        assert alpha[row, col] == 255
        sharp = render_mesh_views(mesh, pose[None], size, supersample=1)[0, ..., 3]
        covered = np.argwhere(sharp == 255)  # pixel centres within 1.5 px of the vertex
        assert len(covered) == 9 and (covered.mean(0) == [row, col]).all()
        assert abs(centre[0] - (row + 0.5)) <= 0.55 and abs(centre[1] - (col + 0.5)) <= 0.55


def test_textures_and_axes_are_not_mirrored(tmp_path):
    """A square in the plane x = 0 with a 2 x 2 texture, seen from +x (image right = +y, up =
    +z): each quarter shows its texel, so texture v, OBJ Y-up -> Z-up and the image are right."""
    folder = tmp_path / "src"
    folder.mkdir()
    texels = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    Image.fromarray(texels, "RGB").save(folder / "quarters.png")
    (folder / "square.mtl").write_text("newmtl tex\nKd 0.2 0.2 0.2\nmap_Kd quarters.png\n")
    corners = [(0, -1, -1), (0, 1, -1), (0, 1, 1), (0, -1, 1)]
    lines = ["mtllib square.mtl", *(file_xyz(c) for c in corners)]
    lines += ["vt 0 0", "vt 1 0", "vt 1 1", "vt 0 1", "usemtl tex", "f 1/1 2/2 3/3 4/4"]
    (folder / "square.obj").write_text("\n".join(lines) + "\n")
    mesh = normalise(
        place(parse_obj((folder / "square.obj").read_text(), FolderModelFiles(folder)))
    )
    rgba = render_mesh_views(mesh, look_at_pose(0.0, 0.0, 4.0)[None], 64)[0]
    quarter = {(40, 40): (255, 0, 0), (40, 88): (0, 255, 0), (88, 40): (0, 0, 255)}
    quarter[(88, 88)] = (255, 255, 255)
    for (row, col), colour in quarter.items():
        r, c = row * 64 // 128, col * 64 // 128
        assert tuple(rgba[r, c, :3]) == pytest.approx(colour, abs=4)  # faces the light: x ~1


def test_headlight_shading_and_coverage_alpha():
    """A face square to the central ray shows its Kd exactly; alpha takes 17 levels (4 x 4)."""
    lines = cube((0.0, 0.0, 0.0), 1.0, 1)
    mesh = normalise(place(parse_obj("\n".join(lines), FolderModelFiles(Path(".")))))
    mesh.materials[0].colour = (0.6, 0.4, 0.2)
    rgba = render_mesh_views(mesh, look_at_pose(30.0, 20.0, 4.0)[None], 64)[0]
    levels = set(np.unique(rgba[..., 3]).tolist())
    assert levels <= {round(255 * k / 16) for k in range(17)} and len(levels) > 5
    front = render_mesh_views(mesh, look_at_pose(0.0, 0.0, 4.0)[None], 64)[0]
    assert tuple(front[32, 32, :3]) == pytest.approx((153, 102, 51), abs=1)
    inside = rgba[rgba[..., 3] == 255, :3].astype(float)
    ratio = inside / np.array([0.6, 0.4, 0.2]) / 255  # the shade, the same in every channel
    assert ratio.min() >= 0.5 - 0.01 and ratio.max() <= 1.0 + 0.01
    assert np.allclose(ratio, ratio[:, :1], atol=0.02)


def test_normalisation_is_shapenets_and_z_is_up():
    tall = ["v 0 0 0", "v 2 0 0", "v 2 10 0", "v 0 10 4", "f 1 2 3", "f 1 3 4"]
    mesh = normalise(place(parse_obj("\n".join(tall), FolderModelFiles(Path(".")))))
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    assert np.allclose(lo + hi, 0) and np.allclose(hi, [0.2, 0.4, 1.0])  # OBJ's y is up


def test_sh3f_library_is_read_with_categories(tmp_path):
    library = tmp_path / "tiny.sh3f"
    cube_obj = "\n".join(["mtllib m.mtl", *cube((0, 0, 0), 0.5, 1, "wood")]) + "\n"
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as nested:
        nested.writestr("lamp/lamp.obj", "\n".join(cube((0, 0, 0), 0.5, 1)) + "\n")
    catalogue = "\n".join(
        [
            "# a comment",
            "id=Test#library",
            "name=Tiny library",
            "license=CC0",
            "id#1=Test#chair",
            "name#1=Dining chair",
            "category#1=Living room",
            "model#1=/tiny/chair/chair.obj",
            "width#1=40",
            "depth#1=50",
            "height#1=90",
            "modelRotation#1=0 0 1 0 1 0 -1 0 0",
            "id#2=Test#lamp",
            "name#2=Desk lamp",
            "category#2=Lights",
            "model#2=/tiny/lamp.zip",
            "id#3=Test#table",
            "name#3=Table",
            "category#3=Kitchen",
            "model#3=/tiny/table",
            "id#4 = Test#stool",
            "name#4:Tabouret \\u00e9l\\u00e9gant \\",
            "    haut",
            "tags#4=Chair",
            "category#4=Kitchen",
            "model#4=/tiny/table/table.obj",
        ]
    )
    with zipfile.ZipFile(library, "w") as archive:
        archive.writestr("PluginFurnitureCatalog.properties", catalogue.encode("latin-1"))
        archive.writestr("tiny/chair/chair.obj", cube_obj)
        archive.writestr("tiny/chair/m.mtl", "newmtl wood\nKd 0.5 0.3 0.1\n")
        archive.writestr("tiny/lamp.zip", inner.getvalue())
        archive.writestr("tiny/table/table.obj", "\n".join(cube((0, 0, 0), 0.5, 1)) + "\n")
    properties = parse_properties(catalogue)
    entries = catalogue_entries(properties)
    assert [(e.number, e.name, e.category) for e in entries] == [
        (1, "Dining chair", "Living room"),
        (2, "Desk lamp", "Lights"),
        (3, "Table", "Kitchen"),
        (4, "Tabouret élégant haut", "Kitchen"),
    ]
    assert entries[0].size == (40.0, 90.0, 50.0) and entries[3].id == "Test#stool"

    def labels(category):
        sources, skipped = find_sources(library, category)
        assert skipped == []
        return {s.label: s for s in sources}

    chairs = labels("chairs")
    assert sorted(chairs) == ["tiny.sh3f#1 Dining chair", "tiny.sh3f#4 Tabouret élégant haut"]
    assert list(labels("lamps")) == ["tiny.sh3f#2 Desk lamp"]
    assert list(labels("tables")) == ["tiny.sh3f#3 Table"]
    assert labels("cars") == {}
    chair = chairs["tiny.sh3f#1 Dining chair"].load()
    assert chair.materials[1].colour == (0.5, 0.3, 0.1)
    # rotated (x <-> z), stretched to width 40 (x), height 90 (up: z), depth 50 (y)
    assert np.allclose(chair.vertices.max(0) - chair.vertices.min(0), [40.0, 50.0, 90.0])
    assert chairs["tiny.sh3f#1 Dining chair"].info["license"] == "CC0"
    assert len(labels("lamps")["tiny.sh3f#2 Desk lamp"].load().faces) == 12
    unpacked = tmp_path / "unpacked" / "tiny.sh3f"  # a library unzipped into a folder
    with zipfile.ZipFile(library) as archive:
        archive.extractall(unpacked)
    sources, skipped = find_sources(tmp_path / "unpacked", "chairs")
    assert skipped == [] and sorted(s.label for s in sources) == sorted(chairs)
    assert np.array_equal(sources[0].load().vertices, chair.vertices)


def test_library_and_obj_models_face_plus_y_as_shapenet_models(tmp_path):
    """shapenet-real's benches face +y (Z up). A Sweet Home 3D model faces +z in its file (its
    front view looks from +z), a ShapeNet or Blender OBJ faces -z: both end facing +y."""
    seat = "v -1 0 -1\nv 1 0 -1\nv 1 0 1\nv -1 0 1\n"  # Y-up file coordinates
    sh3d_front = seat + "v 0 1 1\nf 1 2 3\nf 1 3 4\nf 3 4 5\n"  # a peak on the +z edge
    library = tmp_path / "front.sh3f"
    with zipfile.ZipFile(library, "w") as archive:
        archive.writestr(
            "PluginFurnitureCatalog.properties",
            "id#1=t#chair\nname#1=Chair\ncategory#1=Living room\nmodel#1=/c/chair.obj\n",
        )
        archive.writestr("c/chair.obj", sh3d_front)
    obj = tmp_path / "blender.obj"
    obj.write_text(seat + "v 0 1 -1\nf 1 2 3\nf 1 3 4\nf 1 2 5\n")  # the peak on -z

    def peak(mesh: Mesh) -> np.ndarray:
        return mesh.vertices[mesh.vertices[:, 2].argmax()]  # the highest vertex, Z up

    for path in (library, obj):
        (source,), _ = find_sources(path, "chairs")
        mesh = source.load()
        front = peak(mesh)[1]
        assert front == pytest.approx(mesh.vertices[:, 1].max()) and front > 0, path.name
        # --turn 90: counter-clockwise seen from above, the front goes from +y to -x
        assert peak(turn_about_up(mesh, 90.0))[:2] == pytest.approx([-1.0, 0.0], abs=1e-9)
        assert np.array_equal(turn_about_up(mesh, 360.0).vertices, mesh.vertices)
    out = tmp_path / "out"
    for turn in (0, 180):
        done = invoke("data", "mesh", obj, "--out", out / str(turn), "--turn", turn, "--size", 16)
        assert done.exit_code == 0, done.output
    assert pngs(out / "0") != pngs(out / "180")
    for value in ("nan", "inf", "400"):
        refused = invoke("data", "mesh", obj, "--out", tmp_path / "no", "--turn", value)
        assert refused.exit_code != 0 and "turn" in refused.output, value
        assert not (tmp_path / "no").exists()


def bad_inputs(folder: Path) -> None:
    """One good cube and every kind of bad mesh, side by side in `folder`."""
    folder.mkdir(parents=True)
    write_two_cubes(folder / "good")
    (folder / "not-a-zip.sh3f").write_text("this is not a zip file\n")
    with zipfile.ZipFile(folder / "missing.sh3f", "w") as archive:
        archive.writestr(
            "PluginFurnitureCatalog.properties",
            "id#1=x#chair\nname#1=Chair\ncategory#1=Living room\nmodel#1=/gone/chair.obj\n",
        )
    with zipfile.ZipFile(folder / "no-catalogue.sh3f", "w") as archive:
        archive.writestr("chair/chair.obj", "\n".join(cube((0, 0, 0), 1, 1)))
    (folder / "empty.obj").write_text("# nothing\nv 0 0 0\nv 1 0 0\n")
    nan = cube((0, 0, 0), 1, 1)
    nan[0] = "v nan 0 0"
    (folder / "nan.obj").write_text("\n".join(nan) + "\n")
    (folder / "bad-index.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n")


def test_bad_meshes_are_skipped_with_one_line_reasons(tmp_path, capsys):
    bad_inputs(tmp_path / "src")
    result = write_mesh_dataset(tmp_path / "src", tmp_path / "out", "chairs", views=2, size=32)
    reasons = {item.source: item.reason for item in result.skipped}
    assert set(reasons) == {
        "not-a-zip.sh3f",
        "missing.sh3f#1 Chair",
        "no-catalogue.sh3f",
        "empty.obj",
        "nan.obj",
        "bad-index.obj",
    }
    assert "not a zip" in reasons["not-a-zip.sh3f"]
    assert "missing OBJ" in reasons["missing.sh3f#1 Chair"]
    assert "PluginFurnitureCatalog.properties" in reasons["no-catalogue.sh3f"]
    assert "no faces" in reasons["empty.obj"]
    assert "NaN" in reasons["nan.obj"]
    assert "index 7 does not exist" in reasons["bad-index.obj"]
    assert all("\n" not in reason and reason for reason in reasons.values())
    assert len(result.ids) == 1  # the good cube only; nothing of the bad ones on disk
    assert [p.name for p in (tmp_path / "out" / "chairs").iterdir()] == result.ids
    assert capsys.readouterr() == ("", "")
    (tmp_path / "src" / "good" / "cubes.obj").unlink()
    nothing = write_mesh_dataset(tmp_path / "src", tmp_path / "none", "chairs", views=2, size=32)
    assert nothing.ids == [] and len(nothing.skipped) == 6 and not (tmp_path / "none").exists()


def test_same_seed_same_bytes_and_learnit_layout(tmp_path):
    source = write_two_cubes(tmp_path / "src")
    first = write_mesh_dataset(source, tmp_path / "a", "cubes", seed=3, views=3)
    again = write_mesh_dataset(source, tmp_path / "b", "cubes", seed=3, views=3)
    other = write_mesh_dataset(source, tmp_path / "c", "cubes", seed=4, views=3)
    assert first.ids == again.ids == other.ids
    assert pngs(tmp_path / "a") == pngs(tmp_path / "b")
    assert set(pngs(tmp_path / "a").values()).isdisjoint(pngs(tmp_path / "c").values())
    folder = tmp_path / "a" / "cubes" / first.ids[0]
    assert sorted(p.name for p in folder.iterdir()) == [
        "000.png",
        "001.png",
        "002.png",
        "transforms.json",
    ]
    transforms = json.loads((folder / "transforms.json").read_text())
    assert transforms["camera_angle_x"] == CAMERA_ANGLE_X
    for frame in transforms["frames"]:
        position = np.asarray(frame["transform_matrix"])[:3, 3]
        assert np.linalg.norm(position) == pytest.approx(4.0, abs=1e-5)
        assert -1e-3 <= math.degrees(math.asin(position[2] / 4.0)) <= 60.001
    image = Image.open(folder / "000.png")
    assert (image.mode, image.size) == ("RGBA", (128, 128))
    rgba = np.asarray(image)
    assert (rgba[rgba[..., 3] == 0, :3] == 255).all()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "cube_sources.json",
        "cube_splits.json",
        "cubes",
    ]
    if SHAPENET_REAL.is_dir():  # the same text layout as the real renders
        real = next(p for p in sorted((SHAPENET_REAL / "benchs").iterdir()) if p.is_dir())
        ours = (folder / "transforms.json").read_text().splitlines()
        assert (real / "transforms.json").read_text().splitlines()[:4] == ours[:4]


def test_split_shares():
    ids = [f"{i:02d}" for i in range(20)]
    assert {k: len(v) for k, v in split_ids(ids, (0.8, 0.1, 0.1)).items()} == {
        "train": 16,
        "val": 2,
        "test": 2,
    }
    assert split_ids(["a"], (0.8, 0.1, 0.1)) == {"train": ["a"], "val": [], "test": []}
    assert split_ids(["a", "b"], (0.5, 0.0, 0.5)) == {"train": ["b"], "val": [], "test": ["a"]}
    assert split_ids(list("abc"), (0.8, 0.1, 0.1)) == {"train": ["c"], "val": ["b"], "test": ["a"]}


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def test_cli_renders_skips_and_reports(tmp_path):
    bad_inputs(tmp_path / "src")
    for name in ("one", "two"):
        write_two_cubes(tmp_path / "src" / name, name)
    out = tmp_path / "data"
    common = ["data", "mesh", tmp_path / "src", "--category", "chairs", "--out", out]
    shares = ["--split", "0.34,0.33,0.33"]
    result = invoke(*common, "--views", 25, "--size", 16, *shares, "--json")  # train: 25 views
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["objects"] == 3 and len(summary["skipped"]) == 6
    assert summary["split_sizes"] == {"train": 1, "val": 1, "test": 1}
    for split in ("train", "val", "test"):
        images, poses, focal = ViewDataset(out, "chairs", split)[0]
        assert images.shape[-3:] == (3, 16, 16) and poses.shape[-2:] == (4, 4)
    text = invoke(*common, "--views", 2, "--size", 32, "--quiet")
    assert text.exit_code == 0, text.output
    assert "wrote 3 chairs" in text.stdout
    assert "skipped nan.obj: the mesh has NaN" in text.output
    bad = invoke(*common, "--split", "0.5,0.6,0.1")
    assert bad.exit_code == 1 and "error: --split" in bad.output
    missing = invoke("data", "mesh", tmp_path / "nowhere", "--out", out, "--quiet")
    assert missing.exit_code == 1 and "not found" in missing.output
    for obj in (tmp_path / "src").rglob("*.obj"):
        if obj.parent.name in ("good", "one", "two"):
            obj.unlink()
    none = invoke(*common, "--out", tmp_path / "none", "--quiet")
    assert none.exit_code == 1 and "error: no chairs mesh could be rendered" in none.output
    assert not (tmp_path / "none").exists()
