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
# (extra peer.js flags, e.g. --deflate), NODE_PEER (the peer script);
# run_suite (a suite of cases on each target) also RUNS, CASES and
# CASES_ONLY.
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

# selected NAME: whether case NAME is one of CASES_ONLY (space-separated
# case names or prefixes; empty selects every case).
selected() {
  [[ -z "${CASES_ONLY:-}" ]] && return 0
  local c
  for c in $CASES_ONLY; do [[ "$1" == "$c"* ]] && return 0; done
  return 1
}

# rotate ARRAY RUN ITEM...: sets ARRAY to the items rotated for round RUN
# (1, 2, ...): round r starts with item r-1, so over as many rounds as
# there are items each takes each slot (two items swap every other round).
rotate() {
  local -n into=$1
  local run=$2 i
  shift 2
  into=()
  for (( i = 0; i < $#; i++ )); do
    into+=("${@:$(( (i + run - 1) % $# + 1 )):1}")
  done
}

# run_suite MODE: RUNS times, every selected case of CASES ("name|bench
# arguments") on each target of TARGETS (their order rotated each run), a
# fresh server for each run, the JSON in $OUT/json/NAME-TARGET-RUN.json.
# MODE text keeps the bench's printed summary beside it (.txt, the run
# labelled with its target); MODE quiet has the bench print nothing.
run_suite() {
  local mode=$1 run c name args target json
  local -a order common
  for run in $(seq "$RUNS"); do
    # shellcheck disable=SC2086 # TARGETS is a word list by design
    rotate order "$run" $TARGETS
    for c in "${CASES[@]}"; do
      name=${c%%|*}; args=${c#*|}
      selected "$name" || continue
      for target in "${order[@]}"; do
        json="$OUT/json/$name-$target-$run.json"
        echo "run $run/$RUNS: $name on $target" >&2
        start_server "$target" || continue
        common=(-addr "127.0.0.1:$PORT" -admin "$ADMIN" -key "$KEY" -pid "$SERVER_PID" -json "$json")
        # Progress goes to stderr (a line per phase and every 5 s).
        # shellcheck disable=SC2086 # args is a word list by design
        if [[ "$mode" == text ]]; then
          "$OUT/bench" $args "${common[@]}" -label "$target" >"${json%.json}.txt" \
            || echo "$me: $name on $target failed (see $json)" >&2
        else
          "$OUT/bench" $args "${common[@]}" -quiet || echo "$me: $name on $target failed (see $json)" >&2
        fi
        stop_server
      done
    done
  done
}

# stalled_fraction S R: the -stalled fraction that makes exactly S of S+R
# subscribers never read. The harness marks connection i stalled when
# int((i+1)·f) > int(i·f), which over i = 0..n-1 gives int(n·f) in all;
# (S + ½)/n puts n·f half-way between S and S+1, so float rounding cannot
# tip it either way. Checked here (and majority.sh checks each run's
# readers again).
stalled_fraction() {
  awk -v s="$1" -v r="$2" -v me="$me" 'BEGIN {
    n = s + r; f = sprintf("%.12f", (s + 0.5) / n)
    if (int(n * f) != s) { print me ": fraction " f " gives " int(n * f) " of " n > "/dev/stderr"; exit 1 }
    print f }'
}
