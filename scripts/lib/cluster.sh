# Shared by scripts/cluster-bench.sh, presence.sh and rolling.sh (source it,
# do not run it): builds natsd, the broker and the bench into $OUT and
# writes the brokers' config; starts natsd unless NATS_URL names a running
# nats-server; waits for a server to answer; stops the processes in PIDS.
#
# Uses: OUT, KEY, PORT, NATS_PORT, BENCH (a prebuilt cmd/bench to use
# instead of building this tree's), NATS_URL; messages start with the
# script's name.
# shellcheck shell=bash

tag=$(basename "$0" .sh)

# build_cluster: a fresh $OUT/js (natsd's store), the three binaries and
# $OUT/broker.json.
build_cluster() {
  rm -rf "$OUT/js"
  mkdir -p "$OUT"
  echo "$tag: building into $OUT" >&2
  go build -o "$OUT/natsd" ./cmd/natsd
  go build -o "$OUT/broker" ./cmd/broker
  if [[ -n "${BENCH:-}" ]]; then cp "$BENCH" "$OUT/bench"; else go build -o "$OUT/bench" ./cmd/bench; fi
  cat > "$OUT/broker.json" <<JSON
{"websocket":{"port":$PORT,"approvedSocketDomains":["localhost"],"socketApiKey":"$KEY"}}
JSON
}

# PIDS are the processes stop_pids ends (trap stop_pids EXIT).
PIDS=()
# shellcheck disable=SC2317 # called by the EXIT trap
stop_pids() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# wait_http URL PID NAME [SECONDS]: until URL answers (SECONDS, 10, at
# most); exits the script if process PID (NAME, logging to $OUT/NAME.log)
# ends first.
wait_http() {
  local secs=${4:-10}
  for _ in $(seq $(( secs * 10 ))); do
    if curl -s -o /dev/null "$1"; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "$tag: $3 exited at start (see $OUT/$3.log)" >&2; exit 1; }
    sleep 0.1
  done
  echo "$tag: $3 not up after ${secs}s" >&2
  exit 1
}

# start_natsd: unless NATS_URL is set, natsd on NATS_PORT with its store
# in $OUT/js, added to PIDS; sets NATS_URL, and NATS_PID (empty if NATS_URL
# was given), and waits (10 s at most) for its port to accept.
start_natsd() {
  NATS_PID=
  if [[ -n "${NATS_URL:-}" ]]; then return 0; fi
  NATS_URL=nats://127.0.0.1:$NATS_PORT
  "$OUT/natsd" -addr "127.0.0.1:$NATS_PORT" -store "$OUT/js" >"$OUT/natsd.log" 2>&1 &
  NATS_PID=$!
  PIDS+=("$NATS_PID")
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null; then return 0; fi
    kill -0 "$NATS_PID" 2>/dev/null || { echo "$tag: natsd exited at start (see $OUT/natsd.log)" >&2; exit 1; }
    sleep 0.1
  done
}
