#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script):
#   1. installs what the interop tests need, if it is missing: Chromium,
#      Node.js and npm (Debian packages, via apt-get), and interop/node's
#      node_modules (npm ci, from package-lock.json);
#   2. go vet ./..., the gofmt check, third_party/nbio's patch tests, and
#      go test -race ./...
#
# Installing is idempotent and quiet: nothing is fetched when everything is
# there, and a failed install is reported but does not stop the script, so
# the tests still run (and skip, or fail under CI=true, naming what is
# missing). SKIP_INSTALL=1 skips step 1. Extra arguments go to go test.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

log() { printf 'test.sh: %s\n' "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

# as_root runs a command as root: directly, through sudo -n, or not at all.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif have sudo; then sudo -n "$@"
  else log "not root and no sudo: cannot run $*"; return 1
  fi
}

# quietly runs a command with its output in a temporary file, shown only if
# it fails.
quietly() {
  local out rc=0
  out=$(mktemp)
  "$@" >"$out" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    log "failed ($rc): $*"; tail -n 20 "$out" >&2
  fi
  rm -f "$out"
  return "$rc"
}

install_deps() {
  local pkgs=()
  # The same names interop/chrome_test.go looks for.
  if [ -z "${CHROME_PATH:-}" ] && ! have chromium && ! have chromium-browser \
     && ! have google-chrome && ! have google-chrome-stable && ! have headless-shell; then
    pkgs+=(chromium)
  fi
  have node || have nodejs || pkgs+=(nodejs)
  # Debian's nodejs comes without npm; some other builds of it bundle npm
  # (and then conflict with Debian's npm package), so ask only when absent.
  have npm || pkgs+=(npm)
  if [ "${#pkgs[@]}" -gt 0 ]; then
    if have apt-get; then
      log "installing ${pkgs[*]} (apt-get)"
      quietly as_root apt-get update -qq || true
      quietly as_root apt-get install -y -qq --no-upgrade "${pkgs[@]}" \
        || log "could not install ${pkgs[*]}: the tests that need them will skip (or fail under CI=true)"
    else
      log "no apt-get: install ${pkgs[*]} yourself; the tests that need them will skip (or fail under CI=true)"
    fi
  fi

  # interop/node: npm ci when node_modules is missing or was installed
  # from another package-lock.json (the copy left in node_modules says).
  local dir=interop/node stamp=interop/node/node_modules/.installed-lock.json
  if have npm && ! cmp -s "$dir/package-lock.json" "$stamp" 2>/dev/null; then
    log "installing $dir/node_modules (npm ci)"
    if quietly npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error; then
      cp "$dir/package-lock.json" "$stamp"
    else
      log "npm ci failed: the Node interop tests will skip (or fail under CI=true)"
    fi
  fi
}

start=$SECONDS
[ "${SKIP_INSTALL:-0}" = 1 ] || install_deps
log "installs took $((SECONDS - start))s"

go version
go vet ./...
# shellcheck disable=SC2046 # split on purpose: the file names have no spaces
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
# The nbio patches' own tests: third_party/nbio is a module of its own, so
# ./... does not reach them (PATCHES.md).
(cd third_party/nbio && go test -race -count=1 -run 'TestPauseRead|TestSockopt' .)
go test -race "$@" ./...
