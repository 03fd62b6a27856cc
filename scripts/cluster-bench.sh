#!/usr/bin/env bash
# Fan-out across a broker cluster joined over NATS JetStream: starts
# cmd/natsd (an embedded nats-server with JetStream; or NATS_URL to use a
# running nats-server), NODES brokers with -nats, then one fanout run of
# cmd/bench whose subscribers are spread over the nodes and whose events
# are published on node A only, so every delivery on B and C crossed NATS.
# Prints the bench summary and, per node, deliveries, events taken from
# the stream, slow consumers, NATS counters, peer holds (cross-node
# backpressure), CPU seconds and peak RSS, and natsd's CPU seconds;
# everything is kept under $OUT.
#
# Env: NODES (3; 1 runs the same path on a single node, for 1-vs-3 at the
#      same total), N (48000 subscribers), DURATION (20s), RATE (100 events/s; 0 = as
#      fast as accepted), BATCH (1), SIZE (100 bytes), PROCS (client
#      processes, default one per 15,000 sockets: a process here holds
#      about 20,000 files), TIMEOUT (hard bound on the bench, 5m), OUT,
#      BROKER_FLAGS (extra flags for every broker), NATS_URL (skip natsd),
#      PORT (18180: nodes on PORT..PORT+2), ADMIN_PORT (18190..+2),
#      NATS_PORT (14222), BENCH (a prebuilt cmd/bench to use instead of
#      building this tree's).
# With a cmd/bench older than the multi-node -addr (a comma-separated
# list), the subscribers all go to node B (still published on A) and the
# script says so.
# Loopback only: everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/cluster-bench}
KEY=${KEY:-bench-key}
NODES=${NODES:-3}
N=${N:-48000}
DURATION=${DURATION:-20s}
RATE=${RATE:-100}
BATCH=${BATCH:-1}
SIZE=${SIZE:-100}
PROCS=${PROCS:-$(( (N + 14999) / 15000 ))}
TIMEOUT=${TIMEOUT:-5m}
PORT=${PORT:-18180}
ADMIN_PORT=${ADMIN_PORT:-18190}
NATS_PORT=${NATS_PORT:-14222}
BROKER_FLAGS=${BROKER_FLAGS:-}

ulimit -n "$(ulimit -Hn)"
# shellcheck source=scripts/lib/cluster.sh
source "$(dirname "$0")/lib/cluster.sh"
build_cluster
trap stop_pids EXIT
start_natsd

if (( NODES < 1 || NODES > 3 )); then echo "cluster-bench: NODES=$NODES: 1 to 3" >&2; exit 2; fi
NAMES=(A B C)
NAMES=("${NAMES[@]:0:NODES}")
ADDRS=()
BROKER_PIDS=()
for i in "${!NAMES[@]}"; do
  name=${NAMES[$i]}
  # shellcheck disable=SC2086 # BROKER_FLAGS is a word list by design
  "$OUT/broker" -config "$OUT/broker.json" -listen "127.0.0.1:$((PORT + i))" \
    -admin-addr "127.0.0.1:$((ADMIN_PORT + i))" -nats "$NATS_URL" -nats-name "$name" -log-level warn $BROKER_FLAGS \
    >"$OUT/broker-$name.log" 2>&1 &
  PIDS+=($!)
  BROKER_PIDS+=($!)
  ADDRS+=("127.0.0.1:$((PORT + i))")
  wait_http "http://127.0.0.1:$((ADMIN_PORT + i))/healthz" "$!" "broker-$name"
done

addr=$(IFS=,; echo "${ADDRS[*]}")
help=$("$OUT/bench" -h 2>&1 || true) # -h exits non-zero
if [[ "$help" != *comma-separated* && $NODES -gt 1 ]]; then
  echo "cluster-bench: this cmd/bench takes one -addr: subscribers all on node B (merge branch bench for all three)" >&2
  addr=${ADDRS[1]}
fi
cpu() { # CPU seconds (user+system) of pid $1 so far
  awk -v t="$(getconf CLK_TCK)" '{print ($14+$15)/t}' "/proc/$1/stat" 2>/dev/null || echo 0
}
for pid in "${BROKER_PIDS[@]}" $NATS_PID; do echo "$(cpu "$pid")" >"$OUT/cpu0-$pid"; done
echo "cluster-bench: fanout -n $N over $addr, publishing on node A, $PROCS client processes" >&2
set +e
timeout "$TIMEOUT" "$OUT/bench" fanout -n "$N" -procs "$PROCS" -addr "$addr" -admin "127.0.0.1:$ADMIN_PORT" \
  -key "$KEY" -size "$SIZE" -rate "$RATE" -batch "$BATCH" -duration "$DURATION" -timeout "$TIMEOUT" \
  -json "$OUT/fanout.json"
rc=$?
set -e

for i in "${!NAMES[@]}"; do
  name=${NAMES[$i]} pid=${BROKER_PIDS[$i]}
  curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$((ADMIN_PORT + i))/stats" >"$OUT/stats-$name.json" || true
  grep VmHWM "/proc/$pid/status" | awk '{print $2}' >"$OUT/rss-$name.kb" || echo 0 >"$OUT/rss-$name.kb"
  awk -v a="$(cat "$OUT/cpu0-$pid")" -v b="$(cpu "$pid")" 'BEGIN{print b-a}' >"$OUT/cpu-$name.s"
done
if [[ -n "$NATS_PID" ]]; then
  awk -v a="$(cat "$OUT/cpu0-$NATS_PID")" -v b="$(cpu "$NATS_PID")" 'BEGIN{print b-a}' >"$OUT/cpu-natsd.s"
fi
python3 - "$OUT" "$(IFS=; echo "${NAMES[*]}")" <<'PY'
import json, os, sys
out, names = sys.argv[1], sys.argv[2]
print("\nper node (stats after the run; CPU seconds during the bench; peak RSS):")
print(f"{'node':5}{'deliveries':>12}{'fromStream':>12}{'published':>11}{'slowCons':>10}{'natsSlow':>9}{'disc':>6}{'dups':>6}{'peerHolds':>10}{'headSeq':>14}{'CPU s':>8}{'peakRSS MiB':>13}")
for n in names:
    try:
        s = json.load(open(os.path.join(out, f"stats-{n}.json")))
    except Exception as e:
        print(f"{n:5} no stats ({e})"); continue
    c = s.get("cluster") or {}
    rss = int(open(os.path.join(out, f"rss-{n}.kb")).read().strip() or 0) / 1024
    cpu = float(open(os.path.join(out, f"cpu-{n}.s")).read().strip() or 0)
    print(f"{n:5}{s['deliveries']:>12}{c.get('delivered',0):>12}{c.get('published',0):>11}{s['slowConsumers']:>10}"
          f"{c.get('slowConsumer',0):>9}{c.get('disconnects',0):>6}{c.get('duplicates',0):>6}{c.get('peerHolds',0):>10}{s['headSeq']:>14}{cpu:>8.1f}{rss:>13.0f}")
p = os.path.join(out, "cpu-natsd.s")
if os.path.exists(p):
    print(f"natsd CPU seconds during the bench: {float(open(p).read().strip() or 0):.1f}")
PY
exit $rc
