#!/usr/bin/env bash
# Benchmark edgetrace's traceroute against Debian traceroute, mtr, scamper and
# (if on PATH) trippy on network-namespace paths built by edgetrace-testnet.
# Needs root. All traffic stays inside namespaces the bench creates.
#
#   bench/peers.sh                 # all scenarios, IPv4
#   bench/peers.sh -6              # IPv6
#   bench/peers.sh --scenarios 1,3 # extra args go to peer-bench (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "peers.sh: must run as root (network namespaces, iptables)" >&2
    exit 1
fi

# Install only what is missing.
need=()
command -v traceroute >/dev/null || need+=(traceroute)
command -v mtr >/dev/null || need+=(mtr-tiny)
command -v scamper >/dev/null || need+=(scamper)
command -v ip >/dev/null || need+=(iproute2)
{ command -v iptables >/dev/null && command -v ip6tables >/dev/null; } || need+=(iptables)
command -v ping >/dev/null || need+=(iputils-ping)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
fi
if command -v trip >/dev/null; then
    echo "trippy: using $(command -v trip)"
else
    echo "trippy: 'trip' not on PATH, skipped"
fi

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release -p edgetrace
cargo build --release -p edgetrace-testnet --bin peer-bench

exec "$target_dir/release/peer-bench" --edgetrace "$target_dir/release/edgetrace" "$@"
