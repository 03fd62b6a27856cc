#!/usr/bin/env bash
# Presence across a cluster (issue #18): starts cmd/natsd (an embedded
# nats-server with JetStream; or NATS_URL to use a running one) and NODES
# brokers with -nats and an HS256 JWT secret (a random one, in a file),
# then "cmd/bench presence": N connections spread round robin over the
# nodes, each with a JWT whose sub is one of USERS usernames (round
# robin, exp 1 h); once every node counts them all, CALLS calls of
# GET /api/online and CALLS of GET /api/online?username= on each node's
# admin listener, one at a time, each answer checked (users, connections,
# the first page of usernames; the user's connections). Prints the time
# per call (p50, p99, max; per node too), each broker's and natsd's CPU
# during the calls less their idle CPU in as long, per call, and their
# RSS; stops everything. Exit status: the bench's (1 unless every
# connection was counted and every answer right). Everything is kept
# under $OUT (presence.json, the logs).
#
# Env: N (10000 connections: one process may hold 20,000 files here, so
#      the harness holds them all and the brokers are processes of their
#      own), USERS (2000), CALLS (50), NODES (3), IDLE (2s idle-CPU
#      window), TIMEOUT (hard bound on the bench, 5m), OUT, BROKER_FLAGS
#      (extra flags for every broker), NATS_URL (skip natsd), PORT (18380:
#      nodes on PORT..PORT+2), ADMIN_PORT (18390..+2), NATS_PORT (14422),
#      BENCH (a prebuilt cmd/bench to use instead of building this tree's).
#      QUICK=1: 1,000 connections of 200 users, 10 calls (a smoke test of
#      the script, not a measurement).
# About 30 s at the defaults (10,000 handshakes, the settle, the idle
# window, 300 calls) plus the build. CPU comes from /proc/PID/stat in
# 10 ms ticks, so a phase's per-call CPU is good to about 10 ms / (CALLS x
# NODES) per process; raise CALLS (e.g. 500) for finer figures.
# Loopback only: everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-${TMPDIR:-/tmp}/presence}
KEY=${KEY:-bench-key}
if [[ "${QUICK:-0}" == 1 ]]; then
  N=${N:-1000}; USERS=${USERS:-200}; CALLS=${CALLS:-10}
else
  N=${N:-10000}; USERS=${USERS:-2000}; CALLS=${CALLS:-50}
fi
NODES=${NODES:-3}
IDLE=${IDLE:-2s}
TIMEOUT=${TIMEOUT:-5m}
PORT=${PORT:-18380}
ADMIN_PORT=${ADMIN_PORT:-18390}
NATS_PORT=${NATS_PORT:-14422}
BROKER_FLAGS=${BROKER_FLAGS:-}

if (( NODES < 1 || NODES > 3 )); then echo "presence: NODES=$NODES: 1 to 3" >&2; exit 2; fi
ulimit -n "$(ulimit -Hn)"
# shellcheck source=scripts/lib/cluster.sh
source "$(dirname "$0")/lib/cluster.sh"
build_cluster
# A fresh secret each run, in a file only we can read (not on any command line).
(umask 077; head -c 32 /dev/urandom | base64 >"$OUT/jwt-secret")

trap stop_pids EXIT
start_natsd

NAMES=(A B C)
NAMES=("${NAMES[@]:0:NODES}")
ADDRS=() ADMINS=() PIDLIST=()
for i in "${!NAMES[@]}"; do
  name=${NAMES[$i]}
  # shellcheck disable=SC2086 # BROKER_FLAGS is a word list by design
  "$OUT/broker" -config "$OUT/broker.json" -listen "127.0.0.1:$((PORT + i))" \
    -admin-addr "127.0.0.1:$((ADMIN_PORT + i))" -nats "$NATS_URL" -nats-name "$name" \
    -jwt-secret-file "$OUT/jwt-secret" -log-level warn $BROKER_FLAGS >"$OUT/broker-$name.log" 2>&1 &
  PIDS+=($!)
  PIDLIST+=("$name=$!")
  ADDRS+=("127.0.0.1:$((PORT + i))")
  ADMINS+=("127.0.0.1:$((ADMIN_PORT + i))")
  wait_http "http://127.0.0.1:$((ADMIN_PORT + i))/healthz" "$!" "broker-$name"
done
if [[ -n "$NATS_PID" ]]; then PIDLIST+=("natsd=$NATS_PID"); fi

join() { local IFS=,; echo "$*"; }
echo "presence: $N connections of $USERS users over ${NAMES[*]}, $CALLS calls of each kind per node" >&2
set +e
timeout "$TIMEOUT" "$OUT/bench" presence -n "$N" -users "$USERS" -calls "$CALLS" -idle "$IDLE" -timeout "$TIMEOUT" \
  -addr "$(join "${ADDRS[@]}")" -admin "$(join "${ADMINS[@]}")" -key "$KEY" \
  -jwt-secret-file "$OUT/jwt-secret" -pids "$(join "${PIDLIST[@]}")" -json "$OUT/presence.json"
rc=$?
set -e
for i in "${!NAMES[@]}"; do
  curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$((ADMIN_PORT + i))/stats" >"$OUT/stats-${NAMES[$i]}.json" || true
done
echo "presence: result in $OUT/presence.json, brokers' /stats in $OUT/stats-*.json" >&2
exit $rc
