//! `POST /accounts/{account_id}/diagnostics/traceroute`: validation of the body into engine
//! options, one error per problem with its JSON pointer, then the fleet.

use crate::error::{ApiError, ErrorItem, codes};
use edgetrace_probe::{
    Confidence, FlowCount, MaxTtl, Options, PacketType, PacketsPerTtl, Paths, WaitTime,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// At most this many targets per request, as Cloudflare's API allows.
pub const MAX_TARGETS: usize = 10;
/// `max_ttl` when absent or 0.
pub const DEFAULT_MAX_TTL: u8 = 15;

/// The request body (the schema of the document; the handler validates field by field).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TracerouteRequest {
    /// Hostnames, IPv4 or IPv6 addresses to trace, 1 to 10.
    #[schema(min_items = 1, max_items = 10)]
    targets: Vec<String>,
    /// Colo names (or site codes such as `den` for `den01`); all colos when absent.
    colos: Option<Vec<String>>,
    options: Option<TracerouteOptions>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TracerouteOptions {
    /// Max TTL; 0 or absent means 15.
    #[schema(minimum = 0, maximum = 64)]
    max_ttl: Option<u8>,
    /// Type of packet sent; `gre+icmp` runs a GRE and an ICMP trace and labels their nodes.
    #[schema(value_type = Option<String>, pattern = "^(icmp|tcp|udp|gre|gre\\+icmp)$")]
    packet_type: Option<String>,
    /// Packets sent at each TTL; 0 or absent means 3.
    #[schema(minimum = 0, maximum = 10)]
    packets_per_ttl: Option<u8>,
    /// UDP/TCP destination port, initial ICMP sequence, or GRE key; 0 picks the protocol's
    /// default (UDP 33434, TCP 80, ICMP 1).
    #[schema(minimum = 0, maximum = 65535)]
    port: Option<u16>,
    /// Seconds to wait for a response to a probe.
    #[schema(minimum = 1, maximum = 5)]
    wait_time: Option<u8>,
    /// edgetrace extension: flows per target, each a Paris traceroute with a flow identifier of
    /// its own (UDP/TCP source port, ICMP identifier and checksum, GRE key), to find every path
    /// through per-flow load balancers: an integer 1-64 (default 1), or `"auto"`: flows are
    /// added until the MDA's stopping rule says, with 95% confidence, that every next hop was
    /// seen. With more than one flow, each colo's result lists the distinct `paths`.
    #[schema(schema_with = paths_schema, required = false)]
    paths: Option<Value>,
}

/// `options.paths`: an integer 1-64 or `"auto"`.
fn paths_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(64)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["auto"])),
        )
        .description(Some(
            "edgetrace extension: flows per target (1-64, default 1), each a Paris traceroute \
             with a flow identifier of its own, or \"auto\" (the MDA at 95% confidence); with \
             more than one flow each colo's result lists the distinct `paths`",
        ))
        .build();
    Schema::OneOf(one_of)
}

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub targets: Vec<String>,
    pub colos: Option<Vec<String>>,
    pub options: Options,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(pointer: &str, message: String) -> ErrorItem {
    ErrorItem::at(codes::INVALID_FIELD, pointer, message)
}

/// An integer field within `min..=max`; integral floats such as `15.0` are accepted.
fn integer(
    errors: &mut Vec<ErrorItem>,
    object: &Map<String, Value>,
    field: &str,
    min: u64,
    max: u64,
) -> Option<u64> {
    let pointer = format!("/options/{field}");
    let value = object.get(field)?;
    if value.is_null() {
        return None;
    }
    let n = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    });
    match n {
        Some(n) if (min..=max).contains(&n) => Some(n),
        Some(n) => {
            errors.push(invalid(
                &pointer,
                format!("{field}: {n} is out of range; allowed: {min}-{max}"),
            ));
            None
        }
        None => {
            errors.push(invalid(
                &pointer,
                format!("{field}: must be an integer {min}-{max}, not {value}"),
            ));
            None
        }
    }
}

/// `options.paths` (edgetrace extension): an integer 1-64, or `"auto"` (the MDA at 95%).
fn paths(errors: &mut Vec<ErrorItem>, object: &Map<String, Value>) -> Option<Paths> {
    const POINTER: &str = "/options/paths";
    let value = object.get("paths")?;
    if value.is_null() {
        return None;
    }
    if value.as_str() == Some("auto") {
        return Some(Paths::Auto(Confidence::default()));
    }
    let n = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    });
    match n {
        Some(n) => match FlowCount::new(n) {
            Ok(n) => Some(Paths::Flows(n)),
            Err(_) => {
                errors.push(invalid(
                    POINTER,
                    format!("paths: {n} is out of range; allowed: 1-64, or \"auto\""),
                ));
                None
            }
        },
        None => {
            errors.push(invalid(
                POINTER,
                format!("paths: must be an integer 1-64 or \"auto\", not {value}"),
            ));
            None
        }
    }
}

/// Validates a request body; every problem is reported, each at its JSON pointer.
pub fn validate(body: &Value) -> Result<Validated, ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::invalid(vec![ErrorItem::at(
            codes::MALFORMED_BODY,
            "",
            format!("the body must be a JSON object, not {}", type_name(body)),
        )]));
    };
    let mut errors = Vec::new();
    for key in object.keys() {
        if !matches!(key.as_str(), "targets" | "colos" | "options") {
            errors.push(invalid(
                &format!("/{}", escape(key)),
                format!("unknown field {key:?}; allowed: targets, colos, options"),
            ));
        }
    }
    let mut targets = Vec::new();
    match object.get("targets") {
        None | Some(Value::Null) => errors.push(invalid(
            "/targets",
            "targets: required; give 1 to 10 hostnames or IP addresses".into(),
        )),
        Some(Value::Array(items)) => {
            if items.is_empty() || items.len() > MAX_TARGETS {
                errors.push(invalid(
                    "/targets",
                    format!("targets: {} given; allowed: 1-{MAX_TARGETS}", items.len()),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                let pointer = format!("/targets/{i}");
                match item.as_str() {
                    Some(t) => match edgetrace_fleet::check_target(t) {
                        Ok(()) => targets.push(t.to_string()),
                        Err(e) => errors.push(invalid(&pointer, e)),
                    },
                    None => errors.push(invalid(
                        &pointer,
                        format!("targets[{i}]: must be a string, not {}", type_name(item)),
                    )),
                }
            }
        }
        Some(other) => errors.push(invalid(
            "/targets",
            format!(
                "targets: must be an array of strings, not {}",
                type_name(other)
            ),
        )),
    }
    let colos = match object.get("colos") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut names = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(n) if !n.trim().is_empty() => names.push(n.to_string()),
                    _ => errors.push(invalid(
                        &format!("/colos/{i}"),
                        format!("colos[{i}]: must be a colo name, not {item}"),
                    )),
                }
            }
            Some(names)
        }
        Some(other) => {
            errors.push(invalid(
                "/colos",
                format!(
                    "colos: must be an array of colo names, not {}",
                    type_name(other)
                ),
            ));
            None
        }
    };
    let mut options = Options {
        max_ttl: MaxTtl::new(u64::from(DEFAULT_MAX_TTL)).unwrap_or_default(),
        ..Options::default()
    };
    match object.get("options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for key in o.keys() {
                if !matches!(
                    key.as_str(),
                    "max_ttl" | "packet_type" | "packets_per_ttl" | "port" | "wait_time" | "paths"
                ) {
                    errors.push(invalid(
                        &format!("/options/{}", escape(key)),
                        format!(
                            "unknown option {key:?}; allowed: max_ttl, packet_type, packets_per_ttl, port, wait_time, paths"
                        ),
                    ));
                }
            }
            if let Some(n) = integer(&mut errors, o, "max_ttl", 0, 64).filter(|&n| n > 0) {
                options.max_ttl = MaxTtl::new(n).unwrap_or_default();
            }
            if let Some(n) = integer(&mut errors, o, "packets_per_ttl", 0, 10).filter(|&n| n > 0) {
                options.packets_per_ttl = PacketsPerTtl::new(n).unwrap_or_default();
            }
            if let Some(n) = integer(&mut errors, o, "port", 0, 65535) {
                options.port = n as u16;
            }
            if let Some(n) = integer(&mut errors, o, "wait_time", 1, 5) {
                options.wait_time = WaitTime::new(n).unwrap_or_default();
            }
            if let Some(p) = paths(&mut errors, o) {
                options.paths = p;
            }
            match o.get("packet_type") {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => match s.parse::<PacketType>() {
                    Ok(p) => options.packet_type = p,
                    Err(e) => errors.push(invalid("/options/packet_type", e.to_string())),
                },
                Some(other) => errors.push(invalid(
                    "/options/packet_type",
                    format!(
                        "packet_type: must be one of icmp, tcp, udp, gre, gre+icmp, not {}",
                        type_name(other)
                    ),
                )),
            }
        }
        Some(other) => errors.push(invalid(
            "/options",
            format!("options: must be an object, not {}", type_name(other)),
        )),
    }
    if errors.is_empty() {
        Ok(Validated {
            targets,
            colos,
            options,
        })
    } else {
        Err(ApiError::invalid(errors))
    }
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointers(body: Value) -> Vec<(String, String)> {
        validate(&body)
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| (e.source.map(|s| s.pointer).unwrap_or_default(), e.message))
            .collect()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let v = validate(&json!({"targets": ["198.18.0.1"]})).unwrap();
        assert_eq!(v.options.max_ttl.get(), 15);
        assert_eq!(v.options.packets_per_ttl.get(), 3);
        assert_eq!(v.options.wait_time.get(), 1);
        assert_eq!(v.options.packet_type, PacketType::Icmp);
        assert_eq!(v.options.port, 0);
        assert_eq!(v.colos, None);
        let v = validate(&json!({"targets": ["a.example"], "colos": ["den"],
            "options": {"max_ttl": 0, "packets_per_ttl": 0, "packet_type": "gre+icmp",
                        "port": 65535, "wait_time": 5.0}}))
        .unwrap();
        assert_eq!(v.options.max_ttl.get(), 15);
        assert_eq!(v.options.packets_per_ttl.get(), 3);
        assert_eq!(v.options.packet_type, PacketType::GreIcmp);
        assert_eq!((v.options.port, v.options.wait_time.get()), (65535, 5));
        assert_eq!(v.colos.unwrap(), ["den"]);
    }

    #[test]
    fn every_problem_is_reported_at_its_pointer() {
        let errors = pointers(json!({
            "targets": ["198.18.0.1", 7, "a b", "ok.example"],
            "colos": "den",
            "options": {"max_ttl": 65, "packets_per_ttl": -1, "wait_time": 0,
                        "port": 1.5, "packet_type": "sctp", "ttl": 3},
            "extra": true
        }));
        let ptrs: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            ptrs,
            [
                "/extra",
                "/targets/1",
                "/targets/2",
                "/colos",
                "/options/ttl",
                "/options/max_ttl",
                "/options/packets_per_ttl",
                "/options/port",
                "/options/wait_time",
                "/options/packet_type"
            ]
        );
        assert_eq!(errors[5].1, "max_ttl: 65 is out of range; allowed: 0-64");
        assert_eq!(errors[8].1, "wait_time: 0 is out of range; allowed: 1-5");
        assert!(
            errors[9]
                .1
                .contains("allowed: icmp, udp, tcp, gre, gre+icmp"),
            "{}",
            errors[9].1
        );
    }

    #[test]
    fn paths_is_a_flow_count_or_auto() {
        let v = validate(&json!({"targets": ["198.18.0.1"]})).unwrap();
        assert_eq!(v.options.paths, Paths::default());
        let paths =
            |p: Value| validate(&json!({"targets": ["a.example"], "options": {"paths": p}}));
        assert_eq!(
            paths(json!(16)).unwrap().options.paths,
            Paths::Flows(FlowCount::new(16).unwrap())
        );
        assert_eq!(
            paths(json!(64.0)).unwrap().options.paths,
            Paths::Flows(FlowCount::new(64).unwrap())
        );
        assert_eq!(
            paths(json!("auto")).unwrap().options.paths,
            Paths::Auto(Confidence::new(95).unwrap())
        );
        assert_eq!(paths(Value::Null).unwrap().options.paths, Paths::default());
        for (bad, message) in [
            (
                json!(0),
                "paths: 0 is out of range; allowed: 1-64, or \"auto\"",
            ),
            (
                json!(65),
                "paths: 65 is out of range; allowed: 1-64, or \"auto\"",
            ),
            (
                json!(2.5),
                "paths: must be an integer 1-64 or \"auto\", not 2.5",
            ),
            (
                json!("all"),
                "paths: must be an integer 1-64 or \"auto\", not \"all\"",
            ),
            (
                json!("16"),
                "paths: must be an integer 1-64 or \"auto\", not \"16\"",
            ),
        ] {
            let errors = pointers(json!({"targets": ["a.example"], "options": {"paths": bad}}));
            assert_eq!(
                errors,
                [("/options/paths".to_string(), message.to_string())]
            );
        }
    }

    #[test]
    fn targets_count_and_shape() {
        assert_eq!(pointers(json!({}))[0].0, "/targets");
        assert_eq!(
            pointers(json!({"targets": []}))[0].1,
            "targets: 0 given; allowed: 1-10"
        );
        let eleven: Vec<String> = (0..11).map(|i| format!("198.18.0.{i}")).collect();
        assert_eq!(
            pointers(json!({"targets": eleven}))[0].1,
            "targets: 11 given; allowed: 1-10"
        );
        assert_eq!(pointers(json!({"targets": "x"}))[0].0, "/targets");
        assert_eq!(pointers(json!([1]))[0].0, "");
        assert_eq!(pointers(json!({"targets": ["x"], "a/b": 1}))[0].0, "/a~1b");
    }
}
