#!/usr/bin/env bash
# Request Trace API latency with skip_response, for a zone of 1,000 firewall custom rules (goal:
# under 1 ms), and for comparison zones of 10 and 0 rules: wrk with one connection POSTing the
# trace (JSON body, Authorization header; serve --rate-limit 0) to
# `POST /accounts/{A}/request-tracer/trace` for `http://www.ZONE/products/42?color=red`; then
# the largest zone again with `?explain=false` (by default the engine explains every rule,
# and the explanations of the rules that did not match are dropped).
#
# Each zone's firewall rules are a realistic mix (paths, headers, cookies, `ip.src in {…}`,
# regex `matches`, `lower(…)`, `any(…[*])`, query, method, extension); all but the last
# never match, the last one (`log`) matches, so every rule is evaluated and the trace has one
# matched rule to show. The API takes bodies up to 64 KiB, so the rules that do not fit in
# the entry point's PUT are added one by one. Before measuring, curl checks that the trace
# answers 200 with the expected steps (the firewall entry point, the matched log rule, no
# status code). The traced hostname is a proxied record, so its compiled configuration comes
# from the edge's cache (reloaded and compiled again when it is 1 s old).
#
# Two latency figures: wrk's percentiles, which wrk corrects for coordinated omission (a
# request slower than the average interval adds the samples a client sending at that rate
# would have seen), and the plain percentiles of each request's own latency, recorded by the
# wrk script. A stall once a second (the configuration's reload) moves wrk's p99, not the
# plain one; the max shows it.
#
# One connection: latency is the figure here, not throughput; wrk and edgetrace share the 2
# cores of the machine this was written on. Ports are free ones picked at random on
# 127.0.0.1, the data directory is in a mktemp directory; edgetrace is killed and the
# directory removed on exit. Installs wrk, curl and jq with apt-get when missing.
#
#   bench/trace.sh
#   DURATION=30s bench/trace.sh        # wrk -d (default 10s)
#   SIZES="1000 100 10" bench/trace.sh # rules per zone (at most 1000)
#   VERBOSE=1 bench/trace.sh           # wrk's whole output too
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
SIZES=${SIZES:-1000 10 0}
for n in $SIZES; do
    case "$n" in
    [0-9] | [0-9][0-9] | [0-9][0-9][0-9] | 1000) ;;
    *) echo "trace.sh: SIZES: $n: rules per zone are 0-1000" >&2; exit 1 ;;
    esac
done

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "trace.sh: missing ${need[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release -p edgetrace
EDGETRACE="$target_dir/release/edgetrace"

tmp=$(mktemp -d /tmp/edgetrace-bench-trace.XXXXXX)
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "trace.sh: $*" >&2
    exit 1
}

# shellcheck source=bench/edge-common.sh
source bench/edge-common.sh # the cwd is the repository (cd above)

api_port=$(free_port)
data="$tmp/edgetrace-data"
account=$("$EDGETRACE" account create --name bench --data-dir "$data" 2>>"$tmp/edgetrace.log") ||
    fail "account create: $(cat "$tmp/edgetrace.log")"
token=$("$EDGETRACE" token create --account "$account" --all-permissions --data-dir "$data" \
    2>>"$tmp/edgetrace.log") || fail "token create: $(cat "$tmp/edgetrace.log")"
"$EDGETRACE" serve --listen "127.0.0.1:$api_port" --data-dir "$data" --no-dns \
    --rate-limit 0 --colo-name bench 2>>"$tmp/edgetrace.log" &
server=$!
for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$api_port") 2>/dev/null && break
    [ "$i" -lt 100 ] || fail "edgetrace does not listen on 127.0.0.1:$api_port: $(cat "$tmp/edgetrace.log")"
    sleep 0.05
done
base="http://127.0.0.1:$api_port/client/v4"

api_base=$base

trace_body() { # HOST
    jq -n -c --arg url "http://$1/products/42?color=red" '{
        method: "GET", url: $url, skip_response: true, protocol: "HTTP/1.1",
        headers: {
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) bench/1.0",
            "accept": "text/html,application/xhtml+xml",
            "cookie": "session=abc123; theme=dark",
            "referer": "http://www.shop.test/products"
        },
        context: {ip: "127.0.0.1"}
    }'
}

# Sets a zone's entry point of PHASE to the rules on stdin (one compact JSON object per line).
# The API takes bodies up to 64 KiB: the PUT creates the entry point with the rules that fit,
# the others are added one by one (POST …/rules, each making a new version).
put_rules() { # ZONE PHASE
    local first=() rest=() size=0 line id
    while IFS= read -r line; do
        if [ ${#rest[@]} -eq 0 ] && [ $((size + ${#line} + 1)) -lt 60000 ]; then
            first+=("$line")
            size=$((size + ${#line} + 1))
        else
            rest+=("$line")
        fi
    done
    id=$(api PUT "/zones/$1/rulesets/phases/$2/entrypoint" \
        "{\"rules\":[$(IFS=,; echo "${first[*]}")]}" | jq -r .result.id)
    for line in "${rest[@]}"; do
        api POST "/zones/$1/rulesets/$id/rules" "$line" >/dev/null
    done
    [ "$(api GET "/zones/$1/rulesets/$id" | jq '.result.rules | length')" = $((${#first[@]} + ${#rest[@]})) ] ||
        fail "zone $1: the entry point of $2 does not have the rules given"
}

# A zone per size: N firewall custom rules, the last one a matching `log`.
for n in $SIZES; do
    zone=$(api POST /zones "{\"name\":\"rules$n.test\",\"account\":{\"id\":\"$account\"}}" | jq -r .result.id)
    api POST "/zones/$zone/dns_records" \
        '{"type":"A","name":"www","content":"127.0.0.1","proxied":true}' >/dev/null
    if [ "$n" -gt 0 ]; then
        {
            firewall_expressions $((n - 1))
            echo 'starts_with(http.request.uri.path, "/products/")'
        } | jq -R -c 'select(length > 0)
            | {expression: ., action: "block"}' |
            jq -c -s 'to_entries | map(.value + {description: "bench rule \(.key + 1)"})
                | .[-1].action = "log" | .[]' |
            put_rules "$zone" http_request_firewall_custom
    fi
    echo "zone rules$n.test: $n firewall custom rules"
done

# wrk's latency (2.5ms, 812.00us, 1.02s) in ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

url="$base/accounts/$account/request-tracer/trace"
results=()
measure() { # RULES [QUERY]
    local n=$1 query=${2:-} body out status rps p50 p99 lua
    body=$(trace_body "www.rules$n.test")
    # The check: 200, no status code (skip_response, nothing answered), the firewall entry
    # point with the matching log rule (the zone with 0 rules: no steps).
    out=$(curl -sS -w '\n%{http_code}' "$url$query" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' --data-binary "$body") || fail "trace: curl failed"
    status=$(tail -1 <<<"$out")
    out=$(sed '$d' <<<"$out")
    [ "$status" = 200 ] || fail "$n rules: the trace answered $status: $out"
    jq -e '.success and (.result | has("status_code") | not)' <<<"$out" >/dev/null ||
        fail "$n rules: unexpected trace: $out"
    if [ "$n" -gt 0 ]; then
        jq -e --arg d "bench rule $n" '
            [.result.trace[] | select(.type == "ruleset" and .phase == "http_request_firewall_custom")] as $fw
            | ($fw | length) == 1
              and ([$fw[0].trace[] | select(.matched)] | length) == 1
              and ([$fw[0].trace[] | select(.matched)][0] | .action == "log" and .description == $d)' \
            <<<"$out" >/dev/null || fail "$n rules: the trace lacks the matched log rule $n: $out"
    else
        jq -e '.result.trace | length == 0' <<<"$out" >/dev/null ||
            fail "0 rules: the trace has steps: $out"
    fi

    # wrk's latency percentiles are corrected for coordinated omission (each slow request
    # adds made-up samples: those a client sending at the average rate would have waited);
    # the script also records each request's own latency (request() to response(), with a
    # monotonic clock through LuaJIT's ffi) and prints the plain percentiles.
    lua="$tmp/trace.lua"
    {
        cat <<'LUA'
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long sec; long nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.sec) * 1e6 + tonumber(ts.nsec) / 1e3
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
lat = {}
local started
function request()
    started = now_us()
    return wrk.format()
end
function response(status, headers, body)
    lat[#lat + 1] = now_us() - started
end
function done(summary, latency, requests)
    local all = {}
    for _, t in ipairs(threads) do
        for _, v in ipairs(t:get("lat")) do all[#all + 1] = v end
    end
    table.sort(all)
    local function pct(p) return all[math.max(1, math.ceil(#all * p))] / 1000 end
    if #all > 0 then
        io.write(string.format("plain: %d p50 %.3f p99 %.3f max %.3f\n", #all, pct(0.5), pct(0.99), all[#all] / 1000))
    end
end
LUA
        echo 'wrk.method = "POST"'
        printf 'wrk.body = [==[%s]==]\n' "$body"
        echo 'wrk.headers["Content-Type"] = "application/json"'
        printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$token"
    } >"$lua"
    wrk -t1 -c1 -d"$WARMUP" -s "$lua" "$url$query" >/dev/null
    out=$(wrk -t1 -c1 -d"$DURATION" --latency -s "$lua" "$url$query")
    [ -z "${VERBOSE:-}" ] || echo "$out"
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        fail "$n rules: $(grep -E 'Non-2xx|Socket errors' <<<"$out")"
    fi
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    [ -n "$rps" ] || fail "$n rules: no figures from wrk: $out"
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    read -r _ _ _ plain50 _ plain99 _ max < <(grep '^plain:' <<<"$out") ||
        fail "$n rules: no plain latencies from the wrk script: $out"
    printf '  %4d rules %-16s %7.0f req/s  wrk p50 %6.3f ms  p99 %6.3f ms;  plain p50 %6.3f ms  p99 %6.3f ms  max %6.3f ms\n' \
        "$n" "$query" "$rps" "$p50" "$p99" "$plain50" "$plain99" "$max"
    results+=("$n ${query:--} $rps $p50 $p99 $plain50 $plain99 $max")
}

read -r load1 _ </proc/loadavg
echo "load average before the runs: $load1 on $(nproc) cores"
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    echo "trace.sh: warning: something else is using the CPU; the figures will be noisy" >&2
fi
echo "wrk -t1 -c1 -d$DURATION --latency (after a $WARMUP warm-up): POST $url"
for n in $SIZES; do
    measure "$n"
done
# The explanations of every rule are computed by default (and dropped for the rules that do
# not match): the largest zone once more without them.
largest=$(tr ' ' '\n' <<<"$SIZES" | sort -n | tail -1)
if [ "$largest" -gt 0 ]; then
    measure "$largest" '?explain=false'
fi

echo
printf '%6s %-16s %8s | %-17s | %-25s\n' '' '' '' "wrk's (corrected)" 'plain (each request)'
printf '%6s %-16s %8s | %8s %8s | %8s %8s %7s\n' rules query 'req/s' 'p50 ms' 'p99 ms' 'p50 ms' 'p99 ms' 'max ms'
for r in "${results[@]}"; do
    read -r n query rps p50 p99 plain50 plain99 max <<<"$r"
    printf '%6d %-16s %8.0f | %8.3f %8.3f | %8.3f %8.3f %7.3f\n' \
        "$n" "$query" "$rps" "$p50" "$p99" "$plain50" "$plain99" "$max"
done
echo "(one connection, skip_response; goal for 1,000 rules: under 1 ms)"
