#!/usr/bin/env bash
# permessage-deflate against plain fan-out, broker only (issue #20). Each
# run starts a fresh broker twice, alternately: "plain" (-compression off,
# subscribers offer nothing) and "deflate" (-compression on, every
# subscriber negotiates it and inflates what it receives). Both publish the
# same realistic mix (bench -mix: 100-4,000 bytes of protocol-shaped JSON).
# Prints medians per mode: deliveries/s, server CPU µs per delivery, server
# peak RSS, and the bytes the subscribers received on the wire against the
# plain bytes they handled.
#
# Env: RUNS (3), N (subscribers, 2000), RATE (events/s, 0 = as fast as
#      accepted; default 200), BATCH (10), DURATION (10s), MIN (broker
#      -compression-min, default the broker's), OUT (dir), BROKER_FLAGS.
# Loopback only, like scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/compression-out}
KEY=${KEY:-bench-key}
PORT=${PORT:-18080}
ADMIN=${ADMIN:-127.0.0.1:18081}
RUNS=${RUNS:-3}
N=${N:-2000}
RATE=${RATE:-200}
BATCH=${BATCH:-10}
DURATION=${DURATION:-10s}
TARGETS=broker
BASE_FLAGS=${BROKER_FLAGS:--msg-rate -1 -broadcast-rate -1}
[[ -n "${MIN:-}" ]] && BASE_FLAGS="$BASE_FLAGS -compression-min $MIN"

ulimit -n "$(ulimit -Hn)"
rm -rf "$OUT/json"
mkdir -p "$OUT/json"
# shellcheck source=scripts/lib/targets.sh
source "$(dirname "$0")/lib/targets.sh"
build_targets

for run in $(seq "$RUNS"); do
  modes=(plain deflate)
  if (( run % 2 == 0 )); then modes=(deflate plain); fi
  for mode in "${modes[@]}"; do
    json="$OUT/json/$mode-$run.json"
    echo "run $run/$RUNS: $mode" >&2
    extra=()
    if [[ $mode == deflate ]]; then
      BROKER_FLAGS="$BASE_FLAGS -compression on"; extra=(-compression)
    else
      BROKER_FLAGS="$BASE_FLAGS -compression off"
    fi
    start_server broker || continue
    "$OUT/bench" fanout -n "$N" -mix -rate "$RATE" -batch "$BATCH" -duration "$DURATION" "${extra[@]}" \
      -addr "127.0.0.1:$PORT" -admin "$ADMIN" -key "$KEY" -pid "$SERVER_PID" -json "$json" -quiet \
      || echo "compression.sh: $mode run $run failed (see $json)" >&2
    stop_server
  done
done

python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(out, "json", "*.json"))):
    mode = os.path.basename(f).rsplit("-", 1)[0]
    with open(f) as fh:
        runs.setdefault(mode, []).append(json.load(fh))
per = lambda r: r["fanout"]["received"] or 1
metrics = [
    ("deliveries/s", lambda r: r["fanout"]["deliveriesPerSec"]),
    ("loss %", lambda r: r["fanout"]["lossPct"]),
    ("p99 ms", lambda r: r["latency"]["p99Ms"]),
    ("server CPU us/delivery", lambda r: r["server"]["cpuSeconds"] * 1e6 / per(r)),
    ("server peak RSS MiB", lambda r: r["server"]["rssPeakBytes"] / 2**20),
    # Counted by the harness only with -compression (the plain run's wire
    # bytes are the deflate run's plain bytes: the same mix).
    ("wire bytes/delivery", lambda r: r["fanout"]["wireBytes"] / per(r) if r["params"]["compression"] else None),
    ("plain bytes/delivery", lambda r: r["fanout"]["plainBytes"] / per(r) if r["params"]["compression"] else None),
    ("wire/plain", lambda r: r["fanout"]["wireBytes"] / max(r["fanout"]["plainBytes"], 1) if r["params"]["compression"] else None),
    ("compressed readers", lambda r: r["fanout"]["compressedReaders"]),
]
summary = []
print(f"{'metric':<24} {'plain':>12} {'deflate':>12} {'ratio':>8}")
for label, get in metrics:
    def median(rs):
        vals = [v for v in (get(r) for r in rs) if v is not None]
        return statistics.median(vals) if vals else None
    med = {m: median(runs.get(m, [])) for m in ("plain", "deflate")}
    p, d = med["plain"], med["deflate"]
    ratio = d / p if p not in (None, 0) and d is not None else None
    fmt = lambda v: "-" if v is None else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    print(f"{label:<24} {fmt(p):>12} {fmt(d):>12} {fmt(ratio):>8}")
    summary.append({"metric": label, "plain": p, "deflate": d, "ratio": ratio,
                    "runs": {m: len(runs.get(m, [])) for m in ("plain", "deflate")}})
with open(os.path.join(out, "summary.json"), "w") as fh:
    json.dump(summary, fh, indent=2)
print(f"\nratio = deflate / plain (medians of {len(runs.get('plain', []))} and {len(runs.get('deflate', []))} runs); JSON in {out}/json")
PY
