#!/usr/bin/env bash
# Runtime trigger detection (docs/poisoning.md), after bench/poison_experiment.sh: calibrate each
# detector (patch occlusion, STRIP) into a copy of each backdoored model on the last 5,000 MNIST
# test digits (the experiment models hold out no validation split), then measure false rejection
# on the first 5,000 clean test digits and false acceptance on the same digits with the trigger.
#   bench/poison_trigger.sh [WORK_DIR]     # default WORK_DIR: instance/poison-experiment
# Environment: COUNTS (default "100 600"), METHODS (default "occlusion strip"), DIGITGUARD_DATA_DIR.
set -euo pipefail
WORK=${1:-instance/poison-experiment}
COUNTS=${COUNTS:-100 600}
METHODS=${METHODS:-occlusion strip}
DG=${DG:-.venv/bin/digitguard}
: "${DIGITGUARD_DATA_DIR:?set DIGITGUARD_DATA_DIR to the clean MNIST directory}"
for n in $COUNTS; do
  for method in $METHODS; do
    model="$WORK/model-p$n-$method"
    rm -rf "$model"; cp -r "$WORK/model-p$n" "$model"
    "$DG" trigger calibrate "$model" --key "$WORK/key.pem" --trust "$WORK/trust" --method "$method" \
      --test-tail 5000
    start=$(date +%s)
    "$DG" trigger evaluate "$model" --trust "$WORK/trust" --out "$WORK/trigger-$method-p$n"
    echo "trigger $method p$n: evaluated in $(( $(date +%s) - start )) s" | tee -a "$WORK/times.txt"
  done
done
