#!/usr/bin/env bash
# API overhead (10-target request minus its slowest trace, median of 20) and the server's
# memory idle and under 50 concurrent clients, on a network-namespace path. Needs root.
#
#   bench/api.sh                 # defaults
#   bench/api.sh --runs 50       # extra args go to api-bench (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "api.sh: must run as root (network namespaces, raw sockets)" >&2
    exit 1
fi
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release -p edgetrace -p edgetrace-testnet --bin edgetrace --bin api-bench
exec "$target_dir/release/api-bench" --edgetrace "$target_dir/release/edgetrace" "$@"
