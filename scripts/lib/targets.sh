# Shared by scripts/bench.sh, flood.sh, majority.sh and forged.sh (source it, do not run
# it): builds the bench, the baseline and the broker into $OUT, writes the
# broker's config, and starts and stops one server at a time on loopback.
#
# Uses: OUT, PORT, ADMIN, KEY, TARGETS (may be narrowed to "baseline" if the
# broker does not build), BROKER_FLAGS, BROKER_BIN (a prebuilt broker to use
# instead of building this tree's).
# shellcheck shell=bash

me=$(basename "$0")

build_targets() {
  echo "building into $OUT" >&2
  go build -o "$OUT/bench" ./cmd/bench
  go build -o "$OUT/baseline" ./cmd/baseline
  if [[ " $TARGETS " == *" broker "* && -n "${BROKER_BIN:-}" ]]; then
    # Another build of the broker (e.g. an older commit, for a before/after
    # run on the same harness).
    cp "$BROKER_BIN" "$OUT/broker"
  elif [[ " $TARGETS " == *" broker "* ]]; then
    if ! go build -o "$OUT/broker" ./cmd/broker; then
      echo "$me: broker does not build; running the baseline only" >&2
      TARGETS=baseline
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

start_server() { # $1 = broker|baseline
  # shellcheck disable=SC2086 # BROKER_FLAGS is a word list by design
  case "$1" in
    broker) "$OUT/broker" -config "$OUT/broker.json" -port "$PORT" -admin-addr "$ADMIN" -log-level warn $BROKER_FLAGS \
              >>"$OUT/broker.log" 2>&1 & ;;
    baseline) "$OUT/baseline" -port "$PORT" -admin-addr "$ADMIN" -key "$KEY" -origins localhost \
              >>"$OUT/baseline.log" 2>&1 & ;;
  esac
  SERVER_PID=$!
  for _ in $(seq 100); do
    if curl -sf "http://$ADMIN/healthz" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "$me: $1 exited at start (see $OUT/$1.log)" >&2; return 1; }
    sleep 0.1
  done
  echo "$me: $1 not healthy after 10s" >&2
  return 1
}
