"""The bundled default models (assets/models): they load, match their cards (preset, parameter
count, sha256, size), reproduce their card's example PSNR within 0.5 dB, and are what `encode`
uses without --model. Also `transinr models` and `transinr models export`."""

from __future__ import annotations

import json
import shlex

import pytest
import torch
from support import REPO_ROOT
from test_cli import assert_fails, assert_ok, invoke, json_of, stderr_of

from models.io.bundle import (
    ATTENTION_MODEL,
    DEFAULT_MODELS,
    MAX_BUNDLED_BYTES,
    ModelCard,
    bundled_cards,
    bundled_dir,
    file_sha256,
)
from models.io.checkpoint import load_checkpoint

CARDS = {card.name: card for card in bundled_cards()}


def test_every_default_is_bundled():
    assert bundled_dir() == REPO_ROOT / "assets" / "models"
    for task, name in DEFAULT_MODELS.items():
        assert name in CARDS, f"no card for the default {task} model {name}"
        assert CARDS[name].task == task


def test_the_attention_model_is_a_bundled_trans_inr_image_model():
    assert ATTENTION_MODEL in CARDS and CARDS[ATTENTION_MODEL].task == "image"
    assert load_checkpoint(CARDS[ATTENTION_MODEL].path).config.method == "trans-inr"


@pytest.mark.parametrize("name", sorted(CARDS))
def test_checkpoint_matches_its_card(name):
    card = CARDS[name]
    assert card.path.is_file()
    assert card.path.stat().st_size <= MAX_BUNDLED_BYTES
    assert file_sha256(card.path) == card.sha256
    checkpoint = load_checkpoint(card.path)
    assert checkpoint.config.preset == card.preset
    assert checkpoint.config.task == card.task
    assert checkpoint.optimizer_state is None  # slim: weights only
    assert {t.dtype for t in checkpoint.model_state.values()} == {torch.float16}
    model = checkpoint.build_model()
    assert sum(p.numel() for p in model.parameters()) == card.parameters
    # The card's figures come from the commands written on it.
    assert card.training["steps"] == checkpoint.train_state["step"]
    assert card.training["command"].startswith("transinr train ")
    assert card.evaluation["command"].startswith("transinr eval ")
    assert card.evaluation["psnr"] > 0
    refined = card.evaluation.get("psnr_refined")
    if refined is None:
        refined = card.evaluation["refine"]["psnr_refined"]
        plain = card.evaluation["refine"]["psnr"]
    else:
        plain = card.evaluation["psnr"]
    assert refined >= plain + 1.0, "the card's refinement gain is under the promised 1 dB"


@pytest.mark.parametrize("name", sorted(CARDS))
def test_example_encodes_as_the_card_says(name, tmp_path):
    """Run the card's example command (encode) and compare with the PSNR it recorded."""
    card = CARDS[name]
    argv = shlex.split(card.example["command"])
    assert argv[:2] == ["transinr", "encode"]
    argv[argv.index("-o") + 1] = str(tmp_path / "example.inr")
    argv[argv.index("--model") + 1] = str(REPO_ROOT / argv[argv.index("--model") + 1])
    argv[2] = str(REPO_ROOT / argv[2])
    output = json_of(invoke(*argv[1:]))
    psnr = output["results"][0]["psnr"]
    assert psnr >= card.example["results"][0]["psnr"] - 0.5
    assert output["model"].startswith(card.preset)


def test_encode_without_model_uses_the_bundled_default(tmp_path):
    image = REPO_ROOT / "assets" / "examples" / "astronaut.jpg"
    result = assert_ok(invoke("encode", image, "-o", tmp_path / "a.inr"))
    assert "using the bundled image model image-celeba89" in stderr_of(result)
    views = REPO_ROOT / "assets" / "examples" / "chair"
    result = assert_ok(invoke("encode", views, "-o", tmp_path / "chair.inr"))
    assert "using the bundled nerf model nerf-chairs" in stderr_of(result)
    assert (tmp_path / "a.inr").is_file() and (tmp_path / "chair.inr").is_file()


def test_encode_without_bundled_models_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSINR_MODELS_DIR", str(tmp_path / "none"))
    image = REPO_ROOT / "assets" / "examples" / "astronaut.jpg"
    assert_fails(invoke("encode", image, "-o", tmp_path / "a.inr"), "no bundled image model")
    assert not (tmp_path / "a.inr").exists()


def test_models_lists_bundled_and_local(tmp_path, tiny_run):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "mine").symlink_to(tiny_run, target_is_directory=True)
    (runs / "broken").mkdir()
    (runs / "broken" / "last.safetensors").write_bytes(b"not a checkpoint")
    listing = json_of(invoke("models", "--runs", runs, "--json"))
    assert {entry["name"] for entry in listing["bundled"]} >= set(DEFAULT_MODELS.values())
    local = {entry["file"]: entry for entry in listing["local"]}
    mine = local[str(runs / "mine" / "best.safetensors")]
    assert mine["preset"] == "tiny" and mine["parameters"] > 0
    assert "error" in local[str(runs / "broken" / "last.safetensors")]
    text = assert_ok(invoke("models", "--runs", runs)).stdout
    assert text.count("(default)") == 2  # the table may wrap names in a narrow terminal
    assert "image-celeba89" in text and "nerf-chairs" in text
    assert "transinr train" in text and "tiny" in text


def test_models_export_slims_a_checkpoint(tmp_path, tiny_run):
    target = tmp_path / "slim.safetensors"
    result = json_of(invoke("models", "export", tiny_run, "-o", target, "--json"))
    assert result["sha256"] == file_sha256(target)
    slim, full = load_checkpoint(target), load_checkpoint(tiny_run)
    assert slim.optimizer_state is None
    assert target.stat().st_size < (tiny_run / "best.safetensors").stat().st_size / 2
    for key, value in full.model_state.items():
        torch.testing.assert_close(slim.model_state[key].float(), value, atol=1e-3, rtol=1e-3)
    assert_fails(invoke("models", "export", tiny_run, "-o", target), "exists")
    assert_fails(invoke("models", "export", tiny_run, "-o", tmp_path / "x", "--dtype", "int8"))


def test_card_round_trips(tmp_path):
    card = next(iter(CARDS.values()))
    path = tmp_path / "card.json"
    path.write_text(card.to_json())
    assert ModelCard.read(path) == card
    path.write_text(json.dumps({"name": "x"}))
    with pytest.raises(Exception, match="cannot read model card"):
        ModelCard.read(path)


def test_attention_without_model_uses_the_bundled_trans_inr_model(tmp_path):
    image = REPO_ROOT / "assets" / "examples" / "astronaut.jpg"
    result = assert_ok(invoke("attention", image, "-o", tmp_path / "a.png", "--cell", 32))
    assert f"using the bundled image model {ATTENTION_MODEL}" in stderr_of(result)
    assert (tmp_path / "a.png").stat().st_size > 0
