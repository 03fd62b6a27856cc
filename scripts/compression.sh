#!/usr/bin/env bash
# permessage-deflate against plain fan-out, broker only (issue #20). Each
# run starts a fresh broker twice, alternately: "plain" (-compression off,
# subscribers offer nothing) and "deflate" (-compression on, every
# subscriber negotiates it and inflates what it receives). Both publish the
# same realistic mix (bench -mix: 100-4,000 bytes of protocol-shaped JSON).
# Prints medians per mode: deliveries/s, server CPU µs per delivery, server
# peak RSS, the bytes the subscribers received on the wire against the
# plain bytes they handled, and the harness's own cores.
#
# Inflating is the harness's cost, not the broker's: by default (mode
# "deflate") the subscribers of a bench process share an inflate cache
# keyed by the exact compressed bytes (bench -inflate-cache, on by
# default), since the broker sends every subscriber the same compressed
# frame of an event; the harness then costs about what a plain run does
# and leaves the cores to the broker. Mode "deflate-each" (bench
# -inflate-cache=false) has every subscriber inflate every message itself,
# as real clients would: add it to MODES to report both.
#
# Env: RUNS (3), N (subscribers, 2000), RATE (events/s, 0 = as fast as
#      accepted; default 200), BATCH (10), DURATION (10s), MIN (broker
#      -compression-min, default the broker's), OUT (dir), BROKER_FLAGS,
#      MODES ("plain deflate"; any of plain, deflate, deflate-each).
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
MODES=${MODES:-plain deflate}
TARGETS=broker
BASE_FLAGS=${BROKER_FLAGS:--msg-rate -1 -broadcast-rate -1}
[[ -n "${MIN:-}" ]] && BASE_FLAGS="$BASE_FLAGS -compression-min $MIN"

ulimit -n "$(ulimit -Hn)"
rm -rf "$OUT/json"
mkdir -p "$OUT/json"
# shellcheck source=scripts/lib/targets.sh
source "$(dirname "$0")/lib/targets.sh"
# shellcheck source=scripts/lib/summary.sh
source "$(dirname "$0")/lib/summary.sh"
build_targets

# shellcheck disable=SC2206 # MODES is a word list by design
all=($MODES)
modes=()
for run in $(seq "$RUNS"); do
  rotate modes "$run" "${all[@]}"
  for mode in "${modes[@]}"; do
    json="$OUT/json/$mode-$run.json"
    echo "run $run/$RUNS: $mode" >&2
    case $mode in
      plain) BROKER_FLAGS="$BASE_FLAGS -compression off"; extra=() ;;
      deflate) BROKER_FLAGS="$BASE_FLAGS -compression on"; extra=(-compression -inflate-cache=true) ;;
      deflate-each) BROKER_FLAGS="$BASE_FLAGS -compression on"; extra=(-compression -inflate-cache=false) ;;
      *) echo "compression.sh: unknown mode $mode (want plain, deflate or deflate-each)" >&2; exit 2 ;;
    esac
    start_server broker || continue
    "$OUT/bench" fanout -n "$N" -mix -rate "$RATE" -batch "$BATCH" -duration "$DURATION" "${extra[@]}" \
      -addr "127.0.0.1:$PORT" -admin "$ADMIN" -key "$KEY" -pid "$SERVER_PID" -json "$json" -quiet \
      || echo "compression.sh: $mode run $run failed (see $json)" >&2
    stop_server
  done
done

summarize "$OUT" "${all[@]}" <<'PY'
import sys
from summary import fmt, load_runs, median, write_summary
out, modes = sys.argv[1], sys.argv[2:]
runs = load_runs(out, key=lambda base: base.rsplit("-", 1)[0])  # MODE-RUN
per = lambda r: r["fanout"]["received"] or 1
comp = lambda r: r["params"]["compression"]
metrics = [
    ("deliveries/s", lambda r: r["fanout"]["deliveriesPerSec"]),
    ("loss %", lambda r: r["fanout"]["lossPct"]),
    ("p99 ms", lambda r: r["latency"]["p99Ms"]),
    ("server CPU us/delivery", lambda r: r["server"]["cpuSeconds"] * 1e6 / per(r)),
    ("server peak RSS MiB", lambda r: r["server"]["rssPeakBytes"] / 2**20),
    # Counted by the harness only with -compression (the plain run's wire
    # bytes are the deflate run's plain bytes: the same mix).
    ("wire bytes/delivery", lambda r: r["fanout"]["wireBytes"] / per(r) if comp(r) else None),
    ("plain bytes/delivery", lambda r: r["fanout"]["plainBytes"] / per(r) if comp(r) else None),
    ("wire/plain", lambda r: r["fanout"]["wireBytes"] / max(r["fanout"]["plainBytes"], 1) if comp(r) else None),
    ("compressed readers", lambda r: r["fanout"]["compressedReaders"]),
    ("harness inflations", lambda r: r["fanout"]["inflations"] if comp(r) else None),
    ("inflate cache hits", lambda r: r["fanout"]["inflateCacheHits"] if comp(r) else None),
    ("harness cores", lambda r: r["harness"]["cpuCores"]),
]
others = [m for m in modes if m != "plain"]
head = f"{'metric':<24}" + "".join(f"{m:>14}" for m in modes)
if "plain" in modes:
    head += "".join(f"{m + '/plain':>20}" for m in others)
print(head)
summary = []
for label, get in metrics:
    med = {m: median(get(r) for r in runs.get(m, [])) for m in modes}
    line = f"{label:<24}" + "".join(f"{fmt(med[m]):>14}" for m in modes)
    p = med.get("plain")
    ratios = {m: med[m] / p if p not in (None, 0) and med[m] is not None else None for m in others}
    if "plain" in modes:
        line += "".join(f"{fmt(ratios[m]):>20}" for m in others)
    print(line)
    summary.append({"metric": label, **med, "ratioToPlain": ratios,
                    "runs": {m: len(runs.get(m, [])) for m in modes}})
write_summary(out, summary)
counts = ", ".join(f"{len(runs.get(m, []))} {m}" for m in modes)
print(f"\nratio = mode / plain (medians of {counts} runs); JSON in {out}/json")
PY
