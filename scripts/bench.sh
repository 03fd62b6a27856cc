#!/usr/bin/env bash
# Runs the standard load-test suite against the broker and the baseline
# (bench/baseline) alternately, then prints medians and broker/baseline
# ratios and writes every run's JSON plus a summary under $OUT.
#
# Env: RUNS (3; QUICK: 2), QUICK=1 (small numbers, ~2 min), OUT (dir),
#      FANOUT_N FANOUT_DURATION MAX_BATCH IDLE_N IDLE_DURATION ECHO_N
#      ECHO_DURATION CONNECT_N CONNECT_HOLD TARGETS ("broker baseline"),
#      BROKER_FLAGS (extra broker flags), CASES_ONLY (space-separated case
#      names or prefixes, e.g. "fanout-max").
# Loopback only: servers listen on 127.0.0.1 and the harness refuses any
# other target.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/bench-out}
KEY=${KEY:-bench-key}
PORT=${PORT:-18080}
ADMIN=${ADMIN:-127.0.0.1:18081}
if [[ "${QUICK:-0}" == 1 ]]; then
  RUNS=${RUNS:-2}
  FANOUT_N=${FANOUT_N:-500}; FANOUT_DURATION=${FANOUT_DURATION:-3s}
  IDLE_N=${IDLE_N:-1000}; IDLE_DURATION=${IDLE_DURATION:-2s}
  ECHO_N=${ECHO_N:-20}; ECHO_DURATION=${ECHO_DURATION:-2s}
  CONNECT_N=${CONNECT_N:-1000}
else
  RUNS=${RUNS:-3}
  FANOUT_N=${FANOUT_N:-10000}; FANOUT_DURATION=${FANOUT_DURATION:-20s}
  IDLE_N=${IDLE_N:-18000}; IDLE_DURATION=${IDLE_DURATION:-10s}
  ECHO_N=${ECHO_N:-100}; ECHO_DURATION=${ECHO_DURATION:-15s}
  CONNECT_N=${CONNECT_N:-20000}
fi
MAX_BATCH=${MAX_BATCH:-10}
# A server process here cannot hold 20,000 sockets (the open-file hard
# limit is 20,000 and cannot be raised), so by default the connect scenario
# closes each connection after its handshake: it measures handshake rate;
# the idle scenario (18,000) measures holding.
CONNECT_HOLD=${CONNECT_HOLD:-false}
TARGETS=${TARGETS:-broker baseline}
# The baseline has no per-connection rate limits; the broker's defaults
# (paced at 10,000 messages/s and 5 echo broadcasts/s per connection) would
# slow the echo-fanout case, so they are lifted for a like-for-like
# comparison.
# Add tuning flags here for sweeps (scripts/sweep.sh does).
BROKER_FLAGS=${BROKER_FLAGS:--msg-rate -1 -broadcast-rate -1}

ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT/json"
# shellcheck source=scripts/lib/targets.sh
source "$(dirname "$0")/lib/targets.sh"
# shellcheck source=scripts/lib/summary.sh
source "$(dirname "$0")/lib/summary.sh"
build_targets

# name | bench arguments
CASES=(
  "fanout-100|fanout -n $FANOUT_N -size 100 -rate 100 -duration $FANOUT_DURATION"
  "fanout-max|fanout -n $FANOUT_N -size 100 -rate 0 -batch $MAX_BATCH -duration $FANOUT_DURATION"
  "idle|idle -n $IDLE_N -duration $IDLE_DURATION"
  "echo|echo -n $ECHO_N -duration $ECHO_DURATION"
  "connect|connect -n $CONNECT_N -hold=$CONNECT_HOLD"
)

run_suite quiet

summarize "$OUT" <<'PY'
import sys
from summary import by_target, cases, compare, header, load_runs, write_summary
out = sys.argv[1]
runs = load_runs(out)
metrics = {  # case -> [(label, getter, higher is better)]
    "fanout": [("deliveries/s", lambda r: r["fanout"]["deliveriesPerSec"], True),
               ("published/s", lambda r: r["fanout"]["publishRate"], True),
               ("loss %", lambda r: r["fanout"]["lossPct"], False),
               ("p50 ms", lambda r: r["latency"]["p50Ms"], False),
               ("p99 ms", lambda r: r["latency"]["p99Ms"], False),
               ("p99.9 ms", lambda r: r["latency"]["p999Ms"], False),
               ("server RSS/conn B", lambda r: r["server"]["rssPerConnBytes"], False),
               ("server CPU s", lambda r: r["server"]["cpuSeconds"], False),
               ("harness cores", lambda r: r["harness"]["cpuCores"], False)],
    "idle": [("held", lambda r: r["idle"]["held"], True),
             ("server RSS/conn B", lambda r: r["server"]["rssPerConnBytes"], False),
             ("connect/s", lambda r: r["connect"]["perSec"], True)],
    "echo": [("round trips/s", lambda r: r["echo"]["roundTripsPerSec"], True),
             ("p50 ms", lambda r: r["latency"]["p50Ms"], False),
             ("p99 ms", lambda r: r["latency"]["p99Ms"], False),
             ("server CPU s", lambda r: r["server"]["cpuSeconds"], False),
             ("server CPU us/rt", lambda r: r["echo"]["serverCpuUsPerRoundTrip"], False)],
    "connect": [("handshakes/s", lambda r: r["connect"]["perSec"], True),
                ("failed", lambda r: r["connect"]["failed"], False)],
}
summary = []
header((11, 18))
for name in cases(runs):
    summary += compare(by_target(runs, name), metrics[name.split("-")[0]], (11, 18), case=name)
write_summary(out, summary)
print(f"\nratio = broker / baseline (medians); runs in {out}/json, summary in {out}/summary.json")
PY
