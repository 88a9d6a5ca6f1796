//! Datadog's system-probe traceroute contract: `GET /traceroute/{host}` returning a
//! NetworkPath, served on a Unix socket as system-probe does (access controlled by the socket
//! file's permissions) and, when configured, on TCP (then with an API token).
//!
//! Query parameters, as the Datadog agent sends them: `protocol` (`UDP` default, `TCP`,
//! `ICMP`), `port` (0 = the protocol's default), `max_ttl` (1-64; 0/absent = 30), `timeout`
//! (nanoseconds per probe, like a Go `time.Duration`; rounded up to whole seconds and clamped to
//! 1-5 s, the engine's range; 0/absent = 1 s) and `client_id` (logged).

use crate::AppState;
use crate::auth::authenticate;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edgetrace_fleet::Family;
use edgetrace_probe::{MaxTtl, Options, PacketType, WaitTime};
use edgetrace_wire::Protocol;
use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The NetworkPath payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkPath {
    /// Unix time in milliseconds.
    pub timestamp: i64,
    pub namespace: String,
    /// A random UUID.
    pub path_id: String,
    /// `TCP`, `UDP` or `ICMP`.
    pub protocol: String,
    pub source: NetworkPathSource,
    pub destination: NetworkPathDestination,
    pub hops: Vec<NetworkPathHop>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkPathSource {
    pub hostname: String,
    /// How the path leaves this machine, from a route lookup; absent when there is no route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    pub network_id: String,
}

/// Datadog's `Via` (`subnet.alias`, `interface.hardware_addr`) and what our route lookup adds:
/// the gateway and the interface's name and index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Via {
    pub subnet: Subnet,
    pub interface: Interface,
    /// The next hop; absent when the destination is on a directly connected network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    /// The outgoing interface's subnet in CIDR notation, e.g. `198.18.1.0/24`.
    pub alias: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub hardware_addr: String,
    pub name: String,
    pub index: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkPathDestination {
    pub hostname: String,
    pub ip_address: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkPathHop {
    pub ttl: u8,
    /// The answering address; empty when the TTL went unanswered.
    pub ip_address: String,
    /// Its name (the address when it has none); `unknown_hop_{ttl}` when unanswered.
    pub hostname: String,
    /// Mean round-trip time in milliseconds (0 when unanswered).
    pub rtt: f64,
    pub reachable: bool,
}

/// The system-probe router. `require_token`: on TCP, callers must present an API token with
/// Magic Transit Write; on the Unix socket, the socket's file permissions decide.
pub fn router(state: AppState, require_token: bool) -> Router {
    Router::new()
        .route("/traceroute/{host}", get(traceroute))
        .fallback(|| async {
            bad(
                StatusCode::NOT_FOUND,
                "no such route; use GET /traceroute/{host}",
            )
        })
        .with_state((state, require_token))
}

fn bad(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

struct Params {
    protocol: Protocol,
    port: u16,
    max_ttl: MaxTtl,
    wait_time: WaitTime,
    client_id: String,
}

fn parse_params(q: &HashMap<String, String>) -> Result<Params, String> {
    for key in q.keys() {
        if !matches!(
            key.as_str(),
            "protocol" | "port" | "max_ttl" | "timeout" | "client_id"
        ) {
            return Err(format!(
                "unknown parameter {key:?}; allowed: protocol, port, max_ttl, timeout, client_id"
            ));
        }
    }
    let number = |key: &str, max: u64| -> Result<u64, String> {
        match q.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(0),
            Some(s) => s
                .parse::<u64>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("{key}: {s:?} is not an integer 0-{max}")),
        }
    };
    let protocol = match q.get("protocol").map(|s| s.to_ascii_uppercase()).as_deref() {
        None | Some("") | Some("UDP") => Protocol::Udp,
        Some("TCP") => Protocol::Tcp,
        Some("ICMP") => Protocol::Icmp,
        Some(other) => return Err(format!("protocol: {other:?} is not one of TCP, UDP, ICMP")),
    };
    let port = number("port", 65535)? as u16;
    let max_ttl = match number("max_ttl", 64)? {
        0 => MaxTtl::default(),
        n => MaxTtl::new(n).map_err(|e| e.to_string())?,
    };
    let timeout_ns = number("timeout", u64::MAX)?;
    let secs = timeout_ns.div_ceil(1_000_000_000).clamp(1, 5);
    let wait_time = WaitTime::new(secs).map_err(|e| e.to_string())?;
    Ok(Params {
        protocol,
        port,
        max_ttl,
        wait_time,
        client_id: q.get("client_id").cloned().unwrap_or_default(),
    })
}

async fn traceroute(
    State((state, require_token)): State<(AppState, bool)>,
    Path(host): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if require_token {
        let allowed = match authenticate(&state, &headers).await {
            Ok(p) => crate::auth::authorize_any_account(&p, crate::TRACEROUTE_WRITE),
            Err(e) => Err(e),
        };
        if let Err(e) = allowed {
            return e.into_response();
        }
    }
    let params = match parse_params(&query) {
        Ok(p) => p,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    let Some(colo) = state.fleet.local() else {
        return bad(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server has no local colo",
        );
    };
    let ip = match edgetrace_fleet::resolve(&host, Family::PreferV4).await {
        Ok(ip) => ip,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    let packet_type = match params.protocol {
        Protocol::Tcp => PacketType::Tcp,
        Protocol::Icmp => PacketType::Icmp,
        _ => PacketType::Udp,
    };
    let options = Options {
        packet_type,
        port: params.port,
        max_ttl: params.max_ttl,
        packets_per_ttl: edgetrace_probe::PacketsPerTtl::default(),
        wait_time: params.wait_time,
        ..Options::default()
    };
    let (run, via) = tokio::join!(colo.trace_ip(ip, options), route_via(ip));
    if !run.trace.error.is_empty() {
        let problems = run.problems.join("; ");
        eprintln!(
            "edgetrace: sysprobe traceroute to {host} for client {:?} failed: {problems}",
            params.client_id
        );
        return bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("traceroute to {host} failed: {problems}"),
        );
    }
    let via = match via {
        Ok(v) => v,
        Err(e) => {
            eprintln!("edgetrace: route lookup toward {ip} failed: {e}");
            None
        }
    };
    let hops = run
        .trace
        .hops
        .iter()
        .map(|h| match h.nodes.iter().max_by_key(|n| n.packet_count) {
            Some(n) => NetworkPathHop {
                ttl: h.packets_ttl,
                ip_address: n.ip.clone(),
                hostname: n.name.clone(),
                rtt: n.mean_rtt_ms,
                reachable: true,
            },
            None => NetworkPathHop {
                ttl: h.packets_ttl,
                ip_address: String::new(),
                hostname: format!("unknown_hop_{}", h.packets_ttl),
                rtt: 0.0,
                reachable: false,
            },
        })
        .collect();
    let path = NetworkPath {
        timestamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
        namespace: state.sysprobe.namespace.clone(),
        path_id: uuid::Uuid::new_v4().to_string(),
        protocol: match params.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Icmp => "ICMP",
            _ => "UDP",
        }
        .to_string(),
        source: NetworkPathSource {
            hostname: hostname(),
            via,
            network_id: state.sysprobe.network_id.clone(),
        },
        destination: NetworkPathDestination {
            hostname: host,
            ip_address: ip.to_string(),
            port: options.effective_port(params.protocol),
        },
        hops,
    };
    Json(path).into_response()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Asks the kernel (rtnetlink `RTM_GETROUTE` for the destination) how packets toward `ip`
/// leave: gateway and interface, then the interface's name, MAC and subnet.
pub async fn route_via(ip: IpAddr) -> Result<Option<Via>, String> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("cannot open a netlink socket: {e}"))?;
    let conn = tokio::spawn(connection);
    let result = lookup(&handle, ip).await.map_err(|e| e.to_string());
    conn.abort();
    result
}

async fn lookup(handle: &rtnetlink::Handle, ip: IpAddr) -> Result<Option<Via>, rtnetlink::Error> {
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    let message = rtnetlink::RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(ip, prefix)
        .map_err(|e| rtnetlink::Error::InvalidNla(e.to_string()))?
        .build();
    let Some(route) = handle.route().get(message).execute().try_next().await? else {
        return Ok(None);
    };
    let mut gateway = None;
    let mut oif = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(IpAddr::V4(*a)),
            RouteAttribute::Gateway(RouteAddress::Inet6(a)) => gateway = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    let Some(index) = oif else { return Ok(None) };
    let mut name = String::new();
    let mut mac = String::new();
    let mut links = handle.link().get().match_index(index).execute();
    if let Some(link) = links.try_next().await? {
        for attr in &link.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = n.clone(),
                LinkAttribute::Address(a) => {
                    mac = a
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }
                _ => {}
            }
        }
    }
    // The subnet of the interface that covers the gateway (or the destination when directly
    // connected), in the destination's family.
    let toward = gateway.unwrap_or(ip);
    let mut subnet = String::new();
    let mut addrs = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(a) = addrs.try_next().await? {
        for attr in &a.attributes {
            if let AddressAttribute::Address(addr) = attr {
                let len = a.header.prefix_len;
                if addr.is_ipv4() != ip.is_ipv4() {
                    continue;
                }
                let network = mask(*addr, len);
                if subnet.is_empty() || mask(toward, len) == network {
                    subnet = format!("{network}/{len}");
                }
            }
        }
    }
    Ok(Some(Via {
        subnet: Subnet { alias: subnet },
        interface: Interface {
            hardware_addr: mac,
            name,
            index,
        },
        gateway: gateway.map(|g| g.to_string()),
    }))
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn params_follow_the_agent() {
        let p = parse_params(&q(&[])).unwrap();
        assert_eq!(
            (p.protocol, p.port, p.max_ttl.get(), p.wait_time.get()),
            (Protocol::Udp, 0, 30, 1)
        );
        let p = parse_params(&q(&[
            ("protocol", "tcp"),
            ("port", "443"),
            ("max_ttl", "12"),
            ("timeout", "2500000000"),
            ("client_id", "x"),
        ]))
        .unwrap();
        assert_eq!(
            (p.protocol, p.port, p.max_ttl.get(), p.wait_time.get()),
            (Protocol::Tcp, 443, 12, 3)
        );
        assert_eq!(
            parse_params(&q(&[("timeout", "60000000000")]))
                .unwrap()
                .wait_time
                .get(),
            5
        );
        for (k, v, needle) in [
            ("protocol", "SCTP", "protocol: \"SCTP\""),
            ("port", "70000", "port: \"70000\" is not an integer 0-65535"),
            ("max_ttl", "65", "max_ttl: \"65\""),
            ("timeout", "-1", "timeout"),
            ("ttl", "1", "unknown parameter \"ttl\""),
        ] {
            let e = parse_params(&q(&[(k, v)])).err().unwrap();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(
            mask("198.18.1.77".parse().unwrap(), 24).to_string(),
            "198.18.1.0"
        );
        assert_eq!(
            mask("2001:2:0:1::9".parse().unwrap(), 64).to_string(),
            "2001:2:0:1::"
        );
        assert_eq!(mask("10.0.0.1".parse().unwrap(), 0).to_string(), "0.0.0.0");
    }

    #[tokio::test]
    async fn loopback_routes_through_lo() {
        let via = route_via("127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(via.interface.name, "lo");
        assert_eq!(via.gateway, None);
        assert_eq!(via.subnet.alias, "127.0.0.0/8");
    }
}
