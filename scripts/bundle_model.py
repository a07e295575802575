"""Bundle a trained checkpoint as a default model: a slim float16 copy in assets/models plus its
JSON model card, with every figure on the card printed by the command written beside it.

    python scripts/bundle_model.py --checkpoint runs/image-celeba89/best.safetensors \
        --name image-celeba89 --train-command "transinr train ..." \
        --data-description "celeba-89 train split (8,000 images)" \
        --eval "transinr eval --data ../shared/data/celeba-89 --json" \
        --refine-eval "transinr eval ... --refine-steps 100 --limit 200 --json" \
        --example "transinr encode assets/examples/astronaut.jpg -o {tmp}/a.inr --json" \
        --also-eval "benchs-1view=transinr eval --task nerf --data ../shared/data/... --json"

Each eval / example command gets `--model assets/models/NAME.safetensors` appended and is run
here; its JSON output goes on the card. `{tmp}` is a scratch folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.io.bundle import ModelCard, bundled_dir, export_model  # noqa: E402
from models.io.safetensors_io import atomic_write  # noqa: E402


def hardware() -> str:
    """This machine, in words: CPU model and core count (and the GPU when there is one)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text


def run_json(command: str, model: Path, shown_model: Path, scratch: str) -> dict:
    """Run a transinr command with --model appended; its last stdout line is its JSON. The card
    records the command with the model's final path, `shown_model`."""
    line = command.replace("{tmp}", scratch) + f" --model {shlex.quote(str(model))}"
    transinr = Path(sys.executable).with_name("transinr")
    argv = [os.path.expanduser(arg) for arg in shlex.split(line)]
    if argv[0] == "transinr":
        argv[0] = str(transinr)
    print(f"+ {line}", file=sys.stderr, flush=True)
    completed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if completed.returncode != 0 or not completed.stdout.strip():
        raise SystemExit(f"failed ({completed.returncode}): {line}\n{completed.stderr}")
    result = json.loads(completed.stdout.strip().splitlines()[-1].replace(f"{scratch}/", ""))
    return {"command": command.replace("{tmp}/", "") + f" --model {shown_model}", **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--train-command", required=True)
    parser.add_argument("--data-description", required=True)
    parser.add_argument("--hardware", default=None, help="default: this machine")
    parser.add_argument("--training-note", default="", help="e.g. how the run was resumed")
    parser.add_argument(
        "--prior-steps", type=int, default=0, help="steps of the runs it was fine-tuned from"
    )
    parser.add_argument("--prior-seconds", type=float, default=0.0, help="their training seconds")
    parser.add_argument("--eval", required=True, help="eval command without --model")
    parser.add_argument("--refine-eval", default=None, help="eval command with --refine-steps")
    parser.add_argument("--example", required=True, help="encode command of the example input")
    parser.add_argument(
        "--also-eval",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="more eval commands (other data sets, view counts); their JSON goes on the card "
        "under evaluation.more.NAME",
    )
    args = parser.parse_args()

    folder = bundled_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{args.name}.safetensors"
    relative = target.relative_to(ROOT)
    # Stage the weights and run every command on them; assets/ changes only if all succeed.
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / target.name
        exported = export_model(args.checkpoint, staged)
        evaluation = run_json(args.eval, staged, relative, scratch)
        refined = None
        if args.refine_eval:
            refined = run_json(args.refine_eval, staged, relative, scratch)
        more = {}
        for entry in args.also_eval:
            name, _, command = entry.partition("=")
            more[name] = run_json(command, staged, relative, scratch)
        example = run_json(args.example, staged, relative, scratch)
        atomic_write(target, staged.read_bytes())
    state = exported["train_state"]
    if refined is not None:
        evaluation["refine"] = refined
    if more:
        evaluation["more"] = more
    card = ModelCard(
        name=args.name,
        task=exported["task"],
        file=target.name,
        sha256=exported["sha256"],
        preset=exported["preset"],
        parameters=exported["parameters"],
        training={
            "data": args.data_description,
            "steps": state.get("step"),
            "wall_seconds": round(state.get("seconds", 0.0)),
            "best_val_psnr": state.get("best_val_psnr"),
            "hardware": args.hardware or hardware(),
            "command": args.train_command,
            **({"note": args.training_note} if args.training_note else {}),
            **(
                {
                    "total_steps": state.get("step") + args.prior_steps,
                    "total_wall_seconds": round(state.get("seconds", 0.0) + args.prior_seconds),
                }
                if args.prior_steps
                else {}
            ),
        },
        evaluation=evaluation,
        example=example,
        curve=[
            {"step": entry["step"], "val_psnr": round(entry["val_psnr"], 2)}
            for entry in state.get("history", [])
            if entry.get("val_psnr") is not None
        ],
    )
    atomic_write(folder / f"{args.name}.json", card.to_json().encode())
    print(card.to_json())


if __name__ == "__main__":
    main()
