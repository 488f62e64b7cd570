#!/usr/bin/env bash
# Grow a trained 128 px `compact` model (the spatial path and the content skip, e.g. the
# embedded one) to 256 px output:
#   recipes/compact/grow256/run.sh DATA OUT_DIR [INIT] [MODEL_DEST]
#
#   DATA        a prepared data folder at 256 px (`hypernst prepare`, SIZE=256)
#   OUT_DIR     run folders: OUT_DIR/grow-init, autoencoder-grow, stylize-grow
#   INIT        the 128 px model to grow [default: the embedded compact model]
#   MODEL_DEST  where the final model folder goes [default: OUT_DIR/model]
#
# Steps (docs/compact-model.md, "The 256 px model"):
#   1. train/extend.py --resolution 256: a 256 px block for the generator (toRGB at zero: it
#      renders the 128 px image upsampled), new W+ heads for the encoder (copies of its last),
#      heads for the new layers and the content skip moved to the 256 px block (at zero);
#   2. autoencoder-grow: only the new 256 px layers, to reconstruct the 256 px faces;
#   3. stylize-grow: stage 2 with the shipped model's losses, so the skip learns to carry the
#      256 px detail of the photo and of the analogy targets;
#   4. stylize-grow-l1: stage 2 again, every item an analogy item (a quarter region-mixed),
#      judged by L1 + Laplacian pyramid alone (docs/compact-model.md, "Stage 2 led by L1");
#   5. the hyper-network averaged between steps 3 and 4 (train/average.py, AVERAGE=0.5 the
#      weight on step 4's; 1: step 4's alone): the strokes of one, the tones of the other;
#   6. export (fp16), edit directions on DIRECTIONS UTKFace photos of UTKFACE_DIR (DIRECTIONS=0:
#      none; the directions follow W+, which has two more latents at 256 px), history.
# RESOLUTION (default 256) is the output size: twice INIT's (the recipe trains one new block).
# Re-run to continue: finished steps (OUT_DIR/STEP/.complete) are skipped, an interrupted one
# resumes from its newest checkpoint. EXTRA="device=cuda" etc. adds options to every step.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=recipes/compact/steps.sh
. "$HERE/../steps.sh"
continuation_args "$0" "$@"

if [ ! -d "$OUT/grow-init" ]; then
    "$PY" -m hypernst_cli.train.extend "$INIT" "$OUT/grow-init.partial" \
        --resolution "${RESOLUTION:-256}"
    mv "$OUT/grow-init.partial" "$OUT/grow-init"
fi
train_step "$HERE" "$DATA" "$OUT" autoencoder-grow autoencoder "$OUT/grow-init"
train_step "$HERE" "$DATA" "$OUT" stylize-grow stylize "$OUT/autoencoder-grow/final"
train_step "$HERE" "$DATA" "$OUT" stylize-grow-l1 stylize "$OUT/stylize-grow/final"
if [ ! -d "$OUT/averaged" ]; then
    rm -rf "$OUT/averaged.partial"
    "$PY" -m hypernst_cli.train.average "$OUT/stylize-grow/final" "$OUT/stylize-grow-l1/final" \
        "$OUT/averaged.partial" --weight "${AVERAGE:-0.5}"
    mv "$OUT/averaged.partial" "$OUT/averaged"
fi

finish_model "$OUT/averaged" "$DEST" "${UTKFACE_DIR:-}" "$OUT" "$OUT" \
    autoencoder-grow stylize-grow stylize-grow-l1
