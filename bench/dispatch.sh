#!/usr/bin/env bash
# Dispatch overhead of `serve --nats`: a 10-target request to N colos (agents in network
# namespaces, one router each, real nats-server) against the slowest single trace in it.
#
#   sudo bench/dispatch.sh             # 1, 3, 5 and 20 colos
#   sudo COLOS=3 bench/dispatch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export COLOS=${COLOS:-1,3,5,20}
cargo test --release -p edgetrace --test colos -- --ignored --nocapture --test-threads=1 \
  dispatch_overhead_figures 2>&1 | grep -E '^ *(colos|[0-9]+ )' 
