#!/usr/bin/env bash
# Linux host settings for a broker holding many sockets. Only ever raises
# limits (a value already at or above the target is left alone), prints each
# change, and is idempotent: a second run changes nothing. The result is also
# written to /etc/sysctl.d/90-broker.conf and /etc/security/limits.d/90-broker.conf
# so it survives a reboot (the systemd unit sets its own LimitNOFILE).
#
#   sudo scripts/tune-linux.sh            # apply and persist
#   scripts/tune-linux.sh --dry-run       # print what would change, touch nothing
#
# Environment: NOFILE (default 1048576) per-process file limit;
# BROKER_USER (default broker) the user limits.d applies to;
# SYSCTL_FILE, LIMITS_FILE to write the persistent settings elsewhere.
set -euo pipefail

dry=0
case "${1:-}" in
  --dry-run|-n) dry=1 ;;
  "") ;;
  -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
if [ "$dry" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "tune-linux.sh: needs root to apply (or use --dry-run)" >&2
  exit 1
fi

NOFILE=${NOFILE:-1048576}
BROKER_USER=${BROKER_USER:-broker}
SYSCTL_FILE=${SYSCTL_FILE:-/etc/sysctl.d/90-broker.conf}
LIMITS_FILE=${LIMITS_FILE:-/etc/security/limits.d/90-broker.conf}
changes=0
persist=()

# TCP memory (pages): 1/16, 1/8 and 1/4 of RAM for min, pressure and max,
# above the kernel's defaults (about 1/21, 1/16 and 1/11) for a host whose
# main job is this broker.
mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
page_kb=$(( $(getconf PAGESIZE) / 1024 ))
pages=$(( mem_kb / page_kb ))
tcp_mem="$(( pages / 16 )) $(( pages / 8 )) $(( pages / 4 ))"

# target KEY VALUE [MODE]: raise sysctl KEY to VALUE. VALUE may have several
# fields; each field is raised on its own, except with MODE=range, where the
# first field (a lower bound) may only go down: ip_local_port_range.
target() {
  local key=$1 want=$2 mode=${3:-max} path cur new i c w
  path=/proc/sys/${key//.//}
  if [ ! -e "$path" ]; then
    echo "skip    $key (not available here: older kernel, or a network namespace)"
    return
  fi
  cur=$(tr -s ' \t' ' ' <"$path")
  read -r -a c <<<"$cur"
  read -r -a w <<<"$want"
  local out=()
  for i in "${!w[@]}"; do
    if [ "$mode" = range ] && [ "$i" = 0 ]; then
      out+=("$(( c[i] < w[i] ? c[i] : w[i] ))")
    else
      out+=("$(( c[i] > w[i] ? c[i] : w[i] ))")
    fi
  done
  new="${out[*]}"
  persist+=("$key = $new")
  if [ "$new" = "$cur" ]; then
    echo "ok      $key = $cur"
    return
  fi
  changes=$((changes + 1))
  echo "change  $key: $cur -> $new"
  if [ "$dry" = 0 ]; then
    printf '%s\n' "$new" >"$path"
  fi
}

# File descriptors: nr_open caps any process's RLIMIT_NOFILE, file-max the
# whole system.
target fs.nr_open "$NOFILE"
target fs.file-max $(( NOFILE * 2 ))
# Accept queues: bursts of reconnects after a restart or a network blip.
target net.core.somaxconn 65535
target net.ipv4.tcp_max_syn_backlog 65535
# Ephemeral ports, for load generators and proxies on the same host. Starts
# above the broker's ports (8080, 8081): an outgoing connection holding one
# would stop the broker from binding it at its next start.
target net.ipv4.ip_local_port_range "10000 65535" range
target net.ipv4.tcp_mem "$tcp_mem"
# Zero-downtime restart with -reuse-port: connections queued on the old
# process's listener move to the new one instead of being reset (5.14+).
target net.ipv4.tcp_migrate_req 1

write_file() { # write_file PATH CONTENT: only when different
  local path=$1 content=$2
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    echo "ok      $path"
    return
  fi
  changes=$((changes + 1))
  echo "write   $path"
  if [ "$dry" = 0 ]; then
    printf '%s\n' "$content" >"$path"
  else
    printf '%s\n' "$content" | sed 's/^/        | /'
  fi
}

write_file "$SYSCTL_FILE" "# Written by broker scripts/tune-linux.sh
$(printf '%s\n' "${persist[@]}")"
write_file "$LIMITS_FILE" "# Written by broker scripts/tune-linux.sh (sessions; systemd units use LimitNOFILE)
$BROKER_USER soft nofile $NOFILE
$BROKER_USER hard nofile $NOFILE"

if [ "$dry" = 1 ]; then
  echo "dry run: $changes change(s) would be made"
else
  echo "$changes change(s) made"
fi
