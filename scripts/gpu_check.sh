#!/usr/bin/env bash
# Prove the CUDA paths on one GPU in under 8 minutes (see scripts/gpu_check.py).
#
#   bash scripts/gpu_check.sh DATA [--json gpu-check.json] [--minutes 7.5] [--run-dir DIR]
#
# DATA: a CelebA-layout folder (img_align_celeba/ + list_eval_partition.txt), e.g. celeba-89.
# Uses the torch already installed (a CUDA build), with the project on PYTHONPATH: no install,
# no network. Without a CUDA GPU it prints one line and exits 0. $PYTHON picks the interpreter.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" "$repo/scripts/gpu_check.py" "$@"
