#!/usr/bin/env bash
# Forged credit pongs against the broker (issue #16): FORGERS sockets that
# never read but keep sending masked pongs shaped like the broker's credit
# pongs (cmd/bench -stalled-forge-pongs: the 25-byte shape, marker 'b',
# position, cursor, tag, and the older 17-byte one in turn; positions
# cycling through the first WINDOW bytes, a huge cursor, a random tag),
# one every FORGE_EVERY per socket until the broker closes it, plus
# READERS subscribers that read, while RATE events/s of SIZE bytes are
# published for DURATION (the broker's -max-lag plus a few seconds). A
# fresh broker for every run (the baseline has no credit, so it is not
# run). Prints, per run and as medians over RUNS: forging sockets closed
# with 1008, closed within LAG_BOUND of the first publish, the slowest
# close, the broker's RSS growth from just after the connections to the
# peak of the run (VmHWM, reset after connecting) against the target
# (1 MiB + one write window per forging socket), readers' lost and
# undelivered events, the forged pongs sent and the broker's own count of
# them (/stats forgedPongs), and whether each run met the target. With
# CONTROL=1 (the default) every run is followed by the same run with
# sockets that never read and send nothing (plain -stalled), on a fresh
# broker: what the broker grows by anyway (its event log fills with the
# published events, RATE x SIZE x DURATION, up to -history-size), so the
# difference is what the forged pongs cost. Every run's JSON and text
# summary, and the summary, are kept under $OUT.
#
# Env: RUNS (3), OUT (dir), FORGERS (200), READERS (8), RATE (200),
#      SIZE (1024), DURATION (8s), FORGE_EVERY (5ms), WINDOW (16384: the
#      broker's -write-window; set both if BROKER_FLAGS changes it),
#      LAG_BOUND (6s = the broker's -max-lag 5s + 1 s), LATE_AFTER (2s),
#      STALLED_READ (3s: final read of the forgers), BROKER_FLAGS (extra
#      broker flags; default none: the broker's defaults are measured),
#      CONTROL (1: also run the non-forging control; 0: forged runs only),
#      PORT (18095), ADMIN (127.0.0.1:18096).
#      QUICK=1: 1 run, 50 forgers + 4 readers, 3 s, the broker at
#      -max-lag 1s (LAG_BOUND 2s): a smoke test of the script, not a
#      measurement.
# About 15 s per run at the defaults (connect, 8 s of publishing, the
# readers' drain, the final read), so about a minute and a half with the
# control (under a minute without) plus the build.
# Loopback only: the broker listens on 127.0.0.1 and the harness refuses
# any other target. Each bench run has a hard -timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/forged-out}
KEY=${KEY:-bench-key}
PORT=${PORT:-18095}
ADMIN=${ADMIN:-127.0.0.1:18096}
if [[ "${QUICK:-0}" == 1 ]]; then
  RUNS=${RUNS:-1}; FORGERS=${FORGERS:-50}; READERS=${READERS:-4}; DURATION=${DURATION:-3s}
  BROKER_FLAGS=${BROKER_FLAGS:--max-lag 1s}; LAG_BOUND=${LAG_BOUND:-2s}; STALLED_READ=${STALLED_READ:-1s}
else
  RUNS=${RUNS:-3}; FORGERS=${FORGERS:-200}; READERS=${READERS:-8}; DURATION=${DURATION:-8s}
  BROKER_FLAGS=${BROKER_FLAGS:-}; LAG_BOUND=${LAG_BOUND:-6s}; STALLED_READ=${STALLED_READ:-3s}
fi
RATE=${RATE:-200}
SIZE=${SIZE:-1024}
FORGE_EVERY=${FORGE_EVERY:-5ms}
WINDOW=${WINDOW:-16384}
CONTROL=${CONTROL:-1}
LATE_AFTER=${LATE_AFTER:-2s}
TARGETS=broker

ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT/json"
# shellcheck source=scripts/lib/targets.sh
source "$(dirname "$0")/lib/targets.sh"
# shellcheck source=scripts/lib/summary.sh
source "$(dirname "$0")/lib/summary.sh"
build_targets

# Exactly FORGERS of FORGERS + READERS never read.
f=$(stalled_fraction "$FORGERS" "$READERS")
BASE="fanout -n $((FORGERS + READERS)) -stalled $f -rate $RATE -size $SIZE -duration $DURATION
  -late-after $LATE_AFTER -lag-bound $LAG_BOUND -stalled-read $STALLED_READ -timeout 3m"
CASES=("forged|$BASE -stalled-forge-pongs $FORGE_EVERY -stalled-forge-window $WINDOW")
if [[ "$CONTROL" == 1 ]]; then CASES+=("control|$BASE"); fi
for run in $(seq "$RUNS"); do
  for c in "${CASES[@]}"; do
    name=${c%%|*}; args=${c#*|}
    json="$OUT/json/$name-$FORGERS-broker-$run.json"
    echo "run $run/$RUNS: $name, $FORGERS never-reading sockets + $READERS readers on the broker" >&2
    start_server broker || continue
    # shellcheck disable=SC2086 # args is a word list by design
    "$OUT/bench" $args -addr "127.0.0.1:$PORT" -admin "$ADMIN" -key "$KEY" -label broker \
      -pid "$SERVER_PID" -json "$json" >"${json%.json}.txt" || echo "forged.sh: $name run $run failed (see $json)" >&2
    curl -s -H "Authorization: Bearer $KEY" "http://$ADMIN/stats" >"${json%.json}.stats" || true
    stop_server
  done
done

summarize "$OUT" "$FORGERS" "$READERS" "$WINDOW" <<'PY'
import glob, json, os, sys
from summary import fmt, median, write_summary
out, forgers, readers, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
bound_mib = 1 + forgers * window / 2**20
runs = {}
for case in ("forged", "control"):
    for f in sorted(glob.glob(os.path.join(out, "json", f"{case}-{forgers}-broker-*.json"))):
        with open(f) as fh:
            r = json.load(fh)
        try:
            with open(f[:-5] + ".stats") as fh:
                r["_stats"] = json.load(fh)
        except Exception:
            r["_stats"] = {}
        fo = r["fanout"]
        if fo["readers"] != readers or fo["stalledSubscribers"] != forgers or r["connect"]["failed"]:
            print(f"forged.sh: {os.path.basename(f)}: {fo['readers']} readers, {fo['stalledSubscribers']} never reading, "
                  f"{r['connect']['failed']} failed to connect (want {readers}, {forgers}, 0)", file=sys.stderr)
        runs.setdefault(case, []).append(r)
if not runs.get("forged"):
    sys.exit("forged.sh: no forged run produced a result")
st = lambda r: r["fanout"]["stalled"]
mib = lambda b: b / 2**20
metrics = [("never-reading sockets", lambda r: st(r)["count"]),
           ("closed 1008", lambda r: st(r)["closed1008"]),
           ("closed within lag bound", lambda r: st(r)["closedWithinBound"]),
           ("still open", lambda r: st(r)["open"]),
           ("max close s after 1st publish", lambda r: st(r)["closeSecondsMax"]),
           ("p50 close s", lambda r: st(r)["closeSecondsP50"]),
           ("RSS after connect MiB", lambda r: mib(r["server"]["rssConnectedBytes"])),
           ("RSS peak of run MiB", lambda r: mib(r["server"]["rssRunPeakBytes"])),
           ("RSS growth MiB", lambda r: mib(r["server"]["rssGrowthBytes"])),
           ("readers lost", lambda r: r["fanout"]["lost"]),
           ("readers undelivered after", lambda r: r["fanout"]["undeliveredAfter"]["count"]),
           ("readers p99 ms", lambda r: r["latency"]["p99Ms"]),
           ("slowest publish ms", lambda r: r["fanout"]["publishLatency"]["maxMs"]),
           ("accepted/s", lambda r: r["fanout"]["publishRate"]),
           ("forged pongs sent", lambda r: st(r)["forgedPongs"]),
           ("forge turns skipped (full)", lambda r: st(r)["forgeBlocked"]),
           ("broker forgedPongs counted", lambda r: r["_stats"].get("forgedPongs", 0)),
           ("server CPU s", lambda r: r["server"]["cpuSeconds"])]
lag = runs["forged"][0]["params"]["lagBoundSeconds"]
print(f"forged pongs: {forgers} forging sockets + {readers} readers, {len(runs['forged'])} runs (medians); "
      f"target: all closed 1008 within {lag:g}s, RSS growth <= {bound_mib:.2f} MiB (1 MiB + {forgers} x {window} B)")
print(f"  {'metric':<32} {'forged':>10} {'control':>10} {'diff':>10}   forged runs")
summary = []
for label, get in metrics:
    med = {c: median(get(r) for r in runs.get(c, [])) for c in ("forged", "control")}
    diff = med["forged"] - med["control"] if med["control"] is not None else None
    vals = [get(r) for r in runs["forged"]]
    print(f"  {label:<32} {fmt(med['forged']):>10} {fmt(med['control']):>10} {fmt(diff):>10}   {' '.join(fmt(v) for v in vals)}")
    summary.append({"metric": label, "forged": med["forged"], "control": med["control"], "diff": diff, "forgedRuns": vals})
ctrl = median(mib(r["server"]["rssGrowthBytes"]) for r in runs.get("control", []))
print("per forged run:")
for i, r in enumerate(runs["forged"], 1):
    s = st(r)
    closed = s["closed1008"] == forgers and s["closedWithinBound"] == forgers and s["open"] == 0
    grow = mib(r["server"]["rssGrowthBytes"])
    ok = closed and grow <= bound_mib and r["fanout"]["lost"] == 0
    print(f"  run {i}: closed 1008 {s['closed1008']}/{forgers}, within {lag:g}s {s['closedWithinBound']}, "
          f"slowest close {s['closeSecondsMax']:.2f}s, RSS growth {grow:.2f} MiB ({r['server']['rssRunPeakFrom']}"
          + (f"; {grow - ctrl:+.2f} on the control's median" if ctrl is not None else "") + "), "
          f"readers lost {r['fanout']['lost']}: {'met' if ok else 'NOT met'}")
write_summary(out, {"forgers": forgers, "readers": readers, "window": window, "boundMiB": bound_mib, "metrics": summary})
print(f"\ndiff = forged - control (medians); runs in {out}/json, summary in {out}/summary.json")
PY
