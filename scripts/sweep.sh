#!/usr/bin/env bash
# Sweeps the broker's tuning flags once over the fanout cases and prints one
# line per variant (medians over RUNS), so defaults are chosen from data.
#
#   scripts/sweep.sh                      # default variants
#   VARIANTS=$'-shards 4\n-shards 16' scripts/sweep.sh
#
# Env: RUNS (1), FANOUT_N (10000), FANOUT_DURATION (10s), OUT, VARIANTS
# (one flag set per line; the empty line is the defaults). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-${TMPDIR:-/tmp}/sweep-out}
export RUNS=${RUNS:-1} FANOUT_N=${FANOUT_N:-10000} FANOUT_DURATION=${FANOUT_DURATION:-10s}
DEFAULT_VARIANTS=$'\n-shards 2\n-shards 32\n-pollers 2\n-pollers 4\n-linger 2ms\n-linger 10ms\n-read-buffer 16384\n-write-buffer 262144'
VARIANTS=${VARIANTS:-$DEFAULT_VARIANTS}
mkdir -p "$OUT"
i=0
while IFS= read -r v; do
  i=$((i + 1))
  echo "== variant $i: ${v:-(defaults)}" >&2
  TARGETS=broker CASES_ONLY="fanout-100 fanout-max" OUT="$OUT/v$i" \
    BROKER_FLAGS="-msg-rate -1 -broadcast-rate -1 $v" scripts/bench.sh >"$OUT/v$i.txt"
  echo "${v:-(defaults)}" >"$OUT/v$i.flags"
done <<<"$VARIANTS"

python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
print(f"{'variant':<22} {'100/s dlv/s':>12} {'100/s p99 ms':>13} {'max dlv/s':>12} {'max p99 ms':>11}")
for d in sorted(glob.glob(os.path.join(out, "v*")), key=lambda p: int(p.rsplit("v", 1)[1]) if p[-1].isdigit() else 0):
    if not os.path.isdir(d):
        continue
    flags = open(d + ".flags").read().strip()
    s = {(r["case"], r["metric"]): r["broker"] for r in json.load(open(os.path.join(d, "summary.json")))}
    g = lambda c, m: s.get((c, m)) or 0
    print(f"{flags:<22} {g('fanout-100','deliveries/s'):>12.0f} {g('fanout-100','p99 ms'):>13.1f} "
          f"{g('fanout-max','deliveries/s'):>12.0f} {g('fanout-max','p99 ms'):>11.1f}")
PY
