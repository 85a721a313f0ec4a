#!/bin/sh
# The README's invocation table on the local models, resumable: one `litellm-fusion eval --only` run per
# configuration into its own directory; a directory that already has results.json is skipped.
# (Configuration names must not contain commas: --only splits on them.)
#   LIMIT=8 OUT=eval-results/decision scripts/run_decision_eval.sh
set -eu
LIMIT=${LIMIT:-8}
OUT=${OUT:-eval-results/decision}
BIN=${BIN:-litellm-fusion}
i=0
for name in "outer model alone (1.5B)" "auto (same fusion)" "always (panel 0.5B+1.5B; judge 1.5B)"; do
  i=$((i + 1))
  dir="$OUT/$i"
  if [ -f "$dir/results.json" ]; then echo "skip $name: $dir/results.json exists" >&2; continue; fi
  "$BIN" eval decision_mix --config decision_eval --limit "$LIMIT" --only "$name" --out "$dir.partial"
  rm -rf "$dir" && mv "$dir.partial" "$dir"
done
"${PYTHON:-python}" -m litellm_fusion.evaluation.decisions "$OUT"/1 "$OUT"/2 "$OUT"/3
