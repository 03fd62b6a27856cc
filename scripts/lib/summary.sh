# Shared by scripts/bench.sh, flood.sh, majority.sh, forged.sh,
# compression.sh and everyday.sh (source it, do not run it): summarize
# runs a script's summary, a Python program on its standard input, with
# the arguments given and scripts/lib/summary.py importable.
# shellcheck shell=bash

summary_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

summarize() {
  PYTHONPATH="$summary_lib${PYTHONPATH:+:$PYTHONPATH}" python3 - "$@"
}
