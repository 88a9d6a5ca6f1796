# Shared by bench/proxy.sh and bench/trace.sh (sourced): free ports, the API helper and the rule
# corpus. api() needs $api_base (http://127.0.0.1:PORT/client/v4), $token, and a `fail` function.

# A free TCP port on 127.0.0.1, not handed out before in this run, below the ephemeral range
# (or above it), so that no outgoing connection (wrk's, the proxies' to the origin) takes it
# between the check and the bind.
read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range
if [ "$eph_lo" -gt 11000 ]; then
    port_lo=10000 port_hi=$eph_lo
elif [ "$eph_hi" -lt 64000 ]; then
    port_lo=$((eph_hi + 1)) port_hi=65536
else
    port_lo=20000 port_hi=30000 # no room outside it: hope for the best
fi
used_ports=" "
free_port() {
    local p
    while :; do
        p=$((port_lo + RANDOM % (port_hi - port_lo)))
        case "$used_ports" in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            used_ports+="$p "
            echo "$p"
            return
        fi
    done
}

api() { # METHOD PATH [BODY]
    local out body=()
    [ $# -lt 3 ] || body=(--data-binary "$3")
    out=$(curl -sS -X "$1" "$api_base$2" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        "${body[@]}") || fail "$1 $2: curl failed"
    if [ "$(jq -r .success <<<"$out")" != true ]; then
        fail "$1 $2: $(jq -c .errors <<<"$out" 2>/dev/null || echo "$out")"
    fi
    printf '%s' "$out"
}

# One non-matching firewall rule per line, for rule numbers 1..N: a realistic mix of fields,
# functions and operators. None matches the benchmarks' request (GET /products/42?color=red
# from 127.0.0.1).
firewall_expressions() { # N
    local i
    for ((i = 1; i <= $1; i++)); do
        case $((i % 14)) in
        0) printf 'http.request.uri.path eq "/admin/secret-%d"\n' "$i" ;;
        1) printf 'starts_with(http.request.uri.path, "/wp-admin/%d/")\n' "$i" ;;
        2) printf 'ip.src in {203.0.113.%d 198.51.100.0/24 2001:db8::/32}\n' $((i % 250 + 1)) ;;
        3) printf 'http.request.uri.path matches "^/api/v[0-9]+/internal-%d(/|$)"\n' "$i" ;;
        4) printf 'lower(http.user_agent) contains "sqlmap/%d"\n' "$i" ;;
        5) printf 'any(http.request.headers["x-attack-%d"][*] eq "1")\n' "$i" ;;
        6) printf 'http.request.method eq "POST" and http.request.uri.path eq "/login-%d"\n' "$i" ;;
        7) printf 'http.cookie contains "session=stolen-%d"\n' "$i" ;;
        8) printf 'http.request.uri.query contains "union+select+%d"\n' "$i" ;;
        9) printf 'lower(http.host) eq "evil-%d.shop.test"\n' "$i" ;;
        10) printf 'http.referer matches "(?i)spam-%d[.]example"\n' "$i" ;;
        11) printf 'any(lower(http.request.headers.names[*])[*] eq "x-evil-%d")\n' "$i" ;;
        12) printf 'http.request.uri.path.extension in {"php%d" "asp" "jsp"} and not ip.src in {10.0.0.0/8}\n' "$i" ;;
        13) printf 'ip.src in {192.0.2.0/24 100.64.%d.0/24} or http.request.uri.path contains "/etc/passwd-%d"\n' $((i % 256)) "$i" ;;
        esac
    done
}

