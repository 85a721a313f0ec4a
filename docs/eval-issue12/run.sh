#!/bin/bash
# The README's local-model table, measured in the background. Resumable: run this script again and each
# eval resumes from its OUT/results.jsonl (a result is appended as soon as it is graded).
#   setsid nohup DIR/run.sh >> DIR/run.log 2>&1 < /dev/null &   (DIR: this script, models.ini and src/, a snapshot of the package)
# Rounds of 4 questions, alternating the two sets, each round through the four configurations question by
# question: a run stopped at any point has paired results on both sets at a smaller n.
set -u
cd "$(dirname "$0")"
export LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS=true
export LITELLM_FUSION_LOCAL_BASE=http://127.0.0.1:8790/v1
# llama.cpp's OpenMP workers sleep instead of spinning at barriers, as `litellm-fusion local serve` sets it:
# spinning workers of two models stall each other on 2 cores
export OMP_WAIT_POLICY=PASSIVE
export PYTHONPATH=$PWD/src   # a snapshot of the commit in src/COMMIT: edits to the worktree do not leak in
PY=${PY:-/work/wt/i12q/.venv/bin/python}   # a Python with litellm-fusion's dependencies
COMMIT=$(cat src/COMMIT)
SERVER=${SERVER:-$(cat /work/wt/LLAMA_SERVER)}   # the llama-server binary (litellm-fusion local build-server)
if ! curl -sf 127.0.0.1:8790/v1/models >/dev/null; then
  setsid nohup "$SERVER" --models-preset models.ini --models-max 2 --host 127.0.0.1 --port 8790 --no-webui --log-colors off \
    > llama-server.log 2>&1 < /dev/null &
  echo $! > llama-server.pid
  for i in $(seq 90); do curl -sf 127.0.0.1:8790/v1/models >/dev/null && break; sleep 2; done
fi
ONLY="solo 1.5B,self-ensemble 1.5B x3 (local-self),local preset (0.5B+0.5B+1.5B),solo 0.5B"
META=(--meta "server=llama-server router mode ($SERVER, built from the llama.cpp vendored by the llama-cpp-python 0.3.36 sdist), models.ini: 4 parallel slots per model, continuous batching, 2 threads per model with OMP_WAIT_POLICY=PASSIVE (as local serve) from 2026-12-01T18:10Z; before that 1 thread per model without it"
      --meta "commit=$COMMIT")
for n in 4 8 12 16 20 24 28 32 36 40 44 48; do
  echo "=== $(date -u +%FT%TZ) arithmetic --limit $n"
  $PY -m litellm_fusion.evaluation arithmetic --config local_eval --only "$ONLY" --limit $n --timeout 1500 --retry-errors --out arithmetic "${META[@]}"
  if [ "$n" -le 32 ]; then
    echo "=== $(date -u +%FT%TZ) calendar --limit $n"
    $PY -m litellm_fusion.evaluation calendar --config local_eval --only "$ONLY" --limit $n --timeout 1500 --retry-errors --out calendar "${META[@]}"
  fi
done
echo "=== $(date -u +%FT%TZ) done"
