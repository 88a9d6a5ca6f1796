//! The result model of the whole project: the objects of Cloudflare's traceroute API `result`
//! array, which `edgetrace traceroute --json` prints and the API serves.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// The annotation (in a node's `labels`) of a router that answered only the first probes of
/// the burst sent to it while a later hop answered all of its own: ICMP rate limiting, not loss.
pub const RATE_LIMITED: &str = "rate-limited";

/// The annotation (in a node's `labels`) of the hop where a NAT sits: beyond it, the quoted
/// probes came back rewritten (for UDP, the checksum that carries the probe's sequence).
pub const NAT: &str = "NAT";

/// The annotation (in a node's `labels`) of a node that one flow reached together with another
/// node at the same TTL: the load balancer in front spreads packets, not flows, so no flow
/// keeps to one path there.
pub const PER_PACKET: &str = "per-packet";

/// One node's replies at one TTL, before statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeResult {
    pub ip: IpAddr,
    pub rtts: Vec<Duration>,
    pub labels: Vec<String>,
    /// The flows (indices into the trace's flows, sorted) whose probes it answered; empty when
    /// not known. `ColoTrace::from_hops` rebuilds each flow's path from them.
    pub flows: Vec<u16>,
}

impl NodeResult {
    pub fn new(ip: IpAddr, rtt: Duration, labels: Vec<String>) -> NodeResult {
        let mut n = NodeResult {
            ip,
            rtts: Vec::new(),
            labels: Vec::new(),
            flows: Vec::new(),
        };
        n.add(rtt, labels);
        n
    }

    pub fn add(&mut self, rtt: Duration, labels: Vec<String>) {
        self.rtts.push(rtt);
        for l in labels {
            if !self.labels.contains(&l) {
                self.labels.push(l);
            }
        }
    }

    /// Records that flow `flow` reached this node.
    pub fn add_flow(&mut self, flow: u16) {
        if let Err(i) = self.flows.binary_search(&flow) {
            self.flows.insert(i, flow);
        }
    }
}

/// One TTL of a trace, before statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct HopResult {
    pub ttl: u8,
    pub sent: u32,
    pub nodes: Vec<NodeResult>,
}

impl HopResult {
    pub fn received(&self) -> u32 {
        self.nodes.iter().map(|n| n.rtts.len() as u32).sum()
    }
}

/// Merges the hops of a GRE and an ICMP trace of one measurement, labelling each node with the
/// trace it came from. The flows of each trace after the first are numbered after those of the
/// traces before it, so that every flow keeps a path of its own.
pub fn merge_labelled(traces: &[(&str, &[HopResult])]) -> Vec<HopResult> {
    let len = traces.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    let mut offsets = Vec::with_capacity(traces.len());
    let mut next = 0u16;
    for (_, hops) in traces {
        offsets.push(next);
        let flows = hops
            .iter()
            .flat_map(|h| &h.nodes)
            .flat_map(|n| n.flows.iter().map(|&f| f + 1))
            .max()
            .unwrap_or(1);
        next = next.saturating_add(flows);
    }
    (0..len)
        .map(|i| {
            let mut hop = HopResult {
                ttl: i as u8 + 1,
                sent: 0,
                nodes: Vec::new(),
            };
            for ((name, hops), &offset) in traces.iter().zip(&offsets) {
                if let Some(h) = hops.get(i) {
                    hop.sent += h.sent;
                    hop.nodes.extend(h.nodes.iter().cloned().map(|mut n| {
                        n.labels.push((*name).to_string());
                        for f in &mut n.flows {
                            *f = f.saturating_add(offset);
                        }
                        n
                    }));
                }
            }
            hop
        })
        .collect()
}

/// `{min, mean, max, std_dev}` in milliseconds; the standard deviation is the sample one, as in
/// the API's own example.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub std_dev: f64,
}

impl Stats {
    pub fn of(rtts: &[Duration]) -> Stats {
        if rtts.is_empty() {
            return Stats::default();
        }
        let ms: Vec<f64> = rtts.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        let n = ms.len() as f64;
        let mean = ms.iter().sum::<f64>() / n;
        let var = if ms.len() > 1 {
            ms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Stats {
            min: round3(ms.iter().copied().fold(f64::INFINITY, f64::min)),
            mean: round3(mean),
            max: round3(ms.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            std_dev: round3(var.sqrt()),
        }
    }
}

/// Microsecond precision, which is what a userspace timestamp gives.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One element of the API's `result` array: a target and its traces from each colo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Traceroute {
    pub target: String,
    pub colos: Vec<ColoTrace>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Colo {
    pub name: String,
    pub city: String,
}

/// The errors the API documents for a colo's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColoError {
    /// Code 1: the target could not be resolved or used by this colo.
    Target,
    /// Code 2: probes could not be sent (no route, no such address family here).
    Send,
    /// Code 3: the colo did not answer in time (agent gone, no agent).
    Unavailable,
    /// Code 4: the colo lacks the privilege this probe type needs.
    NotPermitted,
}

impl ColoError {
    pub fn message(self) -> String {
        let code = match self {
            ColoError::Target => 1,
            ColoError::Send => 2,
            ColoError::Unavailable => 3,
            ColoError::NotPermitted => 4,
        };
        format!("Could not gather traceroute data: Code {code}")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ColoTrace {
    pub colo: Colo,
    pub error: String,
    pub hops: Vec<Hop>,
    pub target_summary: TargetSummary,
    pub traceroute_time_ms: u64,
    /// edgetrace extension, present only when the trace used several flows (`paths`): every
    /// distinct path the flows took, most used first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<Path>,
}

/// One path through the network, as one or more flows took it (edgetrace extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Path {
    /// How many of the trace's flows took this path.
    pub flows: u32,
    /// Per TTL from 1 (one entry per element of `hops`), the addresses that answered these
    /// flows' probes: none when they got no answer, several when a flow itself reached
    /// several nodes at that TTL (per-packet load balancing).
    pub hops: Vec<Vec<String>>,
}

/// The distinct paths of the flows recorded in the nodes' `flows`, most used first (then in
/// the order of their first flow); none when every answer came from flow 0 (one flow).
///
/// A flow with no answer at a TTL (lost, or not probed there: the MDA probes new flows only
/// where vertices are undecided) is completed where that can be told: with the node of a TTL
/// where every flow met the same single node; then, if what it has seen agrees with exactly one
/// complete path, it counts towards that path. Otherwise it is listed with the gap (`[]`).
fn paths(hops: &[HopResult]) -> Vec<Path> {
    let flows = hops
        .iter()
        .flat_map(|h| &h.nodes)
        .flat_map(|n| n.flows.iter().map(|&f| usize::from(f) + 1))
        .max()
        .unwrap_or(0);
    if flows <= 1 {
        return Vec::new();
    }
    let mut per_flow: Vec<Vec<Vec<String>>> = vec![vec![Vec::new(); hops.len()]; flows];
    for (i, h) in hops.iter().enumerate() {
        for n in &h.nodes {
            for &f in &n.flows {
                per_flow[usize::from(f)][i].push(n.ip.to_string());
            }
        }
    }
    per_flow.retain(|seq| seq.iter().any(|ips| !ips.is_empty()));
    for (i, h) in hops.iter().enumerate() {
        if let [only] = h.nodes.as_slice() {
            for seq in &mut per_flow {
                if seq[i].is_empty() {
                    seq[i].push(only.ip.to_string());
                }
            }
        }
    }
    let complete = |seq: &Vec<Vec<String>>| seq.iter().all(|ips| !ips.is_empty());
    let mut out: Vec<Path> = Vec::new();
    let (full, partial): (Vec<_>, Vec<_>) = per_flow.into_iter().partition(complete);
    for seq in full {
        match out.iter_mut().find(|p| p.hops == seq) {
            Some(p) => p.flows += 1,
            None => out.push(Path {
                flows: 1,
                hops: seq,
            }),
        }
    }
    let known = out.len();
    for seq in partial {
        let agrees = |p: &Path| p.hops.iter().zip(&seq).all(|(a, b)| b.is_empty() || a == b);
        let mut matching = out[..known].iter().enumerate().filter(|(_, p)| agrees(p));
        match (matching.next(), matching.next()) {
            (Some((i, _)), None) => out[i].flows += 1,
            _ => match out[known..].iter_mut().find(|p| p.hops == seq) {
                Some(p) => p.flows += 1,
                None => out.push(Path {
                    flows: 1,
                    hops: seq,
                }),
            },
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.flows));
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hop {
    pub packets_ttl: u8,
    pub packets_sent: u32,
    pub packets_lost: u32,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Node {
    pub ip: String,
    /// The PTR name, or the IP when there is none.
    pub name: String,
    /// `"AS13335"`, or `""` when unknown.
    pub asn: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    pub packet_count: u32,
    pub min_rtt_ms: f64,
    pub mean_rtt_ms: f64,
    pub max_rtt_ms: f64,
    pub std_dev_rtt_ms: f64,
}

/// Statistics of the replies that came from the target itself. Latencies are absent when the
/// target never answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetSummary {
    pub asn: String,
    pub ip: String,
    pub name: String,
    pub packet_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_dev_latency_ms: Option<f64>,
}

impl ColoTrace {
    /// Builds the API object from hop results. Names start as the IP and ASNs empty; the
    /// enrichment layer fills them in.
    pub fn from_hops(
        colo: Colo,
        target: IpAddr,
        hops: &[HopResult],
        duration: Duration,
    ) -> ColoTrace {
        let mut target_rtts = Vec::new();
        let paths = paths(hops);
        let hops = hops
            .iter()
            .map(|h| {
                let received = h.received();
                Hop {
                    packets_ttl: h.ttl,
                    packets_sent: h.sent,
                    packets_lost: h.sent.saturating_sub(received),
                    nodes: h
                        .nodes
                        .iter()
                        .map(|n| {
                            if n.ip == target {
                                target_rtts.extend_from_slice(&n.rtts);
                            }
                            let s = Stats::of(&n.rtts);
                            Node {
                                ip: n.ip.to_string(),
                                name: n.ip.to_string(),
                                asn: String::new(),
                                labels: n.labels.clone(),
                                packet_count: n.rtts.len() as u32,
                                min_rtt_ms: s.min,
                                mean_rtt_ms: s.mean,
                                max_rtt_ms: s.max,
                                std_dev_rtt_ms: s.std_dev,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let s = Stats::of(&target_rtts);
        let answered = !target_rtts.is_empty();
        ColoTrace {
            colo,
            error: String::new(),
            hops,
            target_summary: TargetSummary {
                asn: String::new(),
                ip: target.to_string(),
                name: target.to_string(),
                packet_count: target_rtts.len() as u32,
                min_latency_ms: answered.then_some(s.min),
                mean_latency_ms: answered.then_some(s.mean),
                max_latency_ms: answered.then_some(s.max),
                std_dev_latency_ms: answered.then_some(s.std_dev),
            },
            traceroute_time_ms: duration.as_millis() as u64,
            paths,
        }
    }

    /// A colo's entry when it could not trace.
    pub fn failed(colo: Colo, target: &str, error: ColoError) -> ColoTrace {
        ColoTrace {
            colo,
            error: error.message(),
            hops: Vec::new(),
            target_summary: TargetSummary {
                asn: String::new(),
                ip: target.to_string(),
                name: target.to_string(),
                packet_count: 0,
                min_latency_ms: None,
                mean_latency_ms: None,
                max_latency_ms: None,
                std_dev_latency_ms: None,
            },
            traceroute_time_ms: 0,
            paths: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1e3)
    }

    #[test]
    fn stats_match_the_api_example() {
        // The seed's target_summary: min 0.014, mean 0.021, max 0.034, std dev 0.011269...
        let s = Stats::of(&[ms(0.014), ms(0.015), ms(0.034)]);
        assert_eq!((s.min, s.mean, s.max), (0.014, 0.021, 0.034));
        assert_eq!(s.std_dev, 0.011);
        assert_eq!(Stats::of(&[ms(2.0)]).std_dev, 0.0);
        assert_eq!(Stats::of(&[]), Stats::default());
    }

    #[test]
    fn json_shape_matches_the_api() {
        let target: IpAddr = "198.18.0.9".parse().unwrap();
        let router: IpAddr = "198.18.0.1".parse().unwrap();
        let hops = vec![
            HopResult {
                ttl: 1,
                sent: 3,
                nodes: vec![NodeResult {
                    ip: router,
                    rtts: vec![ms(1.0), ms(3.0)],
                    labels: vec![],
                    flows: vec![0],
                }],
            },
            HopResult {
                ttl: 2,
                sent: 3,
                nodes: vec![NodeResult {
                    ip: target,
                    rtts: vec![ms(2.0); 3],
                    labels: vec!["!H".into()],
                    flows: vec![0],
                }],
            },
        ];
        let colo = Colo {
            name: "local".into(),
            city: String::new(),
        };
        let t = ColoTrace::from_hops(colo, target, &hops, ms(12.7));
        let json = serde_json::to_value(&t).unwrap();
        let expected = serde_json::json!({
            "colo": {"name": "local", "city": ""},
            "error": "",
            "hops": [
                {"packets_ttl": 1, "packets_sent": 3, "packets_lost": 1, "nodes": [
                    {"ip": "198.18.0.1", "name": "198.18.0.1", "asn": "", "packet_count": 2,
                     "min_rtt_ms": 1.0, "mean_rtt_ms": 2.0, "max_rtt_ms": 3.0, "std_dev_rtt_ms": 1.414}]},
                {"packets_ttl": 2, "packets_sent": 3, "packets_lost": 0, "nodes": [
                    {"ip": "198.18.0.9", "name": "198.18.0.9", "asn": "", "labels": ["!H"], "packet_count": 3,
                     "min_rtt_ms": 2.0, "mean_rtt_ms": 2.0, "max_rtt_ms": 2.0, "std_dev_rtt_ms": 0.0}]}
            ],
            "target_summary": {"asn": "", "ip": "198.18.0.9", "name": "198.18.0.9", "packet_count": 3,
                "min_latency_ms": 2.0, "mean_latency_ms": 2.0, "max_latency_ms": 2.0, "std_dev_latency_ms": 0.0},
            "traceroute_time_ms": 12
        });
        assert_eq!(json, expected);
        let back: ColoTrace = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn paths_group_flows_and_complete_what_can_be_told() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let node = |a: &str, flows: &[u16]| NodeResult {
            ip: ip(a),
            rtts: vec![ms(1.0); flows.len()],
            labels: vec![],
            flows: flows.to_vec(),
        };
        let hop = |ttl: u8, nodes: Vec<NodeResult>| HopResult {
            ttl,
            sent: 6,
            nodes,
        };
        // Six flows: 0-2 by .3.1/.4.1, 3 by .3.2/.4.2; flow 4 was not seen at TTL 1 or 3 (one
        // node at TTL 1, and .4.1 at TTL 3 says which branch); flow 5 only at TTL 1 and 4.
        let hops = vec![
            hop(1, vec![node("198.18.1.1", &[0, 1, 2, 3, 5])]),
            hop(
                2,
                vec![node("198.18.3.1", &[0, 1, 2, 4]), node("198.18.3.2", &[3])],
            ),
            hop(
                3,
                vec![node("198.18.4.1", &[0, 1, 2]), node("198.18.4.2", &[3])],
            ),
            hop(4, vec![node("198.19.0.1", &[0, 1, 2, 3, 4, 5])]),
        ];
        let t = ColoTrace::from_hops(Colo::default(), ip("198.19.0.1"), &hops, ms(1.0));
        let got: Vec<(u32, Vec<Vec<&str>>)> = t
            .paths
            .iter()
            .map(|p| {
                let hops = p
                    .hops
                    .iter()
                    .map(|ips| ips.iter().map(String::as_str).collect())
                    .collect();
                (p.flows, hops)
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    4,
                    vec![
                        vec!["198.18.1.1"],
                        vec!["198.18.3.1"],
                        vec!["198.18.4.1"],
                        vec!["198.19.0.1"]
                    ]
                ),
                (
                    1,
                    vec![
                        vec!["198.18.1.1"],
                        vec!["198.18.3.2"],
                        vec!["198.18.4.2"],
                        vec!["198.19.0.1"]
                    ]
                ),
                // Flow 5 agrees with both paths: its gaps stay.
                (
                    1,
                    vec![vec!["198.18.1.1"], vec![], vec![], vec!["198.19.0.1"]]
                ),
            ]
        );
        // One flow: no paths, and the contract's JSON has no `paths` key.
        let one = vec![hop(1, vec![node("198.19.0.1", &[0])])];
        let t = ColoTrace::from_hops(Colo::default(), ip("198.19.0.1"), &one, ms(1.0));
        assert!(t.paths.is_empty());
        assert!(serde_json::to_value(&t).unwrap().get("paths").is_none());
    }

    #[test]
    fn gre_icmp_merge_labels_each_node() {
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let gre = vec![HopResult {
            ttl: 1,
            sent: 3,
            nodes: vec![NodeResult::new(a, ms(1.0), vec![])],
        }];
        let icmp = vec![
            HopResult {
                ttl: 1,
                sent: 3,
                nodes: vec![NodeResult::new(a, ms(1.0), vec![])],
            },
            HopResult {
                ttl: 2,
                sent: 3,
                nodes: vec![],
            },
        ];
        let m = merge_labelled(&[("gre", &gre), ("icmp", &icmp)]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].sent, 6);
        assert_eq!(m[0].nodes.len(), 2);
        assert_eq!(m[0].nodes[0].labels, vec!["gre"]);
        assert_eq!(m[0].nodes[1].labels, vec!["icmp"]);
        assert_eq!(
            ColoError::Unavailable.message(),
            "Could not gather traceroute data: Code 3"
        );
    }
}
