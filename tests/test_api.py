"""The Python API (models/api.py): the README's example, encode -> render -> refine -> save on a
tiny model, NeRF views, training, evaluation, export and attention maps; and the import
boundaries the layout promises."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from nerf_support import fixture_chair, fixture_nerf_data, fixture_nerf_run  # noqa: F401
from support import REPO_ROOT

from models import api
from models.core.presets import preset_config
from models.errors import TransInrError
from models.tasks.training import recipe

README = REPO_ROOT / "README.md"


def test_the_readme_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    block = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S)
    assert block, "README.md has no <!-- api-example --> python block"
    (tmp_path / "assets").symlink_to(REPO_ROOT / "assets")
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {"__name__": "readme_example"})
    assert (tmp_path / "astronaut.inr").is_file()


@pytest.fixture(scope="module")
def model(tiny_run) -> api.Model:
    return api.load_model(tiny_run, device="cpu")


def test_encode_render_refine_save(tmp_path, model, image_folder):
    image = image_folder / "img00.png"
    inr = api.encode(model, image)
    assert inr.task == "image" and inr.header.source_model == model.model_id
    pixels = inr.render(48, 24)
    assert pixels.shape == (24, 48, 3) and pixels.dtype == np.uint8 and pixels.std() > 0
    assert inr.render(size=72).shape[:2] == (72, 72)  # a 36x36 crop: square
    assert inr.render(72, 72, bit_depth=16).dtype == np.uint16
    both = api.encode(model, [image, image_folder / "img01.png"])
    assert isinstance(both, list) and len(both) == 2
    assert torch.equal(both[0].file.weights[0], inr.file.weights[0])
    tuned = api.refine(inr, image, steps=5, lr=1e-3)
    assert tuned.header.refine_steps == 5
    assert tuned.header.refined_psnr >= tuned.header.psnr_before_refine
    assert tuned.header.psnr_before_refine == pytest.approx(inr.header.encode_psnr, abs=1e-3)
    tuned.save(tmp_path / "face.inr")
    loaded = api.load_inr(tmp_path / "face.inr")
    assert loaded.header == tuned.header
    assert np.array_equal(loaded.render(30, 30), tuned.render(30, 30))


def test_api_errors_are_one_line(model, image_folder, tmp_path):
    inr = api.encode(model, image_folder / "img00.png")
    with pytest.raises(TransInrError, match="not both"):
        inr.render(10, size=20)
    with pytest.raises(TransInrError, match="out of range"):
        inr.render(0, 10)
    with pytest.raises(TransInrError, match="render\\(width, height\\)"):
        inr.render_view()
    with pytest.raises(TransInrError, match="not found"):
        api.encode(model, tmp_path / "gone.png")
    with pytest.raises(TransInrError, match="--lr"):
        api.refine(inr, image_folder / "img00.png", steps=1, lr=-1.0)
    with pytest.raises(TransInrError, match="device"):
        api.load_model(image_folder, device="tpu")


def test_a_nerf_inr_renders_views(tmp_path):
    from models.core.inr import init_weights
    from models.io.inr_file import InrFile
    from models.io.inr_header import NerfHeader

    config = preset_config("tiny", "nerf").inr
    torch.manual_seed(0)
    header = NerfHeader(near=2.0, far=6.0, focal=40.0, samples=8, view_size=32)
    inr = api.Inr(InrFile([w[0] for w in init_weights(config)], config, "nerf", header))
    view = inr.render_view(azimuth=10.0, size=16)
    assert view.shape == (16, 16, 3) and 0 <= view.min() and view.max() <= 1
    from models.nerf.rays import look_at_pose

    same = inr.render_view(look_at_pose(10.0, 30.0, 4.0), size=16)
    assert torch.allclose(view, same)
    with pytest.raises(TransInrError, match="render_view"):
        inr.render(8, 8)


def test_train_from_python(tmp_path, image_folder):
    config = preset_config("tiny")
    train_config = recipe(
        "tiny", steps=2, batch_size=4, workers=0, val_images=4, val_every=2,
        dataset="folder", data=str(image_folder),
    )  # fmt: skip
    result = api.train(tmp_path / "run", config, train_config, device="cpu")
    assert result.steps == 2 and (tmp_path / "run" / "last.safetensors").is_file()
    assert api.load_model(tmp_path / "run", device="cpu").task == "image"


def nerf_recipe(data="", **overrides):
    """The tiny NeRF recipe for two quick steps on the CPU."""
    values = {"steps": 2, "workers": 0, "val_every": 2, "val_images": 1, "data": str(data)}
    return recipe("tiny", "nerf", **{**values, **overrides})


def test_train_nerf_from_python(tmp_path, nerf_data):
    config = preset_config("tiny", "nerf")
    train_config = nerf_recipe(nerf_data, category="chairs", precision="auto")
    result = api.train(tmp_path / "run", config, train_config, device="cpu")
    assert result.steps == 2 and (tmp_path / "run" / "best.safetensors").is_file()
    model = api.load_model(tmp_path / "run", device="cpu")
    saved = model.checkpoint.train_state["train_config"]
    assert model.task == "nerf" and saved["data"] == str(nerf_data)
    assert saved["precision"] == "fp32" and train_config.precision == "auto"  # the caller's kept
    with pytest.raises(TransInrError, match="already holds a run"):
        api.train(tmp_path / "run", config, train_config, device="cpu")
    again = api.train(tmp_path / "run", config, train_config, device="cpu", overwrite=True)
    assert again.steps == 2
    with pytest.raises(TransInrError, match="--support-views 9"):
        api.train(tmp_path / "r2", config, nerf_recipe(nerf_data, support_views=9), device="cpu")
    assert not (tmp_path / "r2").exists()


def test_train_nerf_without_data_uses_the_synthetic_set(tmp_path, monkeypatch, nerf_data):
    """An empty `data` trains on train_setup.synthetic_data's set, as `transinr train` does."""
    from models.tasks import train_setup

    asked = []

    def synthetic(category: str):
        asked.append(category)
        return nerf_data

    monkeypatch.setattr(train_setup, "synthetic_data", synthetic)
    config = preset_config("tiny", "nerf")
    api.train(tmp_path / "run", config, nerf_recipe(steps=1), device="cpu")
    saved = api.load_model(tmp_path / "run", device="cpu").checkpoint.train_state["train_config"]
    assert asked == ["chairs"] and saved["data"] == str(nerf_data)
    assert saved["category"] == "chairs"


def test_synthetic_data_is_generated_once(tmp_path, monkeypatch):
    from models.tasks import train_setup

    monkeypatch.setenv("TRANSINR_CACHE", str(tmp_path / "cache"))
    seen = []
    root = train_setup.synthetic_data("chairs", 2, on_object=seen.append)
    assert root == tmp_path / "cache" / "synthetic" / "chairs-2-seed0" and len(seen) == 2
    assert train_setup.synthetic_data("chairs", 2, on_object=seen.append) == root
    assert len(seen) == 2  # reused, not generated again


def test_evaluate_images(model, image_folder):
    from models.data.image_data import ImageDataset
    from models.tasks.evaluation import evaluate_images

    reports = []
    result = api.evaluate(
        model, image_folder, dataset="folder", limit=4, refine_steps=2, baseline=True,
        workers=0, on_progress=lambda done, total: reports.append((done, total)),
    )  # fmt: skip
    images = ImageDataset("folder", image_folder, "test", model.checkpoint.config.image_size, 4)
    direct = evaluate_images(model.network, images, model.device, workers=0)
    assert result.images == 4 and result.psnr == pytest.approx(direct.psnr)
    assert result.refine_steps == 2 and result.psnr_refined is not None
    assert 0 < result.baseline_psnr < 100 and reports[-1] == (4, 4)
    upscaled = api.evaluate(model, image_folder, dataset="folder", limit=2, input_size=16,
                            workers=0)  # fmt: skip
    assert upscaled.images == 2 and upscaled.baseline_psnr is None
    for options, message in (
        ({"input_size": 999}, "--input-size 999"),
        ({"input_size": 16, "refine_steps": 1}, "drop --refine-steps"),
        ({"follow_links": True}, "--follow-links"),
        ({"refine_lr": float("nan")}, "--refine-lr"),
    ):
        with pytest.raises(TransInrError, match=message):
            api.evaluate(model, image_folder, dataset="folder", **options)


def test_evaluate_views(nerf_run, nerf_data):
    from models.data.view_data import ViewDataset
    from models.tasks.evaluation import evaluate_views

    model = api.load_model(nerf_run, device="cpu")
    result = api.evaluate(model, nerf_data, category="chairs", pairs=2, refine_steps=2,
                          refine_lr=1e-3, baseline=True)  # fmt: skip
    objects = ViewDataset(nerf_data, "chairs", "test", min_views=2)
    direct = evaluate_views(model.network, objects, model.device, 1, 2)
    assert result.objects == len(objects) and result.images == 2 * len(objects)
    assert result.psnr == pytest.approx(direct.psnr)
    assert result.psnr_refined is not None and 0 < result.baseline_psnr < 100
    with pytest.raises(TransInrError, match="--support-views 9"):
        api.evaluate(model, nerf_data, category="chairs", support_views=9)


def test_encode_then_refine_as_the_command_line(model, image_folder, nerf_run, chair):
    image = image_folder / "img00.png"
    inr = api.encode(model, image, refine_steps=3)
    header = inr.header
    assert header.refine_steps == 3 and header.refined_psnr >= header.psnr_before_refine
    assert header.psnr_before_refine == pytest.approx(api.encode(model, image).header.encode_psnr)
    with pytest.raises(TransInrError, match="refine_steps is for images"):
        api.encode(api.load_model(nerf_run, device="cpu"), chair, refine_steps=3)


def test_export_viewer_and_mesh(tmp_path, model, image_folder, nerf_run, chair):
    face = api.encode(model, image_folder / "img00.png")
    summary = api.export(face, tmp_path / "out" / "face.html", name="face.inr", device="cpu")
    page = (tmp_path / "out" / "face.html").read_bytes()
    assert summary == {"format": "html", "bytes": len(page)} and b"face.inr" in page
    chair_inr = api.encode(api.load_model(nerf_run, device="cpu"), chair)
    mesh = api.export(chair_inr, tmp_path / "chair.ply", resolution=16, threshold=1e-6)
    assert mesh["format"] == "ply" and mesh["bytes"] == (tmp_path / "chair.ply").stat().st_size
    assert mesh["vertices"] > 0 and mesh["faces"] > 0
    with pytest.raises(TransInrError, match="name the output chair.ply"):
        api.export(chair_inr, tmp_path / "chair.data", "ply", resolution=16)
    with pytest.raises(TransInrError, match="--format"):
        api.export(face, tmp_path / "face.data")
    assert not (tmp_path / "chair.data").exists()


def test_attention_map(model, image_folder, nerf_run):
    figure, chosen = api.attention_map(model, image_folder / "img00.png", tokens=2, cell=20)
    layers = len(model.network.hypernetwork.group_counts)
    assert figure.shape == (layers * 20, 3 * 20, 3) and figure.dtype == np.uint8
    assert len(chosen) == layers and all(len(ids) <= 2 for ids in chosen)
    with pytest.raises(TransInrError, match="figure width"):
        api.attention_map(model, image_folder / "img00.png", tokens=1000, cell=100)
    with pytest.raises(TransInrError, match="image model"):
        api.attention_map(api.load_model(nerf_run, device="cpu"), image_folder / "img00.png")


def test_render_imports_no_training_code(tmp_path, image_folder, tiny_run):
    """`transinr render` loads only the INR side: no meta-learner, training or distributed code."""
    inr_path = tmp_path / "face.inr"
    api.encode(api.load_model(tiny_run, device="cpu"), image_folder / "img00.png").save(inr_path)
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from transinr_cli.app import app\n"
        f"result = CliRunner().invoke(app, ['render', {str(inr_path)!r}, '--size', '16', "
        f"'-o', {str(tmp_path / 'x.png')!r}, '-q'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('models'))))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(completed.stdout.strip().splitlines()[-1]))
    assert "models.core.rendering" in loaded
    assert not loaded & {
        "models.tasks.training",
        "models.tasks.distributed",
        "models.core.metalearner",
    }


def test_models_never_import_the_cli_rich_or_typer():
    for path in sorted((REPO_ROOT / "models").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"transinr_cli", "rich", "typer"}, f"{path.name} imports {name}"


def test_sub_packages_import_nothing_eagerly():
    """models/<package>/__init__.py holds a docstring only: importing models.tasks.export must
    not pull in training, nor `transinr render` the meta-learner."""
    packages = sorted((REPO_ROOT / "models").glob("*/__init__.py"))
    assert {p.parent.name for p in packages} >= {"core", "nerf", "io", "data", "tasks"}
    for path in packages:
        body = ast.parse(path.read_text(), str(path)).body
        assert all(isinstance(node, ast.Expr) for node in body), path.relative_to(REPO_ROOT)


MAX_FUNCTION_LINES = 80


def test_no_function_is_longer_than_80_lines():
    """Every function and method of models/ and transinr_cli/, from `def` to its last line
    (signature and docstring included: typer commands declare their options as aliases)."""
    long = []
    for folder in ("models", "transinr_cli"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
                    long.append(f"{where} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: " + ", ".join(long)
