#!/usr/bin/env bash
# The test suite again and again on a loaded machine (issue #19's target):
# runs scripts/test.sh -count=1 RUNS times in a row, under CI=true (nothing
# may skip), while a flood runs beside it: a broker of this tree on
# loopback and cmd/bench fanout with N subscribers at the maximum rate, 20 s
# at a time, restarted until the runs are done. Prints one line per run
# (pass/FAIL and seconds) and keeps every run's output under $OUT; exits 1
# if any run failed.
#
# Env: RUNS (10), N (2000 flood subscribers), OUT (dir), PORT (19480),
#      ADMIN (127.0.0.1:19481). About 2.5 minutes a run on 2 cores.
# Loopback only; the flood stops with the last run.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-10}
N=${N:-2000}
OUT=${OUT:-${TMPDIR:-/tmp}/stability}
PORT=${PORT:-19480}
ADMIN=${ADMIN:-127.0.0.1:19481}
KEY=stability-key
mkdir -p "$OUT"
rm -f "$OUT/stop" "$OUT/summary.txt"
go build -o "$OUT/broker" ./cmd/broker
go build -o "$OUT/bench" ./cmd/bench
cat > "$OUT/broker.json" <<JSON
{"websocket":{"port":$PORT,"approvedSocketDomains":["localhost"],"socketApiKey":"$KEY"}}
JSON

flood() {
  while [[ ! -f "$OUT/stop" ]]; do
    "$OUT/broker" -config "$OUT/broker.json" -admin-addr "$ADMIN" -log-level warn >>"$OUT/flood-broker.log" 2>&1 &
    local bp=$!
    for _ in $(seq 50); do curl -sf "http://$ADMIN/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    "$OUT/bench" fanout -addr "127.0.0.1:$PORT" -admin "$ADMIN" -key "$KEY" -n "$N" -rate 0 -batch 10 \
      -size 128 -duration 20s -timeout 60s >>"$OUT/flood-bench.log" 2>&1 || true
    kill "$bp" 2>/dev/null || true
    wait "$bp" 2>/dev/null || true
  done
}
flood &
FLOOD=$!
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() { touch "$OUT/stop"; wait "$FLOOD" 2>/dev/null || true; }
trap cleanup EXIT

failed=0
for i in $(seq "$RUNS"); do
  start=$(date +%s)
  if CI=true bash scripts/test.sh -count=1 >"$OUT/run-$i.log" 2>&1; then r=pass; else r=FAIL; failed=1; fi
  echo "run $i: $r in $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
done
exit "$failed"
