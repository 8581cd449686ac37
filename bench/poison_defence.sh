#!/usr/bin/env bash
# The detection half of docs/poisoning.md, after bench/poison_experiment.sh: scan each poisoned
# set with the model trained on it, score the findings against the poison manifest, write the
# sanitised copy, retrain on it (same schedule) and measure the backdoor again.
#   bench/poison_defence.sh [WORK_DIR]     # default WORK_DIR: instance/poison-experiment
# Environment: COUNTS (default "100 600"), EPOCHS (2), SEED (0), DIGITGUARD_DATA_DIR.
set -euo pipefail
WORK=${1:-instance/poison-experiment}
COUNTS=${COUNTS:-100 600}
EPOCHS=${EPOCHS:-2}
SEED=${SEED:-0}
DG=${DG:-.venv/bin/digitguard}
DATA=${DIGITGUARD_DATA_DIR:?set DIGITGUARD_DATA_DIR to the clean MNIST directory}
for n in $COUNTS; do
  data="$WORK/data-p$n"; clean="$WORK/data-p$n-sanitized"; model="$WORK/model-p$n-sanitized"
  if [ ! -d "$clean" ]; then
    start=$(date +%s)
    "$DG" data scan --data-dir "$data" --model "$WORK/model-p$n" --trust "$WORK/trust" \
      --truth "$data.poison.json" --sanitize --out "$clean" --json > "$WORK/scan-p$n.json"
    echo "p$n: scanned in $(( $(date +%s) - start )) s" | tee -a "$WORK/times.txt"
  fi
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('p$n scan', d['by_method'], d['score'])" \
    "$WORK/scan-p$n.json"
  if [ ! -d "$model" ]; then
    start=$(date +%s)
    resume=(); [ -f "$model.checkpoint.safetensors" ] && resume=(--resume)
    "$DG" train --data-dir "$clean" --out "$model" --key "$WORK/key.pem" --epochs "$EPOCHS" \
      --no-augment --validation-size 0 --seed "$SEED" --quiet --allow-unverified "${resume[@]}"
    echo "p$n-sanitized: trained in $(( $(date +%s) - start )) s" | tee -a "$WORK/times.txt"
  fi
  "$DG" attack-backdoor "$model" --data-dir "$DATA" --trust "$WORK/trust" --trigger square3 --target 7 \
    --json | tee "$WORK/backdoor-p$n-sanitized.json"
done
