#!/usr/bin/env bash
# Everyday fan-out (issue #20): N subscribers, RATE events/s of SIZE bytes
# for DURATION, against each of TARGETS in turn, a fresh server for every
# run, RUNS rounds with the order rotated each round. Prints, per target,
# the medians of publish→receive p50 and p99 and of the server's CPU per
# delivery (its CPU over publishing and the drain, from /proc, over the
# deliveries received), with deliveries/s, loss, peak RSS and the harness's
# own cores as checks, and then each target's ratio to raw: the one-write
# floor (bench/rawpeer). Every run's JSON and bench output go under
# $OUT/json, the summary to $OUT/summary.json.
#
# Targets (scripts/lib/targets.sh): broker, raw, node (node + ws; left out
# with a message when node or interop/node/node_modules is missing: npm ci
# --prefix interop/node), baseline (gorilla).
#
# Env: RUNS (3), N (5000), RATE (20), SIZE (128), DURATION (8s),
#      TARGETS ("broker raw node baseline"), OUT (dir), PORT, ADMIN, KEY,
#      BROKER_FLAGS (default none: the broker's defaults are what is
#      measured), BROKER_BIN (a prebuilt broker), NODE_FLAGS (e.g.
#      --deflate), LATE_AFTER (5s, bench -late-after).
#      Smoke test: N=200 DURATION=1s RUNS=1 scripts/everyday.sh
# Loopback only: servers listen on 127.0.0.1 and the harness refuses any
# other target. Each bench run has the harness's hard timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/everyday-out}
KEY=${KEY:-bench-key}
PORT=${PORT:-18080}
ADMIN=${ADMIN:-127.0.0.1:18081}
RUNS=${RUNS:-3}
N=${N:-5000}
RATE=${RATE:-20}
SIZE=${SIZE:-128}
DURATION=${DURATION:-8s}
LATE_AFTER=${LATE_AFTER:-5s}
TARGETS=${TARGETS:-broker raw node baseline}
BROKER_FLAGS=${BROKER_FLAGS:-}
NODE_FLAGS=${NODE_FLAGS:-}

ulimit -n "$(ulimit -Hn)"
rm -rf "$OUT/json"
mkdir -p "$OUT/json"
# shellcheck disable=SC2206 # TARGETS is a word list by design
wanted=($TARGETS) # the summary has a column for each, run or not
# shellcheck source=scripts/lib/targets.sh
source "$(dirname "$0")/lib/targets.sh"
# shellcheck source=scripts/lib/summary.sh
source "$(dirname "$0")/lib/summary.sh"
build_targets # may leave out node (or the broker), saying why

# shellcheck disable=SC2206
all=($TARGETS)
(( ${#all[@]} > 0 )) || { echo "everyday.sh: no target left to run" >&2; exit 1; }
for run in $(seq "$RUNS"); do
  rotate order "$run" "${all[@]}"
  for target in "${order[@]}"; do
    json="$OUT/json/$target-$run.json"
    echo "run $run/$RUNS: $target" >&2
    start_server "$target" || continue
    "$OUT/bench" fanout -n "$N" -rate "$RATE" -size "$SIZE" -duration "$DURATION" -late-after "$LATE_AFTER" \
      -addr "127.0.0.1:$PORT" -admin "$ADMIN" -key "$KEY" -label "$target" -pid "$SERVER_PID" \
      -json "$json" -quiet || echo "everyday.sh: $target run $run failed (see $json)" >&2
    stop_server
  done
done

summarize "$OUT" "$RUNS" "${wanted[@]}" <<'PY'
import sys
from summary import fmt, load_runs, median, write_summary
out, nruns, cols = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = load_runs(out, key=lambda base: base.rsplit("-", 1)[0])  # TARGET-RUN
metrics = [  # label, getter, compared with raw
    ("p50 ms", lambda r: r["latency"]["p50Ms"], True),
    ("p99 ms", lambda r: r["latency"]["p99Ms"], True),
    ("server CPU us/delivery", lambda r: r["fanout"]["serverCpuUsPerDelivery"], True),
    ("deliveries/s", lambda r: r["fanout"]["deliveriesPerSec"], False),
    ("loss %", lambda r: r["fanout"]["lossPct"], False),
    ("peak RSS MiB", lambda r: r["server"]["rssPeakBytes"] / 2**20, True),
    ("harness cores", lambda r: r["harness"]["cpuCores"], False),
]
med = {(label, t): median(get(r) for r in runs.get(t, [])) for label, get, _ in metrics for t in cols}
print(f"{'median of ' + nruns + ' runs':<24}" + "".join(f"{t:>12}" for t in cols))
for label, _, _ in metrics:
    print(f"{label:<24}" + "".join(f"{fmt(med[label, t]):>12}" for t in cols))
summary = []
print(f"\n{'ratio to raw':<24}" + "".join(f"{t:>12}" for t in cols))
for label, _, compare in metrics:
    ratios = {}
    for t in cols:
        v, raw = med[label, t], med.get((label, "raw"))
        ratios[t] = v / raw if compare and v is not None and raw not in (None, 0) else None
        summary.append({"metric": label, "target": t, "median": v, "ratioToRaw": ratios[t], "runs": len(runs.get(t, []))})
    if compare:
        print(f"{label:<24}" + "".join(f"{fmt(ratios[t]):>12}" for t in cols))
write_summary(out, summary)
missing = [t for t in cols if t not in runs]
if missing:
    print(f"\nno runs for: {' '.join(missing)}")
print(f"\nratio = target / raw (medians); runs in {out}/json, summary in {out}/summary.json")
PY
