#!/usr/bin/env bash
# Runs the whole edgetrace test suite on a fresh Debian machine: installs the packages the tests
# need when missing, then formatting, clippy, every test (including the network-namespace
# traceroute tests, which need root) and a short fuzzing run of the packet parser.
#
#   sudo scripts/test.sh            # everything
#   FUZZ_SECONDS=0 scripts/test.sh  # skip the fuzzing smoke run
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: the namespace tests need root (ip netns, raw sockets); run it with sudo" >&2
  exit 1
fi

# command -> Debian package
declare -A packages=(
  [ip]=iproute2 [iptables]=iptables [ip6tables]=iptables [capsh]=libcap2-bin
  [ping]=iputils-ping [cc]=gcc [nats-server]=nats-server [psql]=postgresql-client
  [curl]=curl [openssl]=openssl [traceroute]=traceroute
)
missing=()
for cmd in "${!packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${packages[$cmd]}")
done
# The end-to-end API tests run Cloudflare's Python SDK and Schemathesis from a venv.
if ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3 python3-venv python3-pip)
elif ! python3 -m venv --help >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
# The PostgreSQL server (tests run a throwaway cluster of it, below).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u)
fi

cleanup() {
  # Namespaces the tests create are all named et-*; a killed run may leave some behind.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^et-' || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
  done
}
# A throwaway PostgreSQL cluster for the scale-out tests (two `serve` replicas on one
# database): trust authentication on 127.0.0.1 and a private socket directory, stopped and
# deleted on exit. The tests read its URL from EDGETRACE_TEST_POSTGRES (and fail under CI=true
# without it).
pg_dir=""
stop_postgres() {
  if [ -n "$pg_dir" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}
start_postgres() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  pg_dir=$(mktemp -d /tmp/edgetrace-pg.XXXXXX)
  chown postgres "$pg_dir"
  local port=54329
  while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  runuser -u postgres -- "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U postgres >"$pg_dir/initdb.log" 2>&1
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  export EDGETRACE_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
  echo "==> PostgreSQL for the tests at $EDGETRACE_TEST_POSTGRES"
}
trap 'stop_postgres; cleanup' EXIT
cleanup
start_postgres

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
  fi
  # cargo-fuzz needs nightly-only sanitizer flags; RUSTC_BOOTSTRAP lets the stable toolchain
  # accept them (there is no other toolchain on these machines).
  for target in $(cd fuzz && cargo fuzz list 2>/dev/null || echo parse_reply); do
    echo "==> fuzzing $target for ${FUZZ_SECONDS}s"
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 2>&1 | tail -n 3)
  done
fi

leftover=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -c '^et-' || true)
if [ "$leftover" -ne 0 ]; then
  echo "tests left $leftover network namespace(s) behind" >&2
  exit 1
fi
echo "==> all checks passed"
