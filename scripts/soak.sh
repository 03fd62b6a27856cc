#!/usr/bin/env bash
# Churn soak: thousands of clients connect and disconnect (abruptly, politely,
# with garbage, mid-frame, mid-handshake) while events are published. Fails if a
# stable client loses or reorders an event, or goroutines, heap or RSS do not
# come back near their starting values. Loopback only; bounded by DURATION.
#
#   scripts/soak.sh             # 10 minutes
#   DURATION=2m scripts/soak.sh
#   RACE=1 scripts/soak.sh      # with the race detector (RSS check skipped)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10m}
race=()
[ "${RACE:-0}" = 1 ] && race=(-race)
# Without -race by default: the detector's shadow memory hides real RSS.
go test "${race[@]}" -run '^TestChurnSoak$' -count=1 -v -timeout 2h ./broker -soak "$DURATION"
