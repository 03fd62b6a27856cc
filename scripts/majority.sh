#!/usr/bin/env bash
# Runs the majority-stalled case against the broker and the baseline
# (bench/baseline) alternately, a fresh server for every run, then prints
# medians and broker/baseline ratios, and writes every run's JSON and a
# summary under $OUT. The question it answers: can sockets that never read,
# far outnumbering the readers, hold the publishers or the readers up?
#
# Cases (N = never-reading sockets, for each N in STALLED_COUNTS):
#   majority-<N>            N subscribers that never read after their
#                           handshake + READERS readers, RATE events/s of
#                           SIZE bytes for DURATION; LAG_BOUND judges how
#                           fast the never-readers were cut
#   majority-reconnect-<N>  the same with every never-reading socket
#                           resetting and dialling again every RECONNECT
#                           (-stalled-reconnect: one wave, each at ± 5 %),
#                           never reading the new connection either; with
#                           RECONNECT under the server's max-lag they are
#                           never old enough to be cut (boundEligible
#                           counts the connections that were)
# Printed per case and target (medians over RUNS): slowest publish request
# and publish p99 (fanout.publishLatency: send to 202/503), readers' p99,
# p99.9 and max, lost, undelivered LATE_AFTER after publishing stopped,
# stalled closed 1008 (each socket's last connection; for reconnect cases
# also those cut before their reconnect), server peak RSS and CPU; and
# below, per target, the worst run against the targets (every publish and
# the readers' p99.9 within 100 ms, nothing lost).
#
# Env: RUNS (3), OUT (dir), STALLED_COUNTS ("2000"), READERS (100),
#      RATE (100), SIZE (4096), DURATION (8s), RECONNECT (4s),
#      LATE_AFTER (5s), LAG_BOUND (7s = broker -max-lag 5s + 2s),
#      STALLED_READ (3s: final read of the never-readers),
#      TARGETS ("broker baseline"), BROKER_FLAGS (extra broker flags;
#      default none: the broker's defaults are what is measured),
#      CASES_ONLY (space-separated case names or prefixes, e.g.
#      "majority-reconnect"), PORT (18090), ADMIN (127.0.0.1:18091).
#      QUICK=1: 1 run, 200 never-reading + 20 readers, 3 s, reconnect
#      every 1 s (a smoke test of the script, not a measurement).
# About 20 s per run at the defaults (connect, 8 s of publishing, the
# readers' drain, the final read), so 2 cases × 2 targets × 3 runs is
# about 4 minutes plus the build.
# Loopback only: servers listen on 127.0.0.1 and the harness refuses any
# other target. Each bench run has a hard -timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/majority-out}
KEY=${KEY:-bench-key}
PORT=${PORT:-18090}
ADMIN=${ADMIN:-127.0.0.1:18091}
if [[ "${QUICK:-0}" == 1 ]]; then
  RUNS=${RUNS:-1}; STALLED_COUNTS=${STALLED_COUNTS:-200}; READERS=${READERS:-20}
  DURATION=${DURATION:-3s}; RECONNECT=${RECONNECT:-1s}; LATE_AFTER=${LATE_AFTER:-2s}
  STALLED_READ=${STALLED_READ:-1s}
else
  RUNS=${RUNS:-3}; STALLED_COUNTS=${STALLED_COUNTS:-2000}; READERS=${READERS:-100}
  DURATION=${DURATION:-8s}; RECONNECT=${RECONNECT:-4s}; LATE_AFTER=${LATE_AFTER:-5s}
  STALLED_READ=${STALLED_READ:-3s}
fi
RATE=${RATE:-100}
SIZE=${SIZE:-4096}
LAG_BOUND=${LAG_BOUND:-7s}
TARGETS=${TARGETS:-broker baseline}
BROKER_FLAGS=${BROKER_FLAGS:-}

# stalled_fraction S R: the -stalled fraction that makes exactly S of S+R
# subscribers never read. The harness marks connection i stalled when
# int((i+1)·f) > int(i·f), which over i = 0..n-1 gives int(n·f) in all;
# (S + ½)/n puts n·f half-way between S and S+1, so float rounding cannot
# tip it either way. Checked here, and each run's readers again below.
stalled_fraction() {
  awk -v s="$1" -v r="$2" 'BEGIN {
    n = s + r; f = sprintf("%.12f", (s + 0.5) / n)
    if (int(n * f) != s) { print "majority.sh: fraction " f " gives " int(n * f) " of " n > "/dev/stderr"; exit 1 }
    print f }'
}

ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT/json"
# shellcheck source=scripts/lib/targets.sh
source "$(dirname "$0")/lib/targets.sh"
build_targets

CASES=()  # name | bench arguments
for s in $STALLED_COUNTS; do
  f=$(stalled_fraction "$s" "$READERS")
  base="fanout -n $((s + READERS)) -stalled $f -rate $RATE -size $SIZE -duration $DURATION -late-after $LATE_AFTER -lag-bound $LAG_BOUND -stalled-read $STALLED_READ"
  CASES+=("majority-$s|$base")
  CASES+=("majority-reconnect-$s|$base -stalled-reconnect $RECONNECT")
done

selected() { # $1 = case name
  [[ -z "${CASES_ONLY:-}" ]] && return 0
  local c
  for c in $CASES_ONLY; do [[ "$1" == "$c"* ]] && return 0; done
  return 1
}

for run in $(seq "$RUNS"); do
  # shellcheck disable=SC2206 # TARGETS is a word list by design
  order=($TARGETS)
  if (( run % 2 == 0 )) && (( ${#order[@]} == 2 )); then order=("${order[1]}" "${order[0]}"); fi
  for c in "${CASES[@]}"; do
    name=${c%%|*}; args=${c#*|}
    selected "$name" || continue
    for target in "${order[@]}"; do
      json="$OUT/json/$name-$target-$run.json"
      echo "run $run/$RUNS: $name on $target" >&2
      start_server "$target" || continue
      # shellcheck disable=SC2086 # args is a word list by design
      "$OUT/bench" $args -addr "127.0.0.1:$PORT" -admin "$ADMIN" -key "$KEY" -label "$target" \
        -pid "$SERVER_PID" -json "$json" >"${json%.json}.txt" || echo "majority.sh: $name on $target failed (see $json)" >&2
      stop_server
    done
  done
done

python3 - "$OUT" "$READERS" <<'PY'
import glob, json, os, statistics, sys
out, readers = sys.argv[1], int(sys.argv[2])
runs = {}
for f in sorted(glob.glob(os.path.join(out, "json", "*.json"))):
    name, target, _ = os.path.basename(f)[:-5].rsplit("-", 2)
    with open(f) as fh:
        r = json.load(fh)
    fo, want_stalled = r["fanout"], int(name.rsplit("-", 1)[1])
    if fo["readers"] != readers or fo["stalledSubscribers"] != want_stalled or r["connect"]["failed"]:
        print(f"majority.sh: {os.path.basename(f)}: {fo['readers']} readers, {fo['stalledSubscribers']} stalled, "
              f"{r['connect']['failed']} failed to connect (want {readers} and {want_stalled}, 0)", file=sys.stderr)
    runs.setdefault((name, target), []).append(r)
fan = lambda r: r["fanout"]
st = lambda r: fan(r)["stalled"]
common = [("slowest publish ms", lambda r: fan(r)["publishLatency"]["maxMs"]),
          ("publish p99 ms", lambda r: fan(r)["publishLatency"]["p99Ms"]),
          ("publish requests", lambda r: fan(r)["publishRequests"]),
          ("refused (503) requests", lambda r: fan(r)["refusedRequests"]),
          ("accepted/s", lambda r: fan(r)["publishRate"]),
          ("readers p99 ms", lambda r: r["latency"]["p99Ms"]),
          ("readers p99.9 ms", lambda r: r["latency"]["p999Ms"]),
          ("readers max ms", lambda r: r["latency"]["maxMs"]),
          ("lost", lambda r: fan(r)["lost"]),
          ("undelivered after", lambda r: fan(r)["undeliveredAfter"]["count"]),
          ("readers disconnected", lambda r: r["connect"]["disconnected"]),
          ("stalled closed 1008", lambda r: st(r)["closed1008"]),
          ("stalled closed in bound", lambda r: st(r)["closedWithinBound"]),
          ("stalled bound eligible", lambda r: st(r)["boundEligible"]),
          ("stalled still open", lambda r: st(r)["open"])]
reconnect = [("reconnects", lambda r: st(r)["reconnects"]),
             ("reconnects failed", lambda r: st(r)["reconnectFailed"]),
             ("cut 1008 before reconnect", lambda r: st(r)["closedBeforeReconnect1008"])]
tail = [("peak RSS MiB", lambda r: r["server"]["rssPeakBytes"] / 2**20),
        ("server CPU s", lambda r: r["server"]["cpuSeconds"]),
        ("harness cores", lambda r: r["harness"]["cpuCores"])]
fmt = lambda v: "-" if v is None else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
summary = []
names = sorted({n for n, _ in runs})
print(f"{'case':<24} {'metric':<26} {'broker':>12} {'baseline':>12} {'ratio':>8}")
for name in names:
    metrics = common + (reconnect if "-reconnect-" in name else []) + tail
    for label, get in metrics:
        med = {}
        for t in ("broker", "baseline"):
            vals = [get(r) for r in runs.get((name, t), [])]
            med[t] = statistics.median(vals) if vals else None
        b, base = med["broker"], med["baseline"]
        ratio = b / base if b is not None and base not in (None, 0) else None
        print(f"{name:<24} {label:<26} {fmt(b):>12} {fmt(base):>12} {fmt(ratio):>8}")
        summary.append({"case": name, "metric": label, "broker": b, "baseline": base, "ratio": ratio,
                        "runs": {t: len(runs.get((name, t), [])) for t in ("broker", "baseline")}})
print("\ntargets, worst run: every publish <= 100 ms, readers' p99.9 <= 100 ms, nothing lost or undelivered")
for name in names:
    for t in ("broker", "baseline"):
        rs = runs.get((name, t), [])
        if not rs:
            continue
        slow = max(fan(r)["publishLatency"]["maxMs"] for r in rs)
        p999 = max(r["latency"]["p999Ms"] for r in rs)
        lost = max(fan(r)["lost"] + fan(r)["undeliveredAfter"]["count"] for r in rs)
        ok = "met" if slow <= 100 and p999 <= 100 and lost == 0 else "NOT met"
        print(f"  {name:<24} {t:<9} slowest publish {slow:9.1f} ms  readers p99.9 {p999:9.1f} ms  "
              f"lost+undelivered {lost:>7}  {ok}  ({len(rs)} runs)")
with open(os.path.join(out, "summary.json"), "w") as fh:
    json.dump(summary, fh, indent=2)
print(f"\nratio = broker / baseline (medians); runs in {out}/json, summary in {out}/summary.json")
PY
