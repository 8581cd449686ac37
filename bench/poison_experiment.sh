#!/usr/bin/env bash
# The BadNets sweep of docs/poisoning.md: poison the training set with 0 (clean reference), 50,
# 100, 300 and 600 triggered samples, train the seed CNN on each (short schedule: EPOCHS epochs,
# no augmentation, no validation hold-out so every poison is trained on), then report clean
# accuracy and attack success rate. Usage (from the repository root):
#   bench/poison_experiment.sh [WORK_DIR]        # default WORK_DIR: instance/poison-experiment
# Environment: COUNTS (default "100 0 600 50 300"), EPOCHS (2), SEED (0), DIGITGUARD_DATA_DIR.
set -euo pipefail
WORK=${1:-instance/poison-experiment}
COUNTS=${COUNTS:-100 0 600 50 300}
EPOCHS=${EPOCHS:-2}
SEED=${SEED:-0}
DG=${DG:-.venv/bin/digitguard}
DATA=${DIGITGUARD_DATA_DIR:?set DIGITGUARD_DATA_DIR to the clean MNIST directory}
mkdir -p "$WORK"
if [ ! -f "$WORK/key.pem" ]; then
  "$DG" keygen --private "$WORK/key.pem" --public "$WORK/trust/experiment.pub" >/dev/null
fi
for n in $COUNTS; do
  model="$WORK/model-p$n"
  if [ "$n" = 0 ]; then data="$DATA"; extra=(); else
    data="$WORK/data-p$n"; extra=(--allow-unverified)
    [ -d "$data" ] || "$DG" poison --data-dir "$DATA" --out "$data" --trigger square3 --target 7 \
      --count "$n" --seed "$SEED"
  fi
  if [ ! -d "$model" ]; then
    start=$(date +%s)
    resume=(); [ -f "$model.checkpoint.safetensors" ] && resume=(--resume)
    "$DG" train --data-dir "$data" --out "$model" --key "$WORK/key.pem" --epochs "$EPOCHS" \
      --no-augment --validation-size 0 --seed "$SEED" --quiet "${extra[@]}" "${resume[@]}"
    echo "p$n: trained in $(( $(date +%s) - start )) s" | tee -a "$WORK/times.txt"
  fi
  "$DG" attack-backdoor "$model" --data-dir "$DATA" --trust "$WORK/trust" --trigger square3 --target 7 \
    --json | tee "$WORK/backdoor-p$n.json"
done
