#!/usr/bin/env bash
# Label flips (docs/poisoning.md): flip 1% of the training labels at random, train on the result
# (same short schedule as the sweep) and score the scan against the poison manifest.
#   bench/poison_flips.sh [WORK_DIR]     # default WORK_DIR: instance/poison-experiment
set -euo pipefail
WORK=${1:-instance/poison-experiment}
EPOCHS=${EPOCHS:-2}
SEED=${SEED:-0}
DG=${DG:-.venv/bin/digitguard}
DATA=${DIGITGUARD_DATA_DIR:?set DIGITGUARD_DATA_DIR to the clean MNIST directory}
mkdir -p "$WORK"
[ -f "$WORK/key.pem" ] || "$DG" keygen --private "$WORK/key.pem" --public "$WORK/trust/experiment.pub" >/dev/null
tag=flip1; [ "$SEED" = 0 ] || tag="flip1-s$SEED"   # SEED=1: a second, independent flip set and model
data="$WORK/data-$tag"; model="$WORK/model-$tag"
[ -d "$data" ] || "$DG" poison --data-dir "$DATA" --out "$data" --count 0 --flip-labels 0.01 --seed "$SEED"
if [ ! -d "$model" ]; then
  start=$(date +%s)
  resume=(); [ -f "$model.checkpoint.safetensors" ] && resume=(--resume)
  "$DG" train --data-dir "$data" --out "$model" --key "$WORK/key.pem" --epochs "$EPOCHS" \
    --no-augment --validation-size 0 --seed "$SEED" --quiet --allow-unverified "${resume[@]}"
  echo "$tag: trained in $(( $(date +%s) - start )) s" | tee -a "$WORK/times.txt"
fi
start=$(date +%s)
"$DG" data scan --data-dir "$data" --model "$model" --trust "$WORK/trust" --truth "$data.poison.json" \
  --json > "$WORK/scan-$tag.json"
echo "$tag: scanned in $(( $(date +%s) - start )) s" | tee -a "$WORK/times.txt"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], 'scan', d['by_method'], d['score'])" \
  "$WORK/scan-$tag.json" "$tag"
