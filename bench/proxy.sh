#!/usr/bin/env bash
# Edge proxy throughput and latency with wrk on loopback, side by side with nginx (Debian) as a
# plain reverse proxy to the same origin, each with 1 and 2 worker threads (nginx:
# worker_processes). edgetrace runs a zone of 100 rules on every request: 95 firewall custom
# rules that do not match (paths, headers, cookies, `ip.src in {…}`, regex `matches`,
# `lower(…)`, `any(…[*])`, query, method, extension) and 5 that match without ending the
# request (a query rewrite, two late-transform header rewrites, two response header
# rewrites). Goal: at least 0.8× nginx's requests/s.
#
# The origin is a third nginx answering a fixed 200 (and echoing the rewritten request header
# and query back as response headers, so the check below sees what the origin received). Both
# proxies keep their upstream connections alive. Before measuring, curl checks each proxy:
# 200 from the origin, the rewrites made by the rules, and a request a rule blocks (403).
#
# CPU contention: the machine this was written on has 2 cores, and wrk, the proxy under test
# and the origin all run on them at once. With "2 threads" the proxy competes with wrk and
# the origin for the same 2 cores, so the 2-thread figures are mostly a contention
# measurement and the ratio is what matters, not the absolute figures. Nothing is pinned.
# Anything else running on the machine moves the figures a lot (the load average is shown
# first; on the shared VM this was written on, whole spells run at half speed): each
# configuration runs ROUNDS times, alternating the peers, the table shows the medians, and
# the ratio is the median of each round's ratio (the two runs of a round are next to each
# other in time). Each run also reports the proxy's CPU time per request (user + system, its
# worker processes included), read from /proc: what a request costs the proxy; and how busy
# the proxy was (its CPU time over the run's, % of one core): near 100% with 1 thread, the
# proxy was the bottleneck, not wrk or the origin. Pinning the processes to cores (taskset)
# was tried: it did not make the spells go away (the proxy busy 99% in every run, nginx's
# kernel time per request still went from 7 to 14 us between runs).
#
# Latency: wrk's percentiles are corrected for coordinated omission (a request slower than
# the average interval adds the samples a client sending at that rate would have waited), so
# a rare stall moves p99 much more than its own share of requests would; bench/trace.sh
# shows both kinds of percentile.
#
# Every port is a free one picked at random on 127.0.0.1; nginx configs and the edgetrace data
# directory live in a mktemp directory; everything started is killed and the directory
# removed on exit. Installs nginx, wrk, curl and jq with apt-get when missing (needs root
# then).
#
#   bench/proxy.sh
#   DURATION=30s CONNECTIONS=64 bench/proxy.sh     # wrk -d / -c (defaults 5s, 32)
#   THREADS="1" bench/proxy.sh                     # only 1 worker thread
#   ROUNDS=5 bench/proxy.sh                        # rounds of runs (default 5); medians shown
#   RULES=0 bench/proxy.sh                         # no firewall rules (the 5 matching ones stay)
#   RULES=none bench/proxy.sh                      # no rulesets at all: the proxy alone
#   PERF=/tmp/proxy.perf bench/proxy.sh            # perf record 3 s of each run: PERF.edgetrace, PERF.nginx
#   PERF_OPTS="--call-graph dwarf" PERF=…          # perf record options (default -g)
#   PERF_RATE="-c 20" PERF_OPTS="-e probe_…" PERF=… # sample period instead of -F 1999 (uprobes)
#   STRACE=/tmp/proxy.strace bench/proxy.sh        # strace -c 2 s of each run: STRACE.PEER
#   CALLGRIND=/tmp/proxy.cg bench/proxy.sh         # instead of the rounds: edgetrace (1 thread) under
#                                                  # valgrind's callgrind, collecting over a wrk run of
#                                                  # CALLGRIND_DURATION (20s) with 4 connections; shows
#                                                  # its exact instructions per request, by function
#   INSTRUCTIONS=1 bench/proxy.sh                  # perf stat 3 s of each run: user instructions/req
#                                                  # (counting kernel instructions and cycles too was
#                                                  # tried: on this VM it doubled the proxy's system time)
#
# Each run also shows the TCP segments sent on the machine per request (/proc/net/snmp): the
# same for both peers (4: request and response, to the proxy and to the origin) unless one
# of them splits a message or sends ACKs of its own; and the whole machine's CPU time per
# request (wrk, proxy and origin together): with 2 threads, what bounds req/s.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
THREADS=${THREADS:-1 2}
ROUNDS=${ROUNDS:-5}
RULES=${RULES:-95} # non-matching firewall rules (plus the 5 matching ones), or none
case "$RULES" in
none | [0-9] | [0-9][0-9] | [0-9][0-9][0-9]) ;;
*) echo "proxy.sh: RULES=$RULES: a number up to 999, or none" >&2; exit 1 ;;
esac

# Install only what is missing.
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "proxy.sh: missing ${need[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release -p edgetrace
EDGETRACE="$target_dir/release/edgetrace"

tmp=$(mktemp -d /tmp/edgetrace-bench-proxy.XXXXXX)
chmod 755 "$tmp" # nginx workers run as nobody when started by root
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "proxy.sh: $*" >&2
    exit 1
}

# shellcheck source=bench/edge-common.sh
source bench/edge-common.sh # the cwd is the repository (cd above)

wait_port() { # PORT WHAT LOG
    local i
    for i in $(seq "${WAIT_TRIES:-200}"); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    fail "$2 does not listen on 127.0.0.1:$1: $(tail -5 "$3" 2>/dev/null)"
}

# Stops one process started by this script.
stop() {
    local pid=$1 keep=() p
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${pids[@]}"; do
        [ "$p" = "$pid" ] || keep+=("$p")
    done
    pids=("${keep[@]}")
}

origin_port=$(free_port)
nginx_port=$(free_port)
api_port=$(free_port)
edge_port=$(free_port)
host=www.shop.test
path='/products/42?color=red'
headers=(
    -H "Host: $host"
    -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench/1.0'
    -H 'Accept: text/html,application/xhtml+xml'
    -H 'Accept-Language: en-GB,en;q=0.8'
    -H 'Cookie: session=abc123; theme=dark'
    -H 'Referer: http://www.shop.test/products'
)

# --- the origin: a fixed 200 ------------------------------------------------------------------
start_nginx() { # NAME CONFIG-BODY
    local dir="$tmp/$1"
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
$2
EOF
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" &
    pids+=($!)
}

start_nginx origin "
worker_processes 1;
events { worker_connections 4096; }
http {
    access_log off;
    default_type text/plain;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$origin_port;
        location / {
            add_header X-Origin-Saw-Rewrite \$http_x_bench_rewritten always;
            add_header X-Origin-Saw-Args \$args always;
            return 200 \"hello from the origin\\n\";
        }
    }
}"
wait_port "$origin_port" "the origin (nginx)" "$tmp/origin/logs/error.log"
origin_pid=${pids[-1]}

# --- edgetrace: account, token, zone, record, 100 rules -------------------------------------
data="$tmp/edgetrace-data"
account=$("$EDGETRACE" account create --name bench --data-dir "$data" 2>>"$tmp/edgetrace.log") ||
    fail "account create: $(cat "$tmp/edgetrace.log")"
token=$("$EDGETRACE" token create --account "$account" --all-permissions --data-dir "$data" \
    2>>"$tmp/edgetrace.log") || fail "token create: $(cat "$tmp/edgetrace.log")"

start_edgetrace() { # THREADS [WRAPPER…]
    local n=$1
    shift
    "$@" "$EDGETRACE" serve --listen "127.0.0.1:$api_port" --data-dir "$data" --no-dns \
        --rate-limit 0 --colo-name bench \
        --proxy-listen "127.0.0.1:$edge_port" --proxy-origin-port "$origin_port" \
        --worker-threads "$n" 2>>"$tmp/edgetrace.log" &
    pids+=($!)
    wait_port "$api_port" "edgetrace's API" "$tmp/edgetrace.log"
    wait_port "$edge_port" "edgetrace's proxy" "$tmp/edgetrace.log"
}

api_base="http://127.0.0.1:$api_port/client/v4"

start_edgetrace 1
zone=$(api POST /zones "{\"name\":\"shop.test\",\"account\":{\"id\":\"$account\"}}" | jq -r .result.id)
api POST "/zones/$zone/dns_records" \
    '{"type":"A","name":"www","content":"127.0.0.1","proxied":true}' >/dev/null
if [ "$RULES" != none ]; then
    firewall=$(firewall_expressions "$RULES" |
        jq -R -s -c 'split("\n") | map(select(length > 0))
            | to_entries | map({expression: .value, action: "block", description: "bench rule \(.key + 1)"})
            | {rules: .}')
    api PUT "/zones/$zone/rulesets/phases/http_request_firewall_custom/entrypoint" "$firewall" >/dev/null
    api PUT "/zones/$zone/rulesets/phases/http_request_transform/entrypoint" '{"rules":[
        {"expression":"http.request.uri.path matches \"^/products/[0-9]+$\"","action":"rewrite",
         "action_parameters":{"uri":{"query":{"expression":"concat(http.request.uri.query, \"&via=edge\")"}}}}]}' >/dev/null
    api PUT "/zones/$zone/rulesets/phases/http_request_late_transform/entrypoint" '{"rules":[
        {"expression":"starts_with(http.request.uri.path, \"/products/\")","action":"rewrite",
         "action_parameters":{"headers":{"x-bench-rewritten":{"operation":"set","value":"edgetrace"}}}},
        {"expression":"http.request.method in {\"GET\" \"HEAD\"}","action":"rewrite",
         "action_parameters":{"headers":{"x-request-method":{"operation":"set","expression":"lower(http.request.method)"}}}}]}' >/dev/null
    api PUT "/zones/$zone/rulesets/phases/http_response_headers_transform/entrypoint" '{"rules":[
        {"expression":"true","action":"rewrite",
         "action_parameters":{"headers":{"x-edge":{"operation":"set","value":"edgetrace"}}}},
        {"expression":"http.request.uri.path ne \"/health\"","action":"rewrite",
         "action_parameters":{"headers":{"x-served-by":{"operation":"set","value":"bench"}}}}]}' >/dev/null
fi
stop "${pids[-1]}"
if [ "$RULES" = none ]; then
    echo "edgetrace: zone shop.test without rulesets (RULES=none: the proxy alone)"
else
    echo "edgetrace: zone shop.test with $((RULES + 5)) rules ($RULES firewall custom, none matching; 5 rewrites, matching)"
fi

# --- nginx: the plain reverse proxy ---------------------------------------------------------
start_nginx_proxy() { # WORKERS
    start_nginx "proxy$1" "
worker_processes $1;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    upstream origin {
        server 127.0.0.1:$origin_port;
        keepalive 256;
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:$nginx_port;
        server_name $host;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$host;
        }
    }
}"
    wait_port "$nginx_port" "nginx (proxy)" "$tmp/proxy$1/logs/error.log"
}

# --- checks ---------------------------------------------------------------------------------
check() { # PEER PORT
    local out status
    out=$(curl -sS -D - -o "$tmp/body" "${headers[@]}" "http://127.0.0.1:$2$path") ||
        fail "$1: curl failed"
    status=$(head -1 <<<"$out" | awk '{print $2}')
    [ "$status" = 200 ] || fail "$1: status $status, wanted 200: $out $(cat "$tmp/body")"
    grep -q '^hello from the origin$' "$tmp/body" || fail "$1: not the origin's body: $(cat "$tmp/body")"
    if [ "$1" = edgetrace ] && [ "$RULES" != none ]; then
        grep -qi '^x-origin-saw-rewrite: edgetrace' <<<"$out" ||
            fail "edgetrace: the origin did not receive x-bench-rewritten (late transform): $out"
        grep -qi '^x-origin-saw-args: color=red&via=edge' <<<"$out" ||
            fail "edgetrace: the origin did not receive the rewritten query (transform): $out"
        grep -qi '^x-edge: edgetrace' <<<"$out" ||
            fail "edgetrace: no x-edge response header (response headers transform): $out"
        status=$(curl -sS -o /dev/null -w '%{http_code}' "${headers[@]}" -H 'X-Attack-5: 1' \
            "http://127.0.0.1:$2$path")
        if [ "$RULES" -ge 5 ] && [ "$status" != 403 ]; then
            fail "edgetrace: a request matching firewall rule 5 answered $status, not 403"
        fi
    fi
}

# --- wrk ------------------------------------------------------------------------------------
# wrk's latency (2.5ms, 812.00us, 1.02s) in ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# CPU time (clock ticks) of a process and its children (nginx's workers): "USER SYSTEM".
cpu_ticks() { # PID
    local p user=0 system=0 f
    for p in "$1" $(pgrep -P "$1"); do
        read -r -a f <"/proc/$p/stat" 2>/dev/null || continue
        # Fields 14 and 15 (utime, stime); the name (field 2) has no spaces here.
        user=$((user + f[13])) system=$((system + f[14]))
    done
    echo "$user $system"
}
hz=$(getconf CLK_TCK)
# The machine's TCP segments sent so far (/proc/net/snmp, Tcp: OutSegs).
out_segments() {
    awk '$1 == "Tcp:" && $2 != "RtoAlgorithm" { print $12; exit }' /proc/net/snmp
}

results=()
run_wrk() { # PEER THREADS PORT ROUND PID
    local out rps p50 p99 n secs t0 t1 cpu user busy
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "${headers[@]}" \
        "http://127.0.0.1:$3$path" >/dev/null
    read -r -a t0 <<<"$(cpu_ticks "$5")"
    read -r -a s0 </proc/stat
    segs0=$(out_segments)
    if [ -n "${PERF:-}" ]; then
        # Profile 3 s of the run (perf record; PERF.PEER is the output file; nginx: its workers).
        perf record -q ${PERF_RATE--F 1999} ${PERF_OPTS:--g} -p "$({ echo "$5"; pgrep -P "$5"; } | paste -sd,)" \
            -o "$PERF.$1" -- sleep 3 >/dev/null 2>&1 &
    fi
    if [ -n "${INSTRUCTIONS:-}" ]; then
        # Count the proxy's user-space instructions over 3 s of the run: steadier than time.
        perf stat -x, -e instructions:u -o "$tmp/instructions.$1" \
            -p "$({ echo "$5"; pgrep -P "$5"; } | paste -sd,)" -- sleep 3 >/dev/null 2>&1 &
        stat_pid=$!
    fi
    if [ -n "${STRACE:-}" ]; then
        # Count 2 s of the run's system calls (strace -c; STRACE.PEER is the output file).
        timeout -s INT 2 strace -c -f -o "$STRACE.$1" \
            -p "$({ echo "$5"; pgrep -P "$5"; } | paste -sd,)" >/dev/null 2>&1 &
    fi
    out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${headers[@]}" \
        "http://127.0.0.1:$3$path")
    read -r -a t1 <<<"$(cpu_ticks "$5")"
    read -r -a s1 </proc/stat
    segs1=$(out_segments)
    local insn=""
    if [ -n "${INSTRUCTIONS:-}" ]; then
        wait "$stat_pid" || true
        # Requests in those 3 s: this run's rate times 3.
        # A number, or nothing ("<not counted>": the 3 s ended with the process).
        insn=$(awk -F, '$3 ~ /instructions/ && $1 ~ /^[0-9]+$/ {print $1; exit}' "$tmp/instructions.$1")
    fi
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        fail "$1 with $2 thread(s): $(grep -E 'Non-2xx|Socket errors' <<<"$out")"
    fi
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    # The run's length as wrk measured it ("… requests in 5.00s, …"), in seconds.
    secs=$(awk '/requests in/ { d = $4; sub(/,$/, "", d); if (d ~ /ms$/) d = d / 1000; else if (d ~ /m$/) d = d * 60; print d + 0 }' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    [ -n "$rps" ] && [ -n "$n" ] || fail "$1: no figures from wrk: $out"
    # The proxy's CPU time per request, µs: what it costs, whatever else the machine does.
    # user: the part of it spent in user space (the rest is the kernel's: sockets, epoll).
    cpu=$(awk -v t=$((t1[0] + t1[1] - t0[0] - t0[1])) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
    user=$(awk -v t=$((t1[0] - t0[0])) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
    # busy: the proxy's CPU time over the run's, % of one core (2 threads: up to 200%).
    busy=$(awk -v t=$((t1[0] + t1[1] - t0[0] - t0[1])) -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? 100 * t / hz / s : 0) }')
    # The hypervisor's steal time over the run, % of all CPU time: other guests' load, a
    # cause of slow spells (fields: user nice system idle iowait irq softirq steal).
    local all0=0 all1=0 i steal
    for i in 1 2 3 4 5 6 7 8; do all0=$((all0 + s0[i])) all1=$((all1 + s1[i])); done
    steal=$(awk -v d=$((s1[8] - s0[8])) -v a=$((all1 - all0)) 'BEGIN { printf "%.0f", a ? 100 * d / a : 0 }')
    # The whole machine's CPU time per request (every process: wrk, the proxy, the origin;
    # idle, iowait and steal left out): with 2 threads, where the three share the 2 cores,
    # what bounds req/s; it also shows what the proxy's ways cost the other two.
    local machine
    machine=$(awk -v d=$((all1 - all0 - (s1[4] - s0[4]) - (s1[5] - s0[5]) - (s1[8] - s0[8]))) -v hz="$hz" -v n="$n" \
        'BEGIN { printf "%.2f", n ? d * 1e6 / hz / n : 0 }')
    # TCP segments sent on the machine per request (wrk, proxy and origin; loopback): more
    # segments for the same exchange is more kernel work, charged to whoever sends them.
    local segs
    segs=$(awk -v d=$((segs1 - segs0)) -v n="$n" 'BEGIN { printf "%.1f", n ? d / n : 0 }')
    printf '  round %d  %-10s %d thread(s): %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  cpu %6.2f us/req (user %5.2f)  busy %3s%%  steal %s%%  segments %s  machine %5.2f us/req' \
        "$4" "$1" "$2" "$rps" "$p50" "$p99" "$cpu" "$user" "$busy" "$steal" "$segs" "$machine"
    if [ -n "$insn" ]; then
        awk -v i="$insn" -v r="$rps" 'BEGIN { printf "  %.0f user instructions/req", i / (r * 3) }'
    fi
    echo
    results+=("$1 $2 $rps $p50 $p99 $cpu $4")
}

# The median of the numbers on stdin.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

if [ -n "${CALLGRIND:-}" ]; then
    # Exact user-space instructions per request, by function: edgetrace under callgrind, which
    # is instrumented only while wrk runs (the start, the configuration's compilation and the warm-up
    # left out). Under valgrind it runs some 50 times slower: 4 connections are enough.
    command -v valgrind >/dev/null || fail "CALLGRIND needs valgrind (apt-get install valgrind)"
    WAIT_TRIES=1200 start_edgetrace 1 valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$CALLGRIND" --quiet
    check edgetrace "$edge_port"
    wrk -t1 -c4 -d3s "${headers[@]}" "http://127.0.0.1:$edge_port$path" >/dev/null
    callgrind_control -i on "${pids[-1]}" >/dev/null
    out=$(wrk -t1 -c4 -d"${CALLGRIND_DURATION:-20s}" "${headers[@]}" "http://127.0.0.1:$edge_port$path")
    callgrind_control -i off "${pids[-1]}" >/dev/null
    stop "${pids[-1]}"
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    total=$(callgrind_annotate "$CALLGRIND" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t { gsub(",", "", $1); if ($1 ~ /^[0-9]+$/) t = $1 } END { print t }')
    [ -n "$n" ] && [ "$n" -gt 0 ] && [ -n "$total" ] || fail "callgrind: no figures (requests: $n, instructions: $total)"
    echo "callgrind: $n requests, $total instructions: $((total / n)) per request (user space)"
    echo "by function, inclusive, per request (callgrind_annotate --inclusive=yes $CALLGRIND):"
    callgrind_annotate --inclusive=yes "$CALLGRIND" 2>/dev/null |
        awk -v n="$n" '/^[ 0-9,]+ \(/ { v = $1; gsub(",", "", v); $1 = ""; $2 = ""; sub(/^ +/, ""); printf "  %8.0f  %s\n", v / n, substr($0, 1, 150) }' |
        awk -v top="${CALLGRIND_TOP:-60}" 'NR <= top'
    exit 0
fi

if [ -n "${INSTRUCTIONS:-}" ] &&
    ! { command -v perf >/dev/null && perf stat -x, -e instructions:u -- true 2>&1 | grep -qE '^[0-9]+,'; }; then
    # No perf, or a VM without a performance-monitoring unit (Firecracker's): nothing counted.
    echo "proxy.sh: INSTRUCTIONS: perf is missing or cannot count instructions on this machine (no hardware counters); left out (CALLGRIND=FILE counts them exactly)" >&2
    INSTRUCTIONS=
fi

read -r load1 _ </proc/loadavg
echo "load average before the runs: $load1 on $(nproc) cores"
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    echo "proxy.sh: warning: something else is using the CPU; the figures will be noisy" >&2
fi
echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency (after a $WARMUP warm-up), GET $path, Host: $host;" \
    "$ROUNDS round(s), peers alternating"
for ((round = 1; round <= ROUNDS; round++)); do
    for n in $THREADS; do
        start_nginx_proxy "$n"
        check nginx "$nginx_port"
        run_wrk nginx "$n" "$nginx_port" "$round" "${pids[-1]}"
        stop "${pids[-1]}"

        start_edgetrace "$n"
        check edgetrace "$edge_port"
        run_wrk edgetrace "$n" "$edge_port" "$round" "${pids[-1]}"
        stop "${pids[-1]}"
    done
done
stop "$origin_pid"

# FIELD of PEER's runs with N threads, one per line (in round order).
field() { # PEER N FIELD
    local r f
    for r in "${results[@]}"; do
        read -r -a f <<<"$r"
        if [ "${f[0]}" = "$1" ] && [ "${f[1]}" = "$2" ]; then
            echo "${f[$3]}"
        fi
    done
}

echo
echo "medians of $ROUNDS round(s):"
printf '%-10s %7s %10s %9s %9s %11s %8s\n' peer threads 'req/s' 'p50 ms' 'p99 ms' 'cpu us/req' ratio
for n in $THREADS; do
    for peer in nginx edgetrace; do
        rps=$(field $peer "$n" 2 | median) p50=$(field $peer "$n" 3 | median)
        p99=$(field $peer "$n" 4 | median) cpu=$(field $peer "$n" 5 | median)
        ratio=""
        if [ "$peer" = edgetrace ]; then
            # The median of each round's ratio: the two runs of a round are next to each
            # other in time, so a slow spell of the machine moves both.
            ratio=$(paste <(field edgetrace "$n" 2) <(field nginx "$n" 2) |
                awk '{ print $1 / $2 }' | median | awk '{ printf "%.2fx", $1 }')
        fi
        printf '%-10s %7s %10.0f %9.3f %9.3f %11.2f %8s\n' "$peer" "$n" "$rps" "$p50" "$p99" "$cpu" "$ratio"
    done
done
echo "(ratio: the median over the rounds of edgetrace's req/s over nginx's in the same round and"
echo " thread count; goal >= 0.80x. cpu: the proxy's CPU time per request, its workers included)"
