#!/usr/bin/env bash
# Where does the broker overtake the goroutine-per-connection baseline?
# Runs fanout at 100 events/s for several subscriber counts (RUNS each,
# both servers alternately) and prints p50/p99 and deliveries/s per count.
#
# Env: COUNTS ("100 500 1000 2000 5000"), RUNS (3), FANOUT_DURATION (5s), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-${TMPDIR:-/tmp}/crossover-out}
COUNTS=${COUNTS:-100 500 1000 2000 5000}
export RUNS=${RUNS:-3} FANOUT_DURATION=${FANOUT_DURATION:-5s}
for n in $COUNTS; do
  echo "== $n subscribers" >&2
  FANOUT_N=$n CASES_ONLY=fanout-100 OUT="$OUT/n$n" scripts/bench.sh >"$OUT-n$n.txt" 2>>"$OUT.log" || true
done
python3 - "$OUT" $COUNTS <<'PY'
import json, os, sys
out, counts = sys.argv[1], sys.argv[2:]
print(f"{'subs':>6} {'broker p50':>11} {'base p50':>9} {'broker p99':>11} {'base p99':>9} {'p99 ratio':>10} {'dlv/s ratio':>12}")
for n in counts:
    path = os.path.join(out, f"n{n}", "summary.json")
    if not os.path.exists(path):
        continue
    s = {r["metric"]: r for r in json.load(open(path))}
    g = lambda m, t: s[m][t] or 0
    print(f"{n:>6} {g('p50 ms','broker'):>11.2f} {g('p50 ms','baseline'):>9.2f} {g('p99 ms','broker'):>11.2f} "
          f"{g('p99 ms','baseline'):>9.2f} {s['p99 ms']['ratio'] or 0:>10.3f} {s['deliveries/s']['ratio'] or 0:>12.3f}")
PY
