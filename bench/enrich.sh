#!/usr/bin/env bash
# Trace time with and without enrichment (reverse DNS from a server that answers, ASN from
# ip2asn files) on the same network-namespace path: medians of whole `edgetrace traceroute`
# runs, interleaved, on veth links and with a 5 ms link. Release build. Needs root.
#
#   bench/enrich.sh              # 31 runs of each
#   bench/enrich.sh 101          # more runs
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    echo "enrich.sh: must run as root (network namespaces, raw sockets)" >&2
    exit 1
fi
EDGETRACE_ENRICH_RUNS="${1:-31}" cargo test --release -p edgetrace --test enrich \
    enrichment_adds_little_to_a_trace -- --exact --nocapture 2>&1 | grep -E '^enrichment figure|test result'
