#!/usr/bin/env bash
# The held-out measurements every shipped model is judged by (docs/compact-model.md):
#   benchmarks/heldout_eval.sh MODEL OUT_DIR [DATA]
#
#   MODEL    a model folder (or weights spec) for --weights
#   OUT_DIR  reports: OUT_DIR/pairs (4 held-out faces + 3 photos x 6 held-out art styles:
#            identity, colour, face found; contact sheets) and OUT_DIR/analogies (7 held-out
#            faces: the 4 aligned ones and the 3 photos, aligned here into OUT_DIR/aligned;
#            16 style families, 3 never trained on; per family 8 unseen draws x the 42
#            ordered face pairs, of which a seeded 24 are measured (so a family's figure spans
#            its parameters, not one draw's; docs/compact-model.md "One draw per family was
#            not enough"), + 24 region-mixed items: L1/SSIM to the truth
#            against the unstyled face and the colour transfer; own-region test; style
#            sensitivity; contact sheet) and
#            OUT_DIR/analogies-second (the same plan on a second set: 4 other faces of DATA,
#            which the compact recipe trains on, with the draws of seed 1, 24 items per
#            family; how far the shares
#            move with the faces, docs/compact-model.md "How sure the numbers are")
#   DATA     the data folder [default: ../shared/data]; the hold-outs are recipes/compact/holdout.txt
# All run with --detail 0 (the generator's own output) and the dlib backend. About an hour on
# 2 CPU cores.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,3p' "$0" >&2
    exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
MODEL="$1"
OUT="$2"
DATA="${3:-$HERE/../../shared/data}"
HYPERNST="${HYPERNST:-hypernst}"
HOLDOUT="$HERE/../recipes/compact/holdout.txt"
held() {  # held PREFIX: the hold-out files under PREFIX/ as DATA paths
    grep "^$1/" "$HOLDOUT" | sed "s|^|$DATA/|"
}
mapfile -t FACES < <(held faces)
mapfile -t PHOTOS < <(held photos)
mapfile -t STYLES < <(held styles)
repeat() {  # repeat FLAG FILE...: FLAG FILE FLAG FILE ...
    local flag="$1"
    shift
    for f in "$@"; do printf '%s\0%s\0' "$flag" "$f"; done
}
mapfile -d '' PAIR_ARGS < <(repeat --content "${FACES[@]}" "${PHOTOS[@]}"; repeat --style "${STYLES[@]}")
mkdir -p "$OUT"
# the held-out photos as aligned faces too: 7 faces, so the analogy shares rest on more people
$HYPERNST -q align "${PHOTOS[@]}" -o "$OUT/aligned" --size 256 --backend dlib
ALIGNED=()
for p in "${PHOTOS[@]}"; do
    name="$(basename "$p")"
    ALIGNED+=("$OUT/aligned/${name%.*}.png")
done
mapfile -d '' FACE_ARGS < <(repeat --faces "${FACES[@]}" "${ALIGNED[@]}")
SECOND=(faces/dsg_019706.png faces/dsg_081680.png faces/ffhq_000001.png faces/ffhq_000015.png)
mapfile -d '' SECOND_ARGS < <(repeat --faces "${SECOND[@]/#/$DATA/}")
$HYPERNST --device cpu evaluate -w "$MODEL" "${PAIR_ARGS[@]}" --detail 0 --backend dlib \
    -o "$OUT/pairs"
$HYPERNST --device cpu evaluate --analogies -w "$MODEL" "${FACE_ARGS[@]}" \
    --families heldout,train --draws 8 --limit 24 --region-mixed 24 --detail 0 --backend dlib \
    -o "$OUT/analogies"
$HYPERNST --device cpu evaluate --analogies -w "$MODEL" "${SECOND_ARGS[@]}" --seed 1 \
    --families heldout,train --draws 8 --limit 24 --region-mixed 12 --detail 0 --backend dlib \
    -o "$OUT/analogies-second"
echo "wrote $OUT/pairs/report.md, $OUT/analogies/analogies.md and $OUT/analogies-second/analogies.md"
