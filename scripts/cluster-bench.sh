#!/usr/bin/env bash
# Fan-out across a 3-node broker cluster joined over NATS JetStream:
# starts cmd/natsd (an embedded nats-server with JetStream; or NATS_URL to
# use a running nats-server), three brokers with -nats, then one fanout
# run of cmd/bench whose subscribers are spread over the three nodes and
# whose events are published on node A only, so every delivery on B and C
# crossed NATS. Prints the bench summary and, per node, connections,
# deliveries, events taken from the stream, slow consumers, NATS counters
# and RSS; everything is kept under $OUT.
#
# Env: N (48000 subscribers), DURATION (20s), RATE (100 events/s; 0 = as
#      fast as accepted), BATCH (1), SIZE (100 bytes), PROCS (client
#      processes, default one per 15,000 sockets: a process here holds
#      about 20,000 files), TIMEOUT (hard bound on the bench, 5m), OUT,
#      BROKER_FLAGS (extra flags for every broker), NATS_URL (skip natsd),
#      PORT (18180: nodes on PORT..PORT+2), ADMIN_PORT (18190..+2),
#      NATS_PORT (14222), BENCH (a prebuilt cmd/bench to use instead of
#      building this tree's).
# Needs the multi-node -addr of cmd/bench (a comma-separated list; branch
# "bench"). With an older cmd/bench the subscribers all go to node B
# (still published on A) and the script says so.
# Loopback only: everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/cluster-bench}
KEY=${KEY:-bench-key}
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
rm -rf "$OUT/js"
mkdir -p "$OUT"
echo "cluster-bench: building into $OUT" >&2
go build -o "$OUT/natsd" ./cmd/natsd
go build -o "$OUT/broker" ./cmd/broker
if [[ -n "${BENCH:-}" ]]; then cp "$BENCH" "$OUT/bench"; else go build -o "$OUT/bench" ./cmd/bench; fi
cat > "$OUT/broker.json" <<JSON
{"websocket":{"port":$PORT,"approvedSocketDomains":["localhost"],"socketApiKey":"$KEY"}}
JSON

PIDS=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_http() { # $1 url, $2 pid, $3 name
  for _ in $(seq 100); do
    if curl -s -o /dev/null "$1"; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "cluster-bench: $3 exited at start (see $OUT/$3.log)" >&2; exit 1; }
    sleep 0.1
  done
  echo "cluster-bench: $3 not up after 10s" >&2
  exit 1
}

if [[ -z "${NATS_URL:-}" ]]; then
  NATS_URL=nats://127.0.0.1:$NATS_PORT
  "$OUT/natsd" -addr "127.0.0.1:$NATS_PORT" -store "$OUT/js" >"$OUT/natsd.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null; then break; fi
    sleep 0.1
  done
fi

NODES=(A B C)
ADDRS=()
BROKER_PIDS=()
for i in 0 1 2; do
  name=${NODES[$i]}
  # shellcheck disable=SC2086 # BROKER_FLAGS is a word list by design
  "$OUT/broker" -config "$OUT/broker.json" -listen "127.0.0.1:$((PORT + i))" \
    -admin-addr "127.0.0.1:$((ADMIN_PORT + i))" -nats "$NATS_URL" -log-level warn $BROKER_FLAGS \
    >"$OUT/broker-$name.log" 2>&1 &
  PIDS+=($!)
  BROKER_PIDS+=($!)
  ADDRS+=("127.0.0.1:$((PORT + i))")
  wait_http "http://127.0.0.1:$((ADMIN_PORT + i))/healthz" "$!" "broker-$name"
done

addr=$(IFS=,; echo "${ADDRS[*]}")
help=$("$OUT/bench" -h 2>&1 || true) # -h exits non-zero
if [[ "$help" != *comma-separated* ]]; then
  echo "cluster-bench: this cmd/bench takes one -addr: subscribers all on node B (merge branch bench for all three)" >&2
  addr=${ADDRS[1]}
fi
echo "cluster-bench: fanout -n $N over $addr, publishing on node A, $PROCS client processes" >&2
set +e
timeout "$TIMEOUT" "$OUT/bench" fanout -n "$N" -procs "$PROCS" -addr "$addr" -admin "127.0.0.1:$ADMIN_PORT" \
  -key "$KEY" -size "$SIZE" -rate "$RATE" -batch "$BATCH" -duration "$DURATION" -timeout "$TIMEOUT" \
  -json "$OUT/fanout.json"
rc=$?
set -e

for i in 0 1 2; do
  curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$((ADMIN_PORT + i))/stats" >"$OUT/stats-${NODES[$i]}.json" || true
  grep VmHWM "/proc/${BROKER_PIDS[$i]}/status" | awk '{print $2}' >"$OUT/rss-${NODES[$i]}.kb" || echo 0 >"$OUT/rss-${NODES[$i]}.kb"
done
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
print("\nper node (stats after the run; peak RSS):")
print(f"{'node':5}{'deliveries':>12}{'fromStream':>12}{'published':>11}{'slowCons':>10}{'natsSlow':>9}{'disc':>6}{'dups':>6}{'headSeq':>14}{'peakRSS MiB':>13}")
for n in "ABC":
    try:
        s = json.load(open(os.path.join(out, f"stats-{n}.json")))
    except Exception as e:
        print(f"{n:5} no stats ({e})"); continue
    c = s.get("cluster") or {}
    rss = int(open(os.path.join(out, f"rss-{n}.kb")).read().strip() or 0) / 1024
    print(f"{n:5}{s['deliveries']:>12}{c.get('delivered',0):>12}{c.get('published',0):>11}{s['slowConsumers']:>10}"
          f"{c.get('slowConsumer',0):>9}{c.get('disconnects',0):>6}{c.get('duplicates',0):>6}{s['headSeq']:>14}{rss:>13.0f}")
PY
exit $rc
