#!/usr/bin/env bash
# Rolling restart under live traffic, with resuming clients: starts
# cmd/natsd (an embedded nats-server with JetStream) and three brokers
# with -nats (A, B, C), runs "cmd/bench resume" (N clients that opt in
# with ?seq=1 and, whenever their connection ends, resume on a node chosen
# at random with ?since=<last seq>&epoch=<epoch>, and that also leave on
# their own about every CHURN and come back up to CHURN/2 later; one
# publisher posting numbered events round robin over the nodes), then
# restarts A, B and C in turn
# (SIGTERM, wait for the exit, start again, wait for /healthz) and lets a
# fourth node, D, join late. The clients know D's address from the start
# (they skip it while it is down). At the end it prints what the clients
# saw: events missing without a gap event (a silent skip), duplicates,
# gap events, the connect rate per node and second (connects.tsv, and
# its peak), and per node the resumes, resume gaps and history read back
# at start. Exit status: the bench's (1 if anything was missing or
# duplicated). Everything is kept under $OUT.
#
# Env: N (200 clients), RATE (50 events/s), CHURN (4s), PAUSE (3s between restarts),
#      SETTLE (3s of traffic before the first restart), TIMEOUT (hard bound
#      on the whole run, 180 seconds), OUT, PORT (18280: nodes on PORT..PORT+3),
#      ADMIN_PORT (18290..+3), NATS_PORT (14322), BROKER_FLAGS (extra flags
#      for every broker), BENCH (a prebuilt cmd/bench to use instead of
#      building this tree's).
# Loopback only: everything listens on 127.0.0.1. Keep N small: this
# checks correctness, not load.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/rolling}
KEY=${KEY:-rolling-key}
N=${N:-200}
RATE=${RATE:-50}
CHURN=${CHURN:-4s}
PAUSE=${PAUSE:-3}
SETTLE=${SETTLE:-3}
TIMEOUT=${TIMEOUT:-180}
PORT=${PORT:-18280}
ADMIN_PORT=${ADMIN_PORT:-18290}
NATS_PORT=${NATS_PORT:-14322}
BROKER_FLAGS=${BROKER_FLAGS:-}
NAMES=(A B C D)

# shellcheck source=scripts/lib/cluster.sh
source "$(dirname "$0")/lib/cluster.sh"
build_cluster

declare -A PID
NATS_PID=
BENCH_PID=
SAMPLER_PID=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  for p in "${PID[@]}" $BENCH_PID $SAMPLER_PID $NATS_PID; do kill "$p" 2>/dev/null || true; done
  for p in "${PID[@]}" $BENCH_PID $SAMPLER_PID $NATS_PID; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# The whole run is bounded: past TIMEOUT seconds the script stops everything.
DEADLINE=$(( $(date +%s) + TIMEOUT ))
check_deadline() {
  if (( $(date +%s) > DEADLINE )); then echo "rolling: past TIMEOUT=$TIMEOUT, stopping" >&2; exit 2; fi
}

index() { # node name -> 0..3
  case "$1" in A) echo 0 ;; B) echo 1 ;; C) echo 2 ;; D) echo 3 ;; esac
}

start_node() { # $1 name
  local name=$1 i
  i=$(index "$name")
  # shellcheck disable=SC2086 # BROKER_FLAGS is a word list by design
  "$OUT/broker" -config "$OUT/broker.json" -listen "127.0.0.1:$((PORT + i))" \
    -admin-addr "127.0.0.1:$((ADMIN_PORT + i))" -nats "nats://127.0.0.1:$NATS_PORT" -nats-name "$name" \
    -shutdown-timeout 5s -log-level warn $BROKER_FLAGS >>"$OUT/broker-$name.log" 2>&1 &
  PID[$name]=$!
  wait_http "http://127.0.0.1:$((ADMIN_PORT + i))/healthz" "${PID[$name]}" "broker-$name" 15
}

stop_node() { # $1 name: SIGTERM, then wait for the drain to finish
  local name=$1
  kill -TERM "${PID[$name]}" 2>/dev/null || true
  wait "${PID[$name]}" 2>/dev/null || true
  unset "PID[$name]"
}

"$OUT/natsd" -addr "127.0.0.1:$NATS_PORT" -store "$OUT/js" >"$OUT/natsd.log" 2>&1 &
NATS_PID=$!
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null; then break; fi
  sleep 0.1
done
for name in A B C; do start_node "$name"; done

addrs="" admins=""
for i in 0 1 2 3; do
  addrs+="${addrs:+,}127.0.0.1:$((PORT + i))"
  admins+="${admins:+,}127.0.0.1:$((ADMIN_PORT + i))"
done
# Publishing lasts the whole choreography: settle, three restarts, the
# late join, and a last pause.
duration=$(( SETTLE + 4 * (PAUSE + 8) + PAUSE ))
echo "rolling: $N resuming clients over A,B,C (+D later), $RATE events/s for ${duration}s" >&2
timeout "$TIMEOUT" "$OUT/bench" resume -n "$N" -addr "$addrs" -admin "$admins" -key "$KEY" -rate "$RATE" -churn "$CHURN" \
  -duration "${duration}s" -drain 20s -json "$OUT/resume.json" >"$OUT/resume.txt" 2>"$OUT/resume.log" &
BENCH_PID=$!

# The connect rate each node sees: every 0.25 s, each node's /stats
# "accepted" (upgrades completed) and "refusedRate" (503 for
# -max-accept-rate), into connects.tsv (unix seconds, node, accepted,
# refusedRate); summarised per node and second at the end. A node that is
# down answers nothing and is skipped.
sample_connects() {
  while kill -0 "$BENCH_PID" 2>/dev/null; do
    for n in "${NAMES[@]}"; do
      i=$(index "$n")
      if s=$(curl -s -m 0.2 -H "Authorization: Bearer $KEY" "http://127.0.0.1:$((ADMIN_PORT + i))/stats") &&
        [[ $s =~ \"accepted\":([0-9]+) ]]; then
        acc=${BASH_REMATCH[1]} ref=0
        [[ $s =~ \"refusedRate\":([0-9]+) ]] && ref=${BASH_REMATCH[1]}
        printf '%s\t%s\t%s\t%s\n' "$(date +%s.%N)" "$n" "$acc" "$ref"
      fi
    done
    sleep 0.25
  done >"$OUT/connects.tsv"
}
sample_connects &
SAMPLER_PID=$!

sleep "$SETTLE"
for name in A B C; do
  check_deadline
  echo "rolling: restarting $name" >&2
  t0=$(date +%s.%N)
  stop_node "$name"
  start_node "$name"
  echo "rolling: $name back after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s" >&2
  sleep "$PAUSE"
done
check_deadline
echo "rolling: D joins" >&2
start_node D

set +e
wait "$BENCH_PID" # bounded by timeout(1)
rc=$?
BENCH_PID=
set -e

kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=

cat "$OUT/resume.txt"
# Connects per second per node, from the samples (a restarted node's
# counter starts again at 0: its first sample after a restart counts from
# there). The peak is the busiest second of any node; with -max-accept-rate
# it should stay at or under it.
python3 - "$OUT/connects.tsv" <<'PY'
import collections, sys
last, per = {}, collections.defaultdict(lambda: collections.Counter())
refused = collections.Counter()
for line in open(sys.argv[1]):
    try:
        t, n, acc, ref = line.split("\t")
        t, acc, ref = float(t), int(acc), int(ref)
    except ValueError:
        continue
    pa, pr = last.get(n, (0, 0))
    if acc < pa:  # restarted
        pa, pr = 0, 0
    per[n][int(t)] += acc - pa
    refused[n] += max(ref - pr, 0)
    last[n] = (acc, ref)
if not per:
    print("connect rate: no samples"); sys.exit(0)
t0 = min(min(c) for c in per.values())
print("connect rate (upgrades completed per second, per node; curve in connects.tsv):")
for n in sorted(per):
    c = per[n]
    peak_t, peak = max(c.items(), key=lambda kv: kv[1])
    print(f"  {n}: peak {peak}/s at +{peak_t - t0}s, refused by -max-accept-rate {refused[n]}")
peak = max(max(c.values()) for c in per.values())
print(f"  peak on any node: {peak}/s")
PY
echo "per node (stats at the end):"
printf '%-5s%10s%12s%10s%14s%15s%8s\n' node resumes resumeGaps filled streamResets slowConsumers conns
for name in "${NAMES[@]}"; do
  i=$(index "$name")
  if s=$(curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$((ADMIN_PORT + i))/stats"); then
    echo "$s" >"$OUT/stats-$name.json"
    python3 - "$name" "$s" <<'PY'
import json, sys
n, s = sys.argv[1], json.loads(sys.argv[2])
c = s.get("cluster") or {}
print(f"{n:5}{s.get('resumes',0):>10}{s.get('resumeGaps',0):>12}{c.get('filled',0):>10}{c.get('streamResets',0):>14}{s.get('slowConsumers',0):>15}{s.get('connections',0):>8}")
PY
  else
    echo "$name   no stats"
  fi
done
exit $rc
