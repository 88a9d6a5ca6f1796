//! Pinned error rendering: message, the offending line, carets under the
//! problem.

use edgetrace_rules::{ExprKind, Expression, Phase, Scheme, Target};

fn render(text: &str, target: Target) -> String {
    let scheme = Scheme::cloudflare();
    Expression::parse(&scheme, text, target)
        .expect_err("should fail")
        .to_string()
}

#[test]
fn unknown_field_with_suggestion() {
    assert_eq!(
        render(r#"http.hots eq "example.com""#, Target::FILTER),
        concat!(
            "unknown field \"http.hots\" — did you mean \"http.host\"?\n",
            " | http.hots eq \"example.com\"\n",
            " | ^^^^^^^^^",
        )
    );
}

#[test]
fn operator_not_defined_for_type() {
    assert_eq!(
        render("ip.src lt 10.0.0.1", Target::FILTER),
        concat!(
            "\"lt\" is not defined for IP addresses: use eq, ne or in {…}\n",
            " | ip.src lt 10.0.0.1\n",
            " |        ^^",
        )
    );
    assert_eq!(
        render(r#"ssl and ip.src < 10.0.0.1"#, Target::FILTER),
        concat!(
            "\"lt\" is not defined for IP addresses: use eq, ne or in {…}\n",
            " | ssl and ip.src < 10.0.0.1\n",
            " |                ^",
        )
    );
}

#[test]
fn value_only_function_in_filter() {
    assert_eq!(
        render(r#"to_string(cf.threat_score) eq "5""#, Target::FILTER),
        concat!(
            "to_string() cannot be used in a filter expression: it is only available in rewrite expressions ",
            "of Transform Rules and target URL expressions of dynamic URL redirects\n",
            " | to_string(cf.threat_score) eq \"5\"\n",
            " | ^^^^^^^^^",
        )
    );
}

#[test]
fn function_in_wrong_phase() {
    assert_eq!(
        render(
            "cidr(ip.src, 24, 24) eq 10.0.0.0",
            Target::filter_in(Phase::HttpRequestOrigin)
        ),
        concat!(
            "cidr() is not available in phase http_request_origin: it is only available in custom rules and rate limiting rules\n",
            " | cidr(ip.src, 24, 24) eq 10.0.0.0\n",
            " | ^^^^",
        )
    );
}

#[test]
fn type_mismatch_points_at_value() {
    assert_eq!(
        render("http.host eq 5", Target::FILTER),
        concat!(
            "`http.host` is a String, so the value must be a string such as \"text\", not an integer\n",
            " | http.host eq 5\n",
            " |              ^",
        )
    );
}

#[test]
fn end_of_input_caret() {
    assert_eq!(
        render("http.host eq", Target::FILTER),
        concat!(
            "expected a value after \"eq\", found the end of the expression\n",
            " | http.host eq\n",
            " |             ^",
        )
    );
}

#[test]
fn multi_line_expressions_name_line_and_column() {
    assert_eq!(
        render("ssl\nand http.hots eq \"a\"", Target::FILTER),
        concat!(
            "unknown field \"http.hots\" — did you mean \"http.host\"?\n",
            " --> line 2, column 5\n",
            " | and http.hots eq \"a\"\n",
            " |     ^^^^^^^^^",
        )
    );
}

#[test]
fn invalid_escape() {
    assert_eq!(
        render(r#"http.request.uri.path matches "\.php$""#, Target::FILTER),
        concat!(
            "invalid escape \"\\.\" in a string: only \\\", \\\\ and \\xHH are allowed ",
            "(write \\\\ for a backslash, or use a raw string r\"…\" for regular expressions)\n",
            " | http.request.uri.path matches \"\\.php$\"\n",
            " |                                ^^",
        )
    );
}

#[test]
fn filter_must_be_boolean() {
    assert_eq!(
        render(r#"any(http.request.headers.names[*] eq "a") and http.request.headers.names[*] eq "b""#, Target::FILTER),
        concat!(
            "an operand of \"and\" must be Boolean, but `http.request.headers.names[*] eq \"b\"` is Array<Boolean>: wrap it in any(…) or all(…)\n",
            " | any(http.request.headers.names[*] eq \"a\") and http.request.headers.names[*] eq \"b\"\n",
            " |                                                http.request.headers.names[*] eq \"b\"",
        )
        .replace(
            " |                                                http.request.headers.names[*] eq \"b\"",
            &format!(" |{}{}", " ".repeat(47), "^".repeat(36)),
        )
    );
}

#[test]
fn value_expression_kind() {
    assert!(render("cf.threat_score", ExprKind::Value.into()).starts_with(
        "a value expression must produce a String, but this is an Integer; convert it with to_string(…)"
    ));
}
