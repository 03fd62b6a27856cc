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

ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT/json"
# shellcheck source=scripts/lib/targets.sh
source "$(dirname "$0")/lib/targets.sh"
# shellcheck source=scripts/lib/summary.sh
source "$(dirname "$0")/lib/summary.sh"
build_targets

CASES=()  # name | bench arguments
for s in $STALLED_COUNTS; do
  # Exactly s of s + READERS never read (checked again for each run below).
  f=$(stalled_fraction "$s" "$READERS")
  base="fanout -n $((s + READERS)) -stalled $f -rate $RATE -size $SIZE -duration $DURATION -late-after $LATE_AFTER -lag-bound $LAG_BOUND -stalled-read $STALLED_READ"
  CASES+=("majority-$s|$base")
  CASES+=("majority-reconnect-$s|$base -stalled-reconnect $RECONNECT")
done

run_suite text

summarize "$OUT" "$READERS" <<'PY'
import sys
from summary import by_target, cases, compare, header, load_runs, write_summary
out, readers = sys.argv[1], int(sys.argv[2])
def check(f, r):
    name = f[:-5].rsplit("-", 2)[0]
    fo, want_stalled = r["fanout"], int(name.rsplit("-", 1)[1])
    if fo["readers"] != readers or fo["stalledSubscribers"] != want_stalled or r["connect"]["failed"]:
        print(f"majority.sh: {f}: {fo['readers']} readers, {fo['stalledSubscribers']} stalled, "
              f"{r['connect']['failed']} failed to connect (want {readers} and {want_stalled}, 0)", file=sys.stderr)
runs = load_runs(out, check=check)
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
names = cases(runs)
summary = []
header((24, 26))
for name in names:
    metrics = common + (reconnect if "-reconnect-" in name else []) + tail
    summary += compare(by_target(runs, name), metrics, (24, 26), case=name)
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
write_summary(out, summary)
print(f"\nratio = broker / baseline (medians); runs in {out}/json, summary in {out}/summary.json")
PY
