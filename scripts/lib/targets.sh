# Shared by scripts/bench.sh, flood.sh, majority.sh, forged.sh, compression.sh
# and everyday.sh (source it, do not run it): builds the bench, the
# reference peers and the broker into $OUT, writes the broker's config, and
# starts and stops one server at a time on loopback.
#
# Targets (names in TARGETS):
#   broker    this tree's cmd/broker (or BROKER_BIN)
#   baseline  cmd/baseline: gorilla, a reader and a writer goroutine per
#             connection (bench/baseline)
#   raw       cmd/baseline -impl raw: one write(2) per socket per event and
#             nothing else (bench/rawpeer), the floor
#   node      node interop/node/peer.js: node + ws, ws's broadcast loop;
#             needs node and interop/node/node_modules (npm ci --prefix
#             interop/node), else it is left out with a message
#
# Uses: OUT, PORT, ADMIN, KEY, TARGETS (narrowed when a target cannot run:
# the broker does not build, node is missing), BROKER_FLAGS, BROKER_BIN (a
# prebuilt broker to use instead of building this tree's), NODE_FLAGS
# (extra peer.js flags, e.g. --deflate), NODE_PEER (the peer script).
# Pick PORT and ADMIN below 32768: above, a client's ephemeral port can
# hold them. start_server refuses to start when something already answers
# on ADMIN, and fails when its own server exited (say, on a port in use)
# even if another server answered the health check.
# shellcheck shell=bash

me=$(basename "$0")
NODE_PEER=${NODE_PEER:-$PWD/interop/node/peer.js}

# drop_target NAME: takes NAME out of TARGETS.
drop_target() {
  local t kept=()
  for t in $TARGETS; do [[ $t == "$1" ]] || kept+=("$t"); done
  TARGETS=${kept[*]}
}

# node_missing prints why the node peer cannot run, or nothing.
node_missing() {
  if ! command -v node >/dev/null 2>&1; then
    echo "node is not on PATH (apt-get install nodejs)"
  elif [[ ! -f "$(dirname "$NODE_PEER")/node_modules/ws/package.json" ]]; then
    echo "the ws package is not installed (npm ci --prefix $(dirname "$NODE_PEER"))"
  fi
}

build_targets() {
  echo "building into $OUT" >&2
  go build -o "$OUT/bench" ./cmd/bench
  go build -o "$OUT/baseline" ./cmd/baseline # also the raw peer (-impl raw)
  if [[ " $TARGETS " == *" broker "* && -n "${BROKER_BIN:-}" ]]; then
    # Another build of the broker (e.g. an older commit, for a before/after
    # run on the same harness).
    cp "$BROKER_BIN" "$OUT/broker"
  elif [[ " $TARGETS " == *" broker "* ]]; then
    if ! go build -o "$OUT/broker" ./cmd/broker; then
      echo "$me: broker does not build; running without it" >&2
      drop_target broker
    fi
  fi
  if [[ " $TARGETS " == *" node "* ]]; then
    local why
    why=$(node_missing)
    if [[ -n "$why" ]]; then
      echo "$me: skipping the node target: $why" >&2
      drop_target node
    fi
  fi
  cat > "$OUT/broker.json" <<JSON
{"websocket":{"port":$PORT,"approvedSocketDomains":["localhost"],"socketApiKey":"$KEY"}}
JSON
}

SERVER_PID=
stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
trap stop_server EXIT

start_server() { # $1 = broker|baseline|raw|node
  # Another server on the port (another run's, another user's) would
  # answer the health check and be measured instead of ours.
  if curl -sf -m 1 "http://$ADMIN/healthz" >/dev/null 2>&1; then
    echo "$me: something already answers on $ADMIN: not starting $1 (choose PORT and ADMIN)" >&2
    return 1
  fi
  # shellcheck disable=SC2086 # BROKER_FLAGS and NODE_FLAGS are word lists by design
  case "$1" in
    broker) "$OUT/broker" -config "$OUT/broker.json" -port "$PORT" -admin-addr "$ADMIN" -log-level warn $BROKER_FLAGS \
              >>"$OUT/broker.log" 2>&1 & ;;
    baseline) "$OUT/baseline" -port "$PORT" -admin-addr "$ADMIN" -key "$KEY" -origins localhost \
              >>"$OUT/baseline.log" 2>&1 & ;;
    raw) "$OUT/baseline" -impl raw -port "$PORT" -admin-addr "$ADMIN" -key "$KEY" -origins localhost \
              >>"$OUT/raw.log" 2>&1 & ;;
    node)
      local why
      why=$(node_missing)
      if [[ -n "$why" ]]; then echo "$me: skipping node: $why" >&2; return 1; fi
      node "$NODE_PEER" --port "$PORT" --admin "$ADMIN" --key "$KEY" --origins localhost $NODE_FLAGS \
              >>"$OUT/node.log" 2>&1 & ;;
    *) echo "$me: unknown target $1 (want broker, baseline, raw or node)" >&2; return 1 ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 100); do
    if curl -sf "http://$ADMIN/healthz" >/dev/null 2>&1; then
      sleep 0.2 # one that failed to bind may still be on its way out
      kill -0 "$SERVER_PID" 2>/dev/null && return 0
      echo "$me: $1 exited at start (see $OUT/$1.log)" >&2
      return 1
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "$me: $1 exited at start (see $OUT/$1.log)" >&2; return 1; }
    sleep 0.1
  done
  echo "$me: $1 not healthy after 10s" >&2
  return 1
}
