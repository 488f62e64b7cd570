# Shell functions the compact recipes use (sourced by run.sh, spatial/run.sh, grow256/run.sh and
# paper/run.sh, not run). The caller sets PY (the interpreter with hypernst_cli) and EXTRA
# (KEY=VALUE words for every step), or lets continuation_args set them.

# continuation_args SCRIPT ARG...: the arguments of a recipe that continues a trained model,
# `SCRIPT DATA OUT_DIR [INIT] [MODEL_DEST]`: sets DATA, OUT, INIT (default: the embedded compact
# model), DEST (default: OUT/model), PY and EXTRA; checks that the edit directions have their
# photos (UTKFACE_DIR, or DIRECTIONS=0) and creates OUT. Exits 2 with SCRIPT's usage lines.
continuation_args() {
    local script="$1"
    shift
    if [ $# -lt 2 ]; then
        sed -n '2,3p' "$script" >&2
        exit 2
    fi
    PY="${PYTHON:-python}"
    EXTRA="${EXTRA:-}"
    DATA="$1"
    OUT="$2"
    INIT="${3:-$("$PY" -c 'from hypernst_cli.weights.registry import EMBEDDED_DIR; print(EMBEDDED_DIR / "compact")')}"
    DEST="${4:-$OUT/model}"
    if [ "${DIRECTIONS:-1500}" != 0 ] && [ -z "${UTKFACE_DIR:-}" ]; then
        echo "error: set UTKFACE_DIR (UTKFace photos for the edit directions) or DIRECTIONS=0" >&2
        exit 2
    fi
    mkdir -p "$OUT"
}

# train_step CONFIG_DIR DATA RUNS NAME STAGE [INIT]: trains STAGE with CONFIG_DIR/NAME.toml into
# RUNS/NAME; a finished step (RUNS/NAME/.complete) is skipped, an interrupted one resumes.
train_step() {
    local dir="$1" data="$2" runs="$3" name="$4" stage="$5" init="${6:-}" run="$3/$4"
    if [ -f "$run/.complete" ]; then
        echo "== $name: done ($run/final)"
        return
    fi
    echo "== $name"
    # shellcheck disable=SC2086  # EXTRA is a list of KEY=VALUE words
    "$PY" -m hypernst_cli train "$stage" --config "$dir/$name.toml" data="$data" \
        ${init:+init="$init"} $EXTRA -o "$run" --resume
    touch "$run/.complete"
}

# finish_model FINAL DEST UTKFACE_DIR WORK RUNS STAGE...: exports FINAL to DEST (inference
# networks only, fp16), fits the edit directions (age, smile, pose) on DIRECTIONS (default 1500)
# UTKFace photos of UTKFACE_DIR (DIRECTIONS=0: none; fit data under WORK/directions), and records
# the history of RUNS/STAGE... (after INIT's stages, for a continuation) in DEST's metrics.json
# and card. DEST appears whole or not at all.
finish_model() {
    local final="$1" dest="$2" utkface="$3" work="$4" runs="$5"
    shift 5
    echo "== export the model to $dest (inference networks only, fp16)"
    rm -rf "$dest.partial"
    "$PY" -m hypernst_cli -q weights export "$final" -o "$dest.partial"
    if [ "${DIRECTIONS:-1500}" != 0 ]; then
        echo "== edit directions (InterFaceGAN on ${DIRECTIONS:-1500} UTKFace photos)"
        "$PY" -m hypernst_cli -q directions fit -w "$dest.partial" --data "$utkface" \
            --age-from-filename --max-images "${DIRECTIONS:-1500}" --backend dlib \
            -o "$work/directions" --into "$dest.partial"
    fi
    # a continuation (INIT set by continuation_args) keeps its init's stages first
    "$PY" -m hypernst_cli.train.history "$runs" "$dest.partial" "$@" ${INIT:+--continues "$INIT"}
    rm -rf "$dest"
    mv "$dest.partial" "$dest"
    echo "wrote $dest (use: hypernst stylize PHOTO STYLE --weights $dest -o OUT.png)"
}
