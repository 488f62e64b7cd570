#!/usr/bin/env bash
# The paper's two stages on the official weights (a GPU):  recipes/paper/run.sh DATA OUT_DIR
#
#   DATA     a folder prepared at 256 px for the paper config:
#            hypernst prepare FFHQ_PHOTOS/ AAHQ_PORTRAITS/ -o DATA --config paper
#   OUT_DIR  init/ (the assembled official networks), runs/STEP/ (run folders), model/ (the result)
#
# Steps: assemble init from PARTS (the official StyleGAN2 FFHQ 256 px and ALADIN-ViT:
# `hypernst download stylegan2-ffhq-256` first; ALADIN-ViT has no direct link, so no name finds
# it: download aladinVIT_bamfg_64.47.pt from https://github.com/DanRuta/ALADIN/releases, run
# `hypernst convert aladin aladinVIT_bamfg_64.47.pt -o ALADIN_DIR` and set
# PARTS="stylegan2-ffhq-256 ALADIN_DIR") on the `paper` config ->
# encoder (e4e for that generator) -> reconstruct (stage 1) -> stylize (stage 2, lambda2 = 2, heads
# from layer 13, 3 patches of 32 px per region, batch 1) -> export OUT_DIR/model (fp16, no
# discriminators). Each step's options are this folder's STEP.toml (docs/training.md maps each
# element of the paper to its code). Re-run to continue: a finished step is skipped, an
# interrupted one resumes from its newest checkpoint.
#
# Environment:
#   PYTHON=python   the interpreter that has hypernst_cli importable
#   PARTS="stylegan2-ffhq-256 ALADIN_DIR"   required (unless OUT_DIR/init exists): model folders
#                   or registry names, first wins per network (ALADIN_DIR: see Steps above)
#   CONFIG=paper    the model config the parts are assembled on
#   EXTRA="device=cuda"   KEY=VALUE options added to every step (e.g. amp=bf16)
#   DRY_RUN=1       every step 2 steps, no checkpoints or samples (what the tests run on `tiny`)
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,2p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
DATA="$1"
OUT="$2"
PY="${PYTHON:-python}"
PARTS="${PARTS:-}"
if [ -z "$PARTS" ] && [ ! -d "$OUT/init" ]; then
    # no default: ALADIN-ViT is a manual download, so a default naming it could never be found
    echo "error: set PARTS to the networks to start from (hypernst download stylegan2-ffhq-256;" \
        "download aladinVIT_bamfg_64.47.pt from https://github.com/DanRuta/ALADIN/releases and run" \
        "\`hypernst convert aladin aladinVIT_bamfg_64.47.pt -o ALADIN_DIR\`; then" \
        "PARTS=\"stylegan2-ffhq-256 ALADIN_DIR\" $0 DATA OUT_DIR)" >&2
    exit 2
fi
CONFIG="${CONFIG:-paper}"
EXTRA="${EXTRA:-device=cuda}"
if [ "${DRY_RUN:-0}" = 1 ]; then
    EXTRA="$EXTRA steps=2 checkpoint_every=0 sample_every=0 log_every=1"
fi
mkdir -p "$OUT/runs"

# shellcheck source=recipes/compact/steps.sh
. "$HERE/../compact/steps.sh"

if [ ! -d "$OUT/init" ]; then
    echo "== assemble init from: $PARTS (config $CONFIG)"
    rm -rf "$OUT/init.partial"
    # shellcheck disable=SC2086  # PARTS is a list of words
    "$PY" -m hypernst_cli.train.assemble "$OUT/init.partial" $PARTS --config "$CONFIG"
    mv "$OUT/init.partial" "$OUT/init"
fi
train_step "$HERE" "$DATA" "$OUT/runs" encoder encoder "$OUT/init"
train_step "$HERE" "$DATA" "$OUT/runs" reconstruct reconstruct "$OUT/runs/encoder/final"
train_step "$HERE" "$DATA" "$OUT/runs" stylize stylize "$OUT/runs/reconstruct/final"

if [ ! -d "$OUT/model" ]; then
    rm -rf "$OUT/model.partial"
    "$PY" -m hypernst_cli -q weights export "$OUT/runs/stylize/final" -o "$OUT/model.partial"
    "$PY" -m hypernst_cli.train.history "$OUT/runs" "$OUT/model.partial" encoder reconstruct stylize
    mv "$OUT/model.partial" "$OUT/model"
fi
echo "wrote $OUT/model (use: hypernst stylize PHOTO STYLE --weights $OUT/model -o OUT.png)"
