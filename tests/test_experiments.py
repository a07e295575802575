"""bench/experiments.py without training: the validation-curve plot read from run checkpoints,
table 2 taking the preset's own G from table 1, the results tables written from results, and
the command lines it records doing what its API calls do."""

from __future__ import annotations

import dataclasses
import importlib.util
import shlex
from pathlib import Path

import numpy as np
import pytest
from nerf_support import fixture_nerf_data  # noqa: F401  (a fixture)
from PIL import Image
from typer.testing import CliRunner

from models.core.metalearner import TransInr
from models.core.presets import preset_config
from models.errors import TransInrError
from models.io.checkpoint import save_checkpoint
from models.tasks import training
from models.tasks.evaluation import EvalResult
from transinr_cli.app import app

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "experiments.py"
spec = importlib.util.spec_from_file_location("experiments", SCRIPT)
experiments = importlib.util.module_from_spec(spec)
spec.loader.exec_module(experiments)


def write_run(runs: Path, name: str, history: list[dict], **overrides) -> Path:
    config = preset_config("tiny", **overrides)
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    for file in ("last.safetensors", "best.safetensors"):
        save_checkpoint(run_dir / file, TransInr(config), config, {"step": 1, "history": history})
    return run_dir


def test_plot_reads_every_run_and_draws_single_points(tmp_path):
    write_run(
        tmp_path / "runs",
        "a",
        [
            {"step": 10, "seconds": 5.0, "val_psnr": 12.0},
            {"step": 20, "seconds": 9.0, "val_psnr": 14.5},
        ],
    )
    write_run(tmp_path / "runs", "b", [{"step": 3, "seconds": 9.5, "val_psnr": 13.0}])
    (tmp_path / "runs" / "chairs-data").mkdir()  # a folder without checkpoints is skipped
    curves = experiments.plot(tmp_path)
    assert curves == {"a": [(10, 5.0, 12.0), (20, 9.0, 14.5)], "b": [(3, 9.5, 13.0)]}
    with Image.open(tmp_path / "psnr_vs_steps.png") as figure:
        left_panel = np.asarray(figure.convert("RGB"))[:, :480]  # the steps panel, no legend
    colours = {tuple(int(c) for c in pixel) for pixel in left_panel.reshape(-1, 3)}
    # both runs are drawn in the panel, the single-point run as a dot
    assert (0x1F, 0x77, 0xB4) in colours and (0xFF, 0x7F, 0x0E) in colours


def test_plot_without_runs_writes_an_empty_figure(tmp_path):
    assert experiments.plot(tmp_path) == {}
    assert (tmp_path / "psnr_vs_steps.png").is_file()


def test_table2_adds_the_preset_groups_from_table1(tmp_path, monkeypatch):
    run_dir = write_run(tmp_path / "runs", "t1-trans-inr", [], groups=8)
    row = {"run": str(run_dir), "steps": 5, "train_seconds": 1.0, "psnr": 15.0, "images": 4}

    def fake_train(run, name, minutes, method=None, groups=None):
        return {"run": name, "steps": 1, "psnr": float(groups), "images": 4}

    monkeypatch.setattr(experiments, "train_image", fake_train)
    runner = experiments.Runner(tmp_path, quick=True)
    rows = experiments.table2(runner, 0.1, {"trans-inr": row})
    rows_without = experiments.table2(runner, 0.1, None)
    # quick G list is 1, 4, 8: G=8 was trained, so table 1's run does not replace it
    assert list(rows) == ["G=1", "G=4", "G=8"] and rows["G=8"]["psnr"] == 8.0
    assert list(rows_without) == ["G=1", "G=4", "G=8"]
    write_run(tmp_path / "runs", "t1-g2", [], groups=2)
    row["run"] = str(tmp_path / "runs" / "t1-g2")
    rows = experiments.table2(runner, 0.1, {"trans-inr": row})
    assert list(rows) == ["G=1", "G=2", "G=4", "G=8"] and rows["G=2"] is row


def test_markdown_writes_every_section(tmp_path):
    image_row = {"steps": 100, "psnr": 17.25, "images": 200}
    results = {
        "table1": {"trans-inr": image_row, "learned-init": {**image_row, "psnr": 15.5}},
        "long": {"trans-inr": {**image_row, "psnr": 19.0}},
        "table2": {"G=1": {**image_row, "psnr": 16.0}},
        "views": {
            "views-trans-inr-1": {
                "method": "trans-inr",
                "support_views": 1,
                "steps": 50,
                "psnr": 15.1,
                "psnr_refined": 16.9,
                "objects": 20,
            }
        },
        "speed": {
            "encode": {"seconds": 0.02, "psnr": 18.0},
            "learned-init": {"seconds": 0.08, "psnr": 15.0},
            "fit": {"seconds": 1.5, "psnr": 18.1, "steps": 36.0, "matched": 10},
            "encode-bundled": {"seconds": 0.02, "psnr": 24.0},
            "fit-bundled": {"seconds": 4.0, "psnr": 24.1, "steps": 90.0, "matched": 9},
            "images": 10,
            "fit_over_encode": 75.0,
        },
        "plot": {"t1-trans-inr": [(200, 150.0, 13.18)]},
    }
    budgets = {"image_minutes": 8.0, "long_minutes": 20.0}
    commands = {"table1": [{"command": "transinr train --x", "seconds": 1.0}]}
    text = experiments.markdown(results, budgets, commands)
    for expected in (
        "| trans-inr | 100 | 17.25 | 200 |",
        "| learned-init | 100 | 15.50 | 200 |",
        "longer budget (20.0 minutes each)",
        "| trans-inr | 100 | 19.00 | 200 |",
        "| 1 | 100 | 16.00 |",
        "| trans-inr | 1 | 50 | 15.10 | 16.90 | 20 |",
        "| encode | 0.0200 | 18.00 |",
        "`fit`: fitting from scratch needed 36 Adam steps on average to match `encode` "
        "(matched on 10 of 10): 75 times the encode time.",
        "| encode-bundled | 0.0200 | 24.00 |",
        "`fit-bundled`: fitting from scratch needed 90 Adam steps on average to match "
        "`encode-bundled` (matched on 9 of 10): 200 times the encode time.",
        "| t1-trans-inr | 200: 13.18 @ 150 s |",
        "- table1: `transinr train --x` (1.0 s)",
    ):
        assert expected in text, expected


def test_runner_records_the_command_line_and_stops_on_errors(tmp_path):
    runner = experiments.Runner(tmp_path, quick=True)
    data = experiments.ROOT.parent / "shared" / "data" / "x"
    assert runner(["eval", "--data", data, "--limit", 4], lambda: 7) == 7
    assert runner.commands == [{"command": "transinr eval --data ../shared/data/x --limit 4",
                                "seconds": 0.0}]  # fmt: skip

    def refused():
        raise TransInrError("no such thing; try another")

    with pytest.raises(SystemExit, match="failed: transinr attention a.jpg\nno such thing"):
        runner(["attention", experiments.ROOT / "a.jpg"], refused)


def test_recorded_train_commands_train_as_the_api_calls(tmp_path, monkeypatch, nerf_data):
    """Each cell's `transinr train` line, run, hands the training loop the same model, recipe and
    data as the API call the cell made (the loop itself faked: nothing trains)."""
    seen = []

    def fake_loop(run_dir, model_config, train_config, train_set, val_set, device, *args, **kw):
        recipe = dataclasses.asdict(train_config)
        recipe["data"] = str((experiments.ROOT / recipe["data"]).resolve())
        seen.append((model_config, recipe, len(train_set), len(val_set), device))
        return training.TrainResult(1, 10.0, 10.0, 0.5)

    monkeypatch.setattr(training, "train", fake_loop)
    monkeypatch.setattr(experiments.api, "load_model", lambda path: None)
    scores = EvalResult(2, 12.0, psnr_refined=13.0, objects=2)
    monkeypatch.setattr(experiments.api, "evaluate", lambda model, data, **options: scores)
    runner = experiments.Runner(tmp_path, quick=True)
    experiments.train_image(runner, "t1", 0.05, method="learned-init")
    experiments.train_image(runner, "t2", 0.05, groups=4)
    row = experiments.view_row(runner, nerf_data, "trans-inr", 2, 0.05)
    assert row["objects"] == 2 and row["psnr_refined"] == 13.0 and row["steps"] == 1
    monkeypatch.chdir(experiments.ROOT)  # the lines name project paths relative to it
    commands = [c["command"] for c in runner.commands if c["command"].startswith("transinr train")]
    assert len(commands) == 3
    for command in commands:
        result = CliRunner().invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, result.output
    assert len(seen) == 6 and seen[3:] == seen[:3]
    assert seen[0][0].method == "learned-init" and seen[1][0].groups == 4
    assert seen[2][1]["support_views"] == 2 and seen[2][1]["budget_minutes"] == 0.05
