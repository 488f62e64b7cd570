#!/usr/bin/env bash
# Train the `compact` model end to end:  recipes/compact/run.sh DATA_ROOT OUT_DIR [MODEL_DEST]
#
#   DATA_ROOT   a data folder with faces/, photos/, styles/, utkface/ (see docs/compact-model.md)
#   OUT_DIR     everything this writes: inputs/ (links), data/ (prepared), runs/STEP/ (run folders)
#   MODEL_DEST  where the final model folder is copied [default: OUT_DIR/model]
#
# Steps: select inputs (hold-outs of holdout.txt removed, UTKFACE UTKFace images drawn with SEED)
# -> hypernst prepare (FFHQ alignment + face parsing, resumable) -> train aladin -> autoencoder
# -> reconstruct -> stylize -> stylize-colour -> stylize-analogy (each with --resume) -> export
# runs/stylize-analogy/final to MODEL_DEST
# (`hypernst weights export`: no discriminators, fp16) -> edit directions (age, smile, pose) fit
# on DIRECTIONS UTKFace photos with the exported encoder, added to MODEL_DEST -> every stage's
# steps and losses recorded in MODEL_DEST's metrics.json and card (hypernst_cli/train/history.py).
#
# Run it again to continue: prepared images are skipped, a finished step (runs/STEP/.complete)
# is skipped, an interrupted one resumes from its newest checkpoint. To train a step longer,
# raise its `steps`, delete runs/STEP/.complete and the .complete of every later step.
#
# Environment:
#   PYTHON=python       the interpreter that has hypernst_cli importable
#   HOLDOUT=holdout.txt the hold-out list [default: this folder's holdout.txt, written for
#                       ../shared/data; tests give their own for their own data folder]
#   UTKFACE=2000        UTKFace images to draw (0: none, -1: all 9,780); SEED=0 the draw's seed
#   DIRECTIONS=1500     UTKFace photos the edit directions are fit on (0: no directions)
#   SIZE=               aligned size for prepare [default: the config's resolution, 128]
#   BACKEND=dlib        face backend of prepare (dlib: landmarks + the geometric parser)
#   EXTRA=""            KEY=VALUE options added to every training step (e.g. device=cuda amp=bf16)
#   OMP_NUM_THREADS     CPU threads (set it to the number of cores on a CPU-only machine)
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,4p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
DATA_ROOT="$1"
OUT="$2"
DEST="${3:-$OUT/model}"
PY="${PYTHON:-python}"
EXTRA="${EXTRA:-}"
mkdir -p "$OUT/runs"

echo "== 1. inputs (hold-outs removed, ${UTKFACE:-2000} UTKFace images, seed ${SEED:-0})"
"$PY" -m hypernst_cli.train.select "$DATA_ROOT" "$OUT/inputs" --holdout "${HOLDOUT:-$HERE/holdout.txt}" \
    --utkface "${UTKFACE:-2000}" --seed "${SEED:-0}"

echo "== 2. prepare"
rc=0
"$PY" -m hypernst_cli -q prepare "$OUT/inputs/content" "$OUT/inputs/style" -o "$OUT/data" \
    --config compact ${SIZE:+--size "$SIZE"} --backend "${BACKEND:-dlib}" || rc=$?
if [ "$rc" -gt 1 ]; then  # 1: some images rejected (no face), listed in data/report.jsonl
    echo "prepare failed (exit $rc)" >&2
    exit "$rc"
fi

# shellcheck source=recipes/compact/steps.sh
. "$HERE/steps.sh"

step() {  # step NAME STAGE [INIT]: trains STAGE with NAME.toml into runs/NAME
    train_step "$HERE" "$OUT/data" "$OUT/runs" "$@"
}

step aladin aladin
step autoencoder autoencoder "$OUT/runs/aladin/final"
step reconstruct reconstruct "$OUT/runs/autoencoder/final"
step stylize stylize "$OUT/runs/reconstruct/final"
step stylize-colour stylize "$OUT/runs/stylize/final"
step stylize-analogy stylize "$OUT/runs/stylize-colour/final"

finish_model "$OUT/runs/stylize-analogy/final" "$DEST" "$DATA_ROOT/utkface" "$OUT" "$OUT/runs" \
    aladin autoencoder reconstruct stylize stylize-colour stylize-analogy
