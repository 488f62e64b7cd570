#!/usr/bin/env bash
# Continue a trained `compact` model with the spatial path and analogy supervision:
#   recipes/compact/spatial/run.sh DATA OUT_DIR [INIT] [MODEL_DEST]
#
#   DATA        a prepared data folder (`hypernst prepare`, see recipes/compact/run.sh steps 1-2;
#               the shipped model used one prepared at 256 px: SIZE=256)
#   OUT_DIR     run folders: OUT_DIR/aladin-families, autoencoder-spatial, stylize-analogy,
#               stylize-global, stylize-more, stylize-skip, stylize-texture, stylize-texture-more
#   INIT        the model to continue [default: the embedded compact model]
#   MODEL_DEST  where the final model folder goes [default: OUT_DIR/model]
#
# Steps (docs/compact-model.md, "The spatial model"):
#   1. aladin-families: ALADIN fine-tuned with cross-face positives of one style-family draw;
#   2. the spatial path added (train/extend.py: F at 32 px, zero feature head), then
#      autoencoder-spatial: the feature head, the encoder and the generator fine-tuned together;
#   3. stylize-analogy: stage 2 with 3 of 4 batch items analogy items (a quarter region-mixed),
#      the fourth the unpaired colour/structure guidance on the art portraits;
#   4. every hyper-network head given Eq. 2's global code A(s) (train/extend.py --global-code,
#      zero at first), then stylize-global: 1000 more stage-2 steps, half analogy items, and
#      stylize-more: 1000 more as a new run;
#   5. the hyper-network given the style-conditioned content skip (train/extend.py
#      --skip-width 16, zero at first), then stylize-skip: 2400 stage-2 steps that train it with
#      the late heads;
#   6. stylize-texture: 1000 stage-2 steps whose analogy loss judges fine detail by the patch
#      texture distance (strokes and dots of the truth's kind, wherever they fall) and layout and
#      colour by low-pass L1; 7. stylize-texture-more: 1600 more, three quarters analogy items
#      (the shipped model);
#   8. export (fp16, no discriminators), edit directions on DIRECTIONS UTKFace photos of
#      UTKFACE_DIR (DIRECTIONS=0: none), history.
# Re-run to continue: finished steps (OUT_DIR/STEP/.complete) are skipped, an interrupted one
# resumes from its newest checkpoint. EXTRA="device=cuda" etc. adds options to every step.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=recipes/compact/steps.sh
. "$HERE/../steps.sh"
continuation_args "$0" "$@"

step() {  # step NAME STAGE INIT: trains STAGE with NAME.toml into OUT/NAME
    train_step "$HERE" "$DATA" "$OUT" "$@"
}

step aladin-families aladin "$INIT"
if [ ! -d "$OUT/spatial-init" ]; then
    "$PY" -m hypernst_cli.train.extend "$OUT/aladin-families/final" "$OUT/spatial-init.partial" \
        --feature-resolution 32
    mv "$OUT/spatial-init.partial" "$OUT/spatial-init"
fi
step autoencoder-spatial autoencoder "$OUT/spatial-init"
step stylize-analogy stylize "$OUT/autoencoder-spatial/final"
if [ ! -d "$OUT/global-init" ]; then
    "$PY" -m hypernst_cli.train.extend "$OUT/stylize-analogy/final" "$OUT/global-init.partial" \
        --global-code
    mv "$OUT/global-init.partial" "$OUT/global-init"
fi
step stylize-global stylize "$OUT/global-init"
step stylize-more stylize "$OUT/stylize-global/final"
if [ ! -d "$OUT/skip-init" ]; then
    "$PY" -m hypernst_cli.train.extend "$OUT/stylize-more/final" "$OUT/skip-init.partial" \
        --skip-width 16
    mv "$OUT/skip-init.partial" "$OUT/skip-init"
fi
step stylize-skip stylize "$OUT/skip-init"
step stylize-texture stylize "$OUT/stylize-skip/final"
step stylize-texture-more stylize "$OUT/stylize-texture/final"

finish_model "$OUT/stylize-texture-more/final" "$DEST" "${UTKFACE_DIR:-}" "$OUT" "$OUT" \
    aladin-families autoencoder-spatial stylize-analogy stylize-global stylize-more stylize-skip \
    stylize-texture stylize-texture-more
