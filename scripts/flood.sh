#!/usr/bin/env bash
# Runs the flow-control ("flood") suite against the broker and the baseline
# (bench/baseline) alternately, a fresh server for every run, then prints
# medians and broker/baseline ratios, and writes every run's JSON, a
# summary and SVG charts under $OUT.
#
# Cases (names end in the subscriber count so charts can group them):
#   flood-<D>-<N>    N subscribers, 128-byte events, PUBLISHERS publishers
#                    as fast as accepted (503s counted, Retry-After capped
#                    at 100 ms), for each D in DURATIONS
#   stalled-<D>-<N>  the same with STALLED (25 %) of the subscribers never
#                    reading; LAG_BOUND judges how fast they were closed
#   rate20-<N>       20 events/s to N (RATE_N) subscribers
#   echo-<N>         ECHO_N closed-loop echo clients, broker defaults
# Every fanout run counts what readers had not received LATE_AFTER after
# publishing stopped (fanout.undeliveredAfter).
#
# Env: RUNS (3), OUT (dir), COUNTS ("5000 10000"), DURATIONS ("8s 16s"),
#      PUBLISHERS (4), BATCH (10), SIZE (128), STALLED (0.25),
#      LATE_AFTER (5s), LAG_BOUND (7s = broker -max-lag 5s + 2s),
#      RATE_N (5000), RATE_DURATION (10s), ECHO_N (50), ECHO_DURATION (10s),
#      TARGETS ("broker baseline"), BROKER_FLAGS (extra broker flags;
#      default none: the broker's flow-control defaults are what is
#      measured, e.g. "-max-lag 5s -publish-lag 250ms -write-window 16384"),
#      CASES_ONLY (space-separated case names or prefixes, e.g. "flood-8s echo").
#      QUICK=1: 1 run, 500/1000 subscribers, 3 s (a smoke test of the script).
# Loopback only: servers listen on 127.0.0.1 and the harness refuses any
# other target. Each bench run has a hard -timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/flood-out}
KEY=${KEY:-bench-key}
PORT=${PORT:-18080}
ADMIN=${ADMIN:-127.0.0.1:18081}
if [[ "${QUICK:-0}" == 1 ]]; then
  RUNS=${RUNS:-1}; COUNTS=${COUNTS:-500 1000}; DURATIONS=${DURATIONS:-3s}
  RATE_N=${RATE_N:-500}; RATE_DURATION=${RATE_DURATION:-3s}
  ECHO_N=${ECHO_N:-20}; ECHO_DURATION=${ECHO_DURATION:-2s}
  LATE_AFTER=${LATE_AFTER:-2s}
else
  RUNS=${RUNS:-3}; COUNTS=${COUNTS:-5000 10000}; DURATIONS=${DURATIONS:-8s 16s}
  RATE_N=${RATE_N:-5000}; RATE_DURATION=${RATE_DURATION:-10s}
  ECHO_N=${ECHO_N:-50}; ECHO_DURATION=${ECHO_DURATION:-10s}
fi
PUBLISHERS=${PUBLISHERS:-4}
BATCH=${BATCH:-10}
SIZE=${SIZE:-128}
STALLED=${STALLED:-0.25}
LATE_AFTER=${LATE_AFTER:-5s}
LAG_BOUND=${LAG_BOUND:-7s}
TARGETS=${TARGETS:-broker baseline}
BROKER_FLAGS=${BROKER_FLAGS:-}

ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT/json" "$OUT/charts"
# shellcheck source=scripts/lib/targets.sh
source "$(dirname "$0")/lib/targets.sh"
# shellcheck source=scripts/lib/summary.sh
source "$(dirname "$0")/lib/summary.sh"
build_targets

FLOOD="fanout -size $SIZE -rate 0 -publishers $PUBLISHERS -batch $BATCH -late-after $LATE_AFTER"
CASES=()  # name | bench arguments
for d in $DURATIONS; do
  for n in $COUNTS; do
    CASES+=("flood-$d-$n|$FLOOD -n $n -duration $d")
    CASES+=("stalled-$d-$n|$FLOOD -n $n -duration $d -stalled $STALLED -lag-bound $LAG_BOUND")
  done
done
CASES+=("rate20-$RATE_N|fanout -size $SIZE -rate 20 -n $RATE_N -duration $RATE_DURATION -late-after $LATE_AFTER")
CASES+=("echo-$ECHO_N|echo -n $ECHO_N -duration $ECHO_DURATION")

# The summary of each run is kept beside its JSON (.txt).
run_suite text

# Charts per case family (the name without its subscriber count), broker and
# baseline side by side.
fams=$(find "$OUT/json" -name '*.json' -printf '%f\n' | sed -n 's/^\(\(flood\|stalled\)-[^-]*\)-[0-9]*-.*\.json$/\1/p' | sort -u)
for fam in $fams; do
  "$OUT/bench" chart -out "$OUT/charts/$fam" -title "$fam" "$OUT/json/$fam"-*.json >/dev/null \
    || echo "flood.sh: charts for $fam failed" >&2
done

summarize "$OUT" <<'PY'
import sys
from summary import by_target, cases, compare, header, load_runs, write_summary
out = sys.argv[1]
runs = load_runs(out)
fan = lambda r: r["fanout"]
fanout = [("deliveries/s", lambda r: fan(r)["deliveriesPerSec"]),
          ("accepted/s", lambda r: fan(r)["publishRate"]),
          ("refused (503) events", lambda r: fan(r)["refused"]),
          ("publish errors", lambda r: fan(r)["publishFailed"]),
          ("readers loss %", lambda r: fan(r)["lossPct"]),
          ("undelivered after", lambda r: fan(r)["undeliveredAfter"]["count"]),
          ("out of order", lambda r: fan(r)["outOfOrder"]),
          ("p50 ms", lambda r: r["latency"]["p50Ms"]),
          ("p99 ms", lambda r: r["latency"]["p99Ms"]),
          ("p99.9 ms", lambda r: r["latency"]["p999Ms"]),
          ("peak RSS MiB", lambda r: r["server"]["rssPeakBytes"] / 2**20),
          ("server CPU s", lambda r: r["server"]["cpuSeconds"]),
          ("harness cores", lambda r: r["harness"]["cpuCores"])]
stalled = [("stalled", lambda r: fan(r)["stalled"]["count"]),
           ("stalled closed 1008", lambda r: fan(r)["stalled"]["closed1008"]),
           ("stalled closed in bound", lambda r: fan(r)["stalled"]["closedWithinBound"]),
           ("stalled close max s", lambda r: fan(r)["stalled"]["closeSecondsMax"]),
           ("stalled still open", lambda r: fan(r)["stalled"]["open"])]
metrics = {"flood": fanout, "stalled": fanout + stalled, "rate20": fanout,
           "echo": [("round trips/s", lambda r: r["echo"]["roundTripsPerSec"]),
                    ("p50 ms", lambda r: r["latency"]["p50Ms"]),
                    ("p99 ms", lambda r: r["latency"]["p99Ms"]),
                    ("errors", lambda r: len(r["errors"]) + r["connect"]["failed"] + r["connect"]["disconnected"]),
                    ("server CPU s", lambda r: r["server"]["cpuSeconds"]),
                    ("server CPU us/round trip", lambda r: r["echo"]["serverCpuUsPerRoundTrip"])]}
summary = []
header((18, 24))
for name in cases(runs):
    summary += compare(by_target(runs, name), metrics[name.split("-")[0]], (18, 24), case=name)
write_summary(out, summary)
print(f"\nratio = broker / baseline (medians); runs in {out}/json, charts in {out}/charts, summary in {out}/summary.json")
PY
