//! Ready-made dual-stack topologies.
//!
//! Addressing: link `k` gets `198.18.k.0/24` and `2001:2:0:k::/64`; the node
//! on the source side of the link is `.1`/`::1`, the other `.2`/`::2`.
//! Interfaces are named `lk{k}` on both ends (names are per namespace).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::lab::{Lab, NsOptions};

/// IPv4 address of `side` (1 = source side, 2 = far side) on link `k`.
pub fn link_v4(k: usize, side: u8) -> Ipv4Addr {
    assert!((1..=255).contains(&k), "link number out of range");
    Ipv4Addr::new(198, 18, k as u8, side)
}

/// IPv6 address of `side` on link `k`.
pub fn link_v6(k: usize, side: u8) -> Ipv6Addr {
    assert!((1..=255).contains(&k), "link number out of range");
    Ipv6Addr::new(0x2001, 2, 0, k as u16, 0, 0, 0, side as u16)
}

fn ifname(k: usize) -> String {
    format!("lk{k}")
}

/// Connects `a` (side 1) and `b` (side 2) with link `k`: veth or delay link,
/// dual-stack addresses.
fn connect(lab: &mut Lab, k: usize, a: &str, b: &str, delay: Option<Duration>) -> io::Result<()> {
    let name = ifname(k);
    match delay {
        Some(d) => lab.delay_link(a, &name, b, &name, d)?,
        None => lab.veth(a, &name, b, &name)?,
    }
    for (ns, side) in [(a, 1u8), (b, 2u8)] {
        lab.addr(ns, &name, &format!("{}/24", link_v4(k, side)))?;
        lab.addr(ns, &name, &format!("{}/64", link_v6(k, side)))?;
    }
    Ok(())
}

/// `ip -batch` lines adding routes to links `targets` via `gw_side` of link `via`.
fn routes_via(targets: impl IntoIterator<Item = usize>, via: usize, gw_side: u8) -> Vec<String> {
    let dev = ifname(via);
    let mut lines = Vec::new();
    for j in targets {
        lines.push(format!(
            "route add 198.18.{j}.0/24 via {} dev {dev}",
            link_v4(via, gw_side)
        ));
        lines.push(format!(
            "route add 2001:2:0:{j:x}::/64 via {} dev {dev}",
            link_v6(via, gw_side)
        ));
    }
    lines
}

/// Drops every ICMP/ICMPv6 time-exceeded the namespace would send.
fn silence_time_exceeded(lab: &Lab, ns: &str) -> io::Result<()> {
    lab.iptables(
        ns,
        &[
            "-A",
            "OUTPUT",
            "-p",
            "icmp",
            "--icmp-type",
            "time-exceeded",
            "-j",
            "DROP",
        ],
    )?;
    lab.ip6tables(
        ns,
        &[
            "-A",
            "OUTPUT",
            "-p",
            "ipv6-icmp",
            "--icmpv6-type",
            "time-exceeded",
            "-j",
            "DROP",
        ],
    )?;
    Ok(())
}

/// Parameters of [`linear`].
#[derive(Debug, Clone, Default)]
pub struct LinearSpec {
    /// Routers between source and target; the target is at TTL `routers + 1`.
    pub routers: usize,
    /// TTLs (1-based) whose router never sends ICMP time-exceeded.
    pub silent_routers: Vec<u8>,
    /// The target drops everything it receives (except IPv6 neighbour
    /// discovery, so that the last router does not answer "address unreachable").
    pub target_silent: bool,
    /// The last router rejects traffic to the target with ICMP host
    /// unreachable (v6: address unreachable). Requires `routers >= 1`.
    pub target_reject_host_unreach: bool,
    /// A TCP listener (v4 + v6) in the target on this port; other ports answer RST.
    pub tcp_open_port: Option<u16>,
    /// `(k, one_way)`: link `k` (1-based; link 1 = source↔router 1, link
    /// `routers + 1` = last router↔target) is a user-space delay link.
    pub delay: Option<(u8, Duration)>,
    /// Keep the kernel's default ICMP rate limiting on the routers.
    pub kernel_icmp_ratelimit: bool,
}

/// A linear path built by [`linear`].
#[derive(Debug)]
pub struct Path {
    /// Owns all namespaces; dropping the `Path` tears them down.
    pub lab: Lab,
    /// Full name of the source namespace.
    pub src: String,
    /// Full names of the router namespaces, `routers[i]` is at TTL `i + 1`.
    pub routers: Vec<String>,
    /// Full name of the target namespace.
    pub target_ns: String,
    /// Source address (link 1, side 1).
    pub src_v4: Ipv4Addr,
    /// Source address (link 1, side 1).
    pub src_v6: Ipv6Addr,
    pub target_v4: Ipv4Addr,
    pub target_v6: Ipv6Addr,
    /// `hops_v4[i]` answers probes sent with TTL `i + 1` (the router's
    /// interface facing the source); the last entry is the target.
    pub hops_v4: Vec<Ipv4Addr>,
    /// Same as `hops_v4` for IPv6 (hop limit).
    pub hops_v6: Vec<Ipv6Addr>,
}

impl Path {
    /// TTL at which the target sits (`routers + 1`).
    pub fn target_ttl(&self) -> u8 {
        self.hops_v4.len() as u8
    }
}

/// Builds `src — r1 — … — rN — dst` (`N = spec.routers`), dual stack, with
/// routes in both directions on every node.
pub fn linear(spec: &LinearSpec) -> io::Result<Path> {
    linear_tagged("linear", spec)
}

/// [`linear`] with a custom tag in the namespace names.
pub fn linear_tagged(tag: &str, spec: &LinearSpec) -> io::Result<Path> {
    let n = spec.routers;
    if n > 250 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at most 250 routers",
        ));
    }
    if spec.target_reject_host_unreach && n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "target_reject_host_unreach needs at least one router",
        ));
    }
    if let Some((k, _)) = spec.delay
        && (k == 0 || k as usize > n + 1)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("delay link {k} out of range 1..={}", n + 1),
        ));
    }
    let mut lab = Lab::new(tag)?;
    let mut hops = Vec::with_capacity(n + 2);
    hops.push(lab.add_ns("src")?);
    let router_opts = NsOptions {
        kernel_icmp_ratelimit: spec.kernel_icmp_ratelimit,
    };
    for i in 1..=n {
        hops.push(lab.add_ns_opts(&format!("r{i}"), router_opts)?);
    }
    hops.push(lab.add_ns("dst")?);

    let links = n + 1;
    for k in 1..=links {
        let delay = spec.delay.filter(|(d, _)| *d as usize == k).map(|(_, d)| d);
        connect(&mut lab, k, &hops[k - 1], &hops[k], delay)?;
    }
    // Node h has link h on its left (h >= 1) and link h + 1 on its right (h <= n).
    for (h, ns) in hops.iter().enumerate() {
        let mut lines = Vec::new();
        if h >= 1 {
            lines.extend(routes_via(1..h, h, 1));
        }
        if h <= n {
            lines.extend(routes_via(h + 2..=links, h + 1, 2));
        }
        lab.ip_batch(ns, &lines)?;
    }

    for &ttl in &spec.silent_routers {
        let ttl = ttl as usize;
        if ttl == 0 || ttl > n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("silent router TTL {ttl} out of range 1..={n}"),
            ));
        }
        silence_time_exceeded(&lab, &hops[ttl])?;
    }
    let target_ns = hops[n + 1].clone();
    let target_v4 = link_v4(links, 2);
    let target_v6 = link_v6(links, 2);
    if spec.target_silent {
        lab.iptables(&target_ns, &["-A", "INPUT", "-j", "DROP"])?;
        for t in ["neighbour-solicitation", "neighbour-advertisement"] {
            lab.ip6tables(
                &target_ns,
                &[
                    "-A",
                    "INPUT",
                    "-p",
                    "ipv6-icmp",
                    "--icmpv6-type",
                    t,
                    "-j",
                    "ACCEPT",
                ],
            )?;
        }
        lab.ip6tables(&target_ns, &["-A", "INPUT", "-j", "DROP"])?;
    }
    if spec.target_reject_host_unreach {
        let last = &hops[n];
        let (t4, t6) = (target_v4.to_string(), target_v6.to_string());
        lab.iptables(
            last,
            &[
                "-A",
                "FORWARD",
                "-d",
                &t4,
                "-j",
                "REJECT",
                "--reject-with",
                "icmp-host-unreachable",
            ],
        )?;
        lab.ip6tables(
            last,
            &[
                "-A",
                "FORWARD",
                "-d",
                &t6,
                "-j",
                "REJECT",
                "--reject-with",
                "icmp6-addr-unreachable",
            ],
        )?;
    }
    if let Some(port) = spec.tcp_open_port {
        lab.tcp_listen(&target_ns, port)?;
    }

    let hops_v4 = (1..=links).map(|k| link_v4(k, 2)).collect();
    let hops_v6 = (1..=links).map(|k| link_v6(k, 2)).collect();
    Ok(Path {
        src: hops[0].clone(),
        routers: hops[1..=n].to_vec(),
        target_ns,
        src_v4: link_v4(1, 1),
        src_v6: link_v6(1, 1),
        target_v4,
        target_v6,
        hops_v4,
        hops_v6,
        lab,
    })
}

/// Parameters of [`ecmp_diamond`].
#[derive(Debug, Clone, Default)]
pub struct DiamondSpec {
    /// Keep the kernel's default ICMP rate limiting on the routers.
    pub kernel_icmp_ratelimit: bool,
}

/// `src — r1 — {r2a, r2b} — r3 — dst`, built by [`ecmp_diamond`].
///
/// TTL 1 answers from `r1_*`, TTL 2 from `branch_a_*` or `branch_b_*`
/// depending on the flow, TTL 3 from `r3_a_*` or `r3_b_*` (r3's interface on
/// the branch the probe came through: routers answer from their inbound
/// interface), TTL 4 is the target. r3 routes back to the source through
/// branch a only.
#[derive(Debug)]
pub struct Diamond {
    pub lab: Lab,
    pub src: String,
    pub r1: String,
    /// Namespaces of the two branch routers `[r2a, r2b]`.
    pub branches: [String; 2],
    pub r3: String,
    pub target_ns: String,
    pub src_v4: Ipv4Addr,
    pub src_v6: Ipv6Addr,
    pub r1_v4: Ipv4Addr,
    pub r1_v6: Ipv6Addr,
    pub branch_a_v4: Ipv4Addr,
    pub branch_a_v6: Ipv6Addr,
    pub branch_b_v4: Ipv4Addr,
    pub branch_b_v6: Ipv6Addr,
    /// r3 on link 4 (reached through branch a).
    pub r3_a_v4: Ipv4Addr,
    pub r3_a_v6: Ipv6Addr,
    /// r3 on link 5 (reached through branch b).
    pub r3_b_v4: Ipv4Addr,
    pub r3_b_v6: Ipv6Addr,
    pub target_v4: Ipv4Addr,
    pub target_v6: Ipv6Addr,
}

/// Builds the ECMP diamond. r1 reaches the target subnet through a multipath
/// route over both branches with `fib_multipath_hash_policy=1` (L4 hash, v4 and
/// v6), so flows differing in ports take different branches. ICMP echo has no
/// ports and therefore always takes the same branch for a given src/dst pair.
///
/// Links: 1 src–r1, 2 r1–r2a, 3 r1–r2b, 4 r2a–r3, 5 r2b–r3, 6 r3–dst.
pub fn ecmp_diamond(spec: &DiamondSpec) -> io::Result<Diamond> {
    let mut lab = Lab::new("diamond")?;
    let ropts = NsOptions {
        kernel_icmp_ratelimit: spec.kernel_icmp_ratelimit,
    };
    let src = lab.add_ns("src")?;
    let r1 = lab.add_ns_opts("r1", ropts)?;
    let r2a = lab.add_ns_opts("r2a", ropts)?;
    let r2b = lab.add_ns_opts("r2b", ropts)?;
    let r3 = lab.add_ns_opts("r3", ropts)?;
    let dst = lab.add_ns("dst")?;
    for (k, a, b) in [
        (1, &src, &r1),
        (2, &r1, &r2a),
        (3, &r1, &r2b),
        (4, &r2a, &r3),
        (5, &r2b, &r3),
        (6, &r3, &dst),
    ] {
        connect(&mut lab, k, a, b, None)?;
    }
    lab.sysctls(
        &r1,
        &[
            ("net/ipv4/fib_multipath_hash_policy", "1"),
            ("net/ipv6/fib_multipath_hash_policy", "1"),
        ],
    )?;
    lab.ip_batch(&src, &routes_via(2..=6, 1, 2))?;
    let mut r1_routes = routes_via([4], 2, 2);
    r1_routes.extend(routes_via([5], 3, 2));
    r1_routes.push(format!(
        "route add 198.18.6.0/24 nexthop via {} dev lk2 nexthop via {} dev lk3",
        link_v4(2, 2),
        link_v4(3, 2)
    ));
    r1_routes.push(format!(
        "route add 2001:2:0:6::/64 nexthop via {} dev lk2 nexthop via {} dev lk3",
        link_v6(2, 2),
        link_v6(3, 2)
    ));
    lab.ip_batch(&r1, &r1_routes)?;
    let mut a = routes_via([1, 3], 2, 1);
    a.extend(routes_via([5, 6], 4, 2));
    lab.ip_batch(&r2a, &a)?;
    let mut b = routes_via([1, 2], 3, 1);
    b.extend(routes_via([4, 6], 5, 2));
    lab.ip_batch(&r2b, &b)?;
    lab.ip_batch(&r3, &routes_via([1, 2, 3], 4, 1))?;
    lab.ip_batch(&dst, &routes_via(1..=5, 6, 1))?;
    Ok(Diamond {
        src,
        r1,
        branches: [r2a, r2b],
        r3,
        target_ns: dst,
        src_v4: link_v4(1, 1),
        src_v6: link_v6(1, 1),
        r1_v4: link_v4(1, 2),
        r1_v6: link_v6(1, 2),
        branch_a_v4: link_v4(2, 2),
        branch_a_v6: link_v6(2, 2),
        branch_b_v4: link_v4(3, 2),
        branch_b_v6: link_v6(3, 2),
        r3_a_v4: link_v4(4, 2),
        r3_a_v6: link_v6(4, 2),
        r3_b_v4: link_v4(5, 2),
        r3_b_v6: link_v6(5, 2),
        target_v4: link_v4(6, 2),
        target_v6: link_v6(6, 2),
        lab,
    })
}

/// Parameters of [`colo_paths`].
#[derive(Debug, Clone, Default)]
pub struct ColoPathsSpec {
    /// Routers between each colo and the target (`routers[i]` for colo `i + 1`; 0 links the
    /// colo straight to the target). At most 60 colos and 60 routers per colo.
    pub routers: Vec<usize>,
    /// Extra addresses of the target (`198.19.0.1` is always there), for several targets.
    pub extra_targets: usize,
    /// `(colo, one_way)`: the first link of that colo (1-based) is a user-space delay link.
    pub delay: Option<(usize, Duration)>,
}

/// One colo of [`colo_paths`].
#[derive(Debug, Clone)]
pub struct ColoPath {
    /// The colo's namespace (where its agent runs).
    pub ns: String,
    /// `hops_v4[i]` answers a probe to the target sent with TTL `i + 1`; the last is the target.
    pub hops_v4: Vec<Ipv4Addr>,
}

/// Colos that reach one target over paths of their own, and a hub they all reach directly.
#[derive(Debug)]
pub struct ColoPaths {
    pub lab: Lab,
    /// Where NATS and the server run; `198.19.{i}.1` on its link to colo `i`.
    pub hub: String,
    pub colos: Vec<ColoPath>,
    pub target_ns: String,
    /// `198.19.0.1`, then `198.19.0.2`, … (`1 + extra_targets` addresses on the target's `lo`).
    pub targets_v4: Vec<Ipv4Addr>,
}

impl ColoPaths {
    /// The hub's address as seen from colo `i` (1-based).
    pub fn hub_v4(&self, colo: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, colo as u8, 1)
    }
}

/// Builds `hub — colo_i` management links and `colo_i — r_i1 — … — target` paths (IPv4):
/// colo `i`'s path links are `198.18.{i}.{4j}/30` (`.4j+1` on the colo side), so every colo
/// sees different router addresses, and the target answers from the same address to all.
pub fn colo_paths(tag: &str, spec: &ColoPathsSpec) -> io::Result<ColoPaths> {
    let n = spec.routers.len();
    if n == 0 || n > 60 || spec.routers.iter().any(|&r| r > 60) || spec.extra_targets > 200 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "1-60 colos, 0-60 routers each, at most 200 extra targets",
        ));
    }
    let mut lab = Lab::new(tag)?;
    let hub = lab.add_ns("hub")?;
    let target_ns = lab.add_ns("dst")?;
    let mut targets_v4 = Vec::new();
    for t in 0..=spec.extra_targets {
        let ip = Ipv4Addr::new(198, 19, 0, t as u8 + 1);
        lab.addr(&target_ns, "lo", &format!("{ip}/32"))?;
        targets_v4.push(ip);
    }
    let side = |i: usize, link: usize, s: u8| Ipv4Addr::new(198, 18, i as u8, (4 * link) as u8 + s);
    let mut colos = Vec::new();
    let mut target_routes = Vec::new();
    for (idx, &routers) in spec.routers.iter().enumerate() {
        let i = idx + 1;
        let colo = lab.add_ns(&format!("c{i}"))?;
        // Management link to the hub.
        lab.veth(&hub, &format!("c{i}"), &colo, "mg")?;
        lab.addr(&hub, &format!("c{i}"), &format!("198.19.{i}.1/24"))?;
        lab.addr(&colo, "mg", &format!("198.19.{i}.2/24"))?;
        // The path: nodes[0] = colo, nodes[1..=routers] = routers, then the target.
        let mut nodes = vec![colo.clone()];
        for j in 1..=routers {
            nodes.push(lab.add_ns(&format!("c{i}r{j}"))?);
        }
        for link in 0..=routers {
            let a = nodes[link].clone();
            let (b, if_b) = match nodes.get(link + 1) {
                Some(r) => (r.clone(), format!("p{link}")),
                None => (target_ns.clone(), format!("c{i}")),
            };
            let if_a = format!("p{link}");
            match spec.delay {
                Some((c, d)) if c == i && link == 0 => lab.delay_link(&a, &if_a, &b, &if_b, d)?,
                _ => lab.veth(&a, &if_a, &b, &if_b)?,
            }
            lab.addr(&a, &if_a, &format!("{}/30", side(i, link, 1)))?;
            lab.addr(&b, &if_b, &format!("{}/30", side(i, link, 2)))?;
        }
        // Towards the target: via the far side of each node's right link.
        for (link, ns) in nodes.iter().enumerate() {
            let mut lines = vec![format!(
                "route add 198.19.0.0/24 via {} dev p{link}",
                side(i, link, 2)
            )];
            if link > 0 {
                // Back to the colo: via the near side of the left link.
                lines.push(format!(
                    "route add 198.18.{i}.0/24 via {} dev p{}",
                    side(i, link - 1, 1),
                    link - 1
                ));
            }
            lab.ip_batch(ns, &lines)?;
        }
        target_routes.push(format!(
            "route add 198.18.{i}.0/24 via {} dev c{i}",
            side(i, routers, 1)
        ));
        let mut hops_v4: Vec<Ipv4Addr> = (0..routers).map(|j| side(i, j, 2)).collect();
        hops_v4.push(targets_v4[0]);
        colos.push(ColoPath { ns: colo, hops_v4 });
    }
    lab.ip_batch(&target_ns, &target_routes)?;
    Ok(ColoPaths {
        lab,
        hub,
        colos,
        target_ns,
        targets_v4,
    })
}
