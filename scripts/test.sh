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
  [ping]=iputils-ping [cc]=gcc
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
trap cleanup EXIT
cleanup

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
