//! Property tests: printing a syntax tree and parsing the text gives the
//! same tree; parsing never panics and errors stay inside the input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edgetrace_rules::{CmpOp, Expr, Index, Literal, LogicalOp, Rhs, Span, parse};
use proptest::prelude::*;

const FIELDS: &[&str] = &[
    "http.host",
    "ip.src",
    "ssl",
    "http.request.headers",
    "http.request.uri.path",
    "cf.response.1xxx_code",
    "raw.http.request.uri.args",
    "_private.x9",
    "cf.threat_score",
];

const FUNCS: &[&str] = &["lower", "any", "concat", "len", "regex_replace", "my_func"];

fn z() -> Span {
    Span::default()
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        // Mostly-zero IPv6 addresses exercise "::" compression.
        (any::<u16>(), any::<u16>())
            .prop_map(|(a, b)| IpAddr::V6(Ipv6Addr::new(a, 0, 0, 0, 0, 0, 0, b))),
    ]
}

fn string() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z0-9/._ -]{0,12}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..8),
    ]
}

/// Literals usable in any value position (sets included).
fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        string().prop_map(Literal::String),
        any::<i64>().prop_map(Literal::Int),
        any::<bool>().prop_map(Literal::Bool),
        ip().prop_map(Literal::Ip),
        ip().prop_flat_map(|ip| {
            let max = if ip.is_ipv4() { 32u8 } else { 128 };
            (Just(ip), 0..=max).prop_map(|(ip, len)| Literal::Cidr(ip, len))
        }),
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| Literal::IntRange(a.min(b), a.max(b))),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| {
            Literal::IpRange(
                Ipv4Addr::from(a.min(b)).into(),
                Ipv4Addr::from(a.max(b)).into(),
            )
        }),
    ]
}

/// Literals usable as operands (IPv6 ones too, which may start with a letter: `fe80::1`).
fn operand_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        string().prop_map(Literal::String),
        any::<i64>().prop_map(Literal::Int),
        any::<bool>().prop_map(Literal::Bool),
        ip().prop_map(Literal::Ip),
    ]
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge),
        Just(CmpOp::Contains),
        Just(CmpOp::Matches),
        Just(CmpOp::Wildcard),
        Just(CmpOp::StrictWildcard),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        proptest::sample::select(FIELDS).prop_map(|f| Expr::Field {
            name: f.to_owned(),
            span: z()
        }),
        operand_literal().prop_map(|value| Expr::Literal { value, span: z() }),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            (
                proptest::sample::select(FUNCS),
                proptest::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(name, args)| Expr::Call {
                    name: name.to_owned(),
                    args,
                    span: z()
                }),
            (
                inner.clone(),
                prop_oneof![
                    (0i64..1000).prop_map(Index::Int),
                    string().prop_map(Index::Key),
                    Just(Index::Each)
                ]
            )
                .prop_map(|(base, index)| Expr::Index {
                    base: Box::new(base),
                    index,
                    span: z()
                }),
            (inner.clone(), cmp_op(), literal()).prop_map(|(lhs, op, lit)| Expr::Compare {
                lhs: Box::new(lhs),
                op,
                op_span: z(),
                rhs: Rhs::Literal(lit, z()),
                span: z(),
            }),
            (inner.clone(), proptest::collection::vec(literal(), 1..4)).prop_map(|(lhs, items)| {
                Expr::Compare {
                    lhs: Box::new(lhs),
                    op: CmpOp::In,
                    op_span: z(),
                    rhs: Rhs::Set(items.into_iter().map(|l| (l, z())).collect(), z()),
                    span: z(),
                }
            }),
            (
                inner.clone(),
                "[a-z_][a-z0-9_]{0,6}(\\.[a-z0-9_]{1,4}){0,2}"
            )
                .prop_map(|(lhs, name)| Expr::Compare {
                    lhs: Box::new(lhs),
                    op: CmpOp::In,
                    op_span: z(),
                    rhs: Rhs::List(name, z()),
                    span: z(),
                }),
            inner.clone().prop_map(|e| Expr::Not {
                inner: Box::new(e),
                span: z()
            }),
            (
                prop_oneof![
                    Just(LogicalOp::And),
                    Just(LogicalOp::Or),
                    Just(LogicalOp::Xor)
                ],
                proptest::collection::vec(inner, 2..4)
            )
                .prop_map(|(op, items)| Expr::Logical {
                    op,
                    items,
                    span: z()
                }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn print_parse_round_trip(ast in expr()) {
        let text = ast.to_string();
        let parsed = parse(&text);
        prop_assert!(parsed.is_ok(), "{text}\n{}", parsed.err().map(|e| e.to_string()).unwrap_or_default());
        let mut parsed = parsed.unwrap_or_else(|_| ast.clone());
        // Spans of the parsed tree lie within the text.
        prop_assert!(parsed.span().end <= text.len());
        parsed.clear_spans();
        prop_assert_eq!(&parsed, &ast, "{}", text);
        // Printing is canonical: printing again gives the same text.
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
        if let Err(e) = parse(&text) {
            prop_assert!(e.span().start <= e.span().end && e.span().end <= text.len());
            let _ = e.to_string();
        }
    }

    #[test]
    fn near_miss_text_never_panics(ast in expr(), cut in 0usize..200, junk in "[()\\[\\]{}\"#r$*!=<>~&|^ .:/0-9a-z-]{0,3}") {
        let text = ast.to_string();
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mutated = format!("{}{}{}", &text[..cut], junk, &text[cut..]);
        match parse(&mutated) {
            Err(e) => {
                prop_assert!(e.span().start <= e.span().end && e.span().end <= mutated.len());
                let _ = e.to_string();
            }
            Ok(ast) => {
                let printed = ast.to_string();
                let mut again = parse(&printed).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut orig = ast.clone();
                orig.clear_spans();
                again.clear_spans();
                prop_assert_eq!(orig, again);
            }
        }
    }
}
