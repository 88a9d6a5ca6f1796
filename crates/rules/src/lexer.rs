//! Scanning primitives. The parser pulls tokens on demand because the
//! meaning of text such as `10.0.0.0/8` or `1..5` depends on where it
//! appears.

use std::net::IpAddr;

use crate::ast::Literal;
use crate::error::{Error, ErrorKind, Result, Span};

pub(crate) struct Lexer<'a> {
    pub(crate) src: &'a str,
    pub(crate) pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_numberish(c: char) -> bool {
    c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '/' | '-')
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0 }
    }

    pub(crate) fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    pub(crate) fn skip_ws(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start();
        self.pos += rest.len() - trimmed.len();
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(crate) fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// Span of the next character (or an empty span at the end).
    pub(crate) fn next_char_span(&self) -> Span {
        let len = self.peek().map_or(0, char::len_utf8);
        Span::new(self.pos, self.pos + len)
    }

    /// Span of the next "word" (run of non-space characters, at least one
    /// character), for error messages.
    pub(crate) fn next_word_span(&self) -> Span {
        let rest = self.rest();
        let first = rest.chars().next();
        let len = match first {
            Some(c) if is_ident_char(c) || c == '.' => rest
                .find(|c: char| !(is_ident_char(c) || c == '.'))
                .unwrap_or(rest.len()),
            Some(c) => c.len_utf8(),
            None => 0,
        };
        Span::new(self.pos, self.pos + len)
    }

    /// Consumes `s` if the input continues with it.
    pub(crate) fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Consumes the keyword `word` if it is followed by a non-identifier character.
    pub(crate) fn eat_word(&mut self, word: &str) -> bool {
        let rest = self.rest();
        if rest.starts_with(word) && !rest[word.len()..].starts_with(is_ident_char) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// Whether an IPv6 address (or CIDR, or range) that starts with a hex letter starts here
    /// (`fe80::1`): a run of hex digits and `:./-` with a `:` in it, which no field name has.
    pub(crate) fn at_ipv6_word(&self) -> bool {
        let rest = self.rest();
        let run = rest.find(|c| !is_numberish(c)).unwrap_or(rest.len());
        rest.starts_with(|c: char| c.is_ascii_hexdigit()) && rest[..run].contains(':')
    }

    /// Whether an identifier starts here (and not a raw string).
    pub(crate) fn at_ident(&self) -> bool {
        self.peek().is_some_and(is_ident_start) && !self.at_raw_string()
    }

    fn at_raw_string(&self) -> bool {
        let rest = self.rest();
        rest.starts_with("r\"") || rest.starts_with("r#")
    }

    pub(crate) fn at_string(&self) -> bool {
        self.peek() == Some('"') || self.at_raw_string()
    }

    /// Scans `name(.name)*` where the first part starts with a letter or `_`.
    pub(crate) fn ident(&mut self) -> Option<(&'a str, Span)> {
        if !self.at_ident() {
            return None;
        }
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut end = start;
        while end < bytes.len() && is_ident_char(bytes[end] as char) {
            end += 1;
        }
        while end + 1 < bytes.len() && bytes[end] == b'.' && is_ident_char(bytes[end + 1] as char) {
            end += 1;
            while end < bytes.len() && is_ident_char(bytes[end] as char) {
                end += 1;
            }
        }
        self.pos = end;
        Some((&self.src[start..end], Span::new(start, end)))
    }

    /// Scans a quoted or raw string.
    pub(crate) fn string(&mut self) -> Result<(Vec<u8>, Span)> {
        let start = self.pos;
        if self.eat("r") {
            let hashes = self.rest().len() - self.rest().trim_start_matches('#').len();
            self.pos += hashes;
            if !self.eat("\"") {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    Span::new(start, self.pos),
                    "a raw string starts with r\" or r#\" (any number of #)",
                ));
            }
            let close = format!("\"{}", "#".repeat(hashes));
            return match self.rest().find(&close) {
                Some(i) => {
                    let body = self.rest().as_bytes()[..i].to_vec();
                    self.pos += i + close.len();
                    Ok((body, Span::new(start, self.pos)))
                }
                None => Err(Error::new(
                    ErrorKind::Syntax,
                    Span::new(start, self.src.len()),
                    format!("unterminated raw string: missing closing {close}"),
                )),
            };
        }
        if !self.eat("\"") {
            return Err(Error::new(
                ErrorKind::Syntax,
                self.next_char_span(),
                "expected a string",
            ));
        }
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    Span::new(start, self.src.len()),
                    "unterminated string: missing closing \"",
                ));
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok((out, Span::new(start, self.pos))),
                '\\' => match self.peek() {
                    Some(e @ ('"' | '\\')) => {
                        self.pos += 1;
                        out.push(e as u8);
                    }
                    Some('x') => {
                        let hex = self
                            .rest()
                            .get(1..3)
                            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                            Some(b) => {
                                self.pos += 3;
                                out.push(b);
                            }
                            None => {
                                let end = (at + 4).min(self.src.len());
                                let end = (at + 2..=end)
                                    .rev()
                                    .find(|&e| self.src.is_char_boundary(e))
                                    .unwrap_or(at + 2);
                                return Err(Error::new(
                                    ErrorKind::Syntax,
                                    Span::new(at, end),
                                    "invalid escape: \\x must be followed by two hex digits",
                                ));
                            }
                        }
                    }
                    other => {
                        let len = 1 + other.map_or(0, char::len_utf8);
                        let shown: String = other.map(String::from).unwrap_or_default();
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            Span::new(at, at + len),
                            format!(
                                "invalid escape \"\\{shown}\" in a string: only \\\", \\\\ and \\xHH are allowed \
                                 (write \\\\ for a backslash, or use a raw string r\"…\" for regular expressions)"
                            ),
                        ));
                    }
                },
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }

    /// Scans a number, IP address, CIDR or range, and interprets it.
    pub(crate) fn number_like(&mut self) -> Result<(Literal, Span)> {
        let start = self.pos;
        let len = self
            .rest()
            .find(|c| !is_numberish(c))
            .unwrap_or(self.rest().len());
        self.pos += len;
        // Letters glued to the value make it invalid: include them in the span.
        let glued = self
            .rest()
            .find(|c| !is_ident_char(c))
            .unwrap_or(self.rest().len());
        let span = Span::new(start, self.pos + glued);
        if len == 0 || glued > 0 {
            self.pos += glued;
            return Err(invalid_value(&self.src[span.start..span.end], span));
        }
        let text = &self.src[start..self.pos];
        parse_literal_text(text, span).map(|l| (l, span))
    }
}

fn invalid_value(text: &str, span: Span) -> Error {
    Error::new(
        ErrorKind::Syntax,
        span,
        format!(
            "invalid value \"{text}\": expected a string, an integer, a Boolean or an IP address"
        ),
    )
}

fn parse_int(text: &str, span: Span) -> Result<Option<i64>> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    text.parse::<i64>().map(Some).map_err(|_| {
        Error::new(
            ErrorKind::Syntax,
            span,
            format!("integer {text} is out of range (64-bit signed)"),
        )
    })
}

fn parse_literal_text(text: &str, span: Span) -> Result<Literal> {
    if let Some((a, b)) = text.split_once("..") {
        if let (Some(x), Some(y)) = (parse_int(a, span)?, parse_int(b, span)?) {
            if x > y {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    span,
                    format!("invalid range {text}: the start is greater than the end"),
                ));
            }
            return Ok(Literal::IntRange(x, y));
        }
        if let (Ok(x), Ok(y)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            if x.is_ipv4() != y.is_ipv4() || x > y {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    span,
                    format!(
                        "invalid IP range {text}: both ends must be of the same family and the start not above the end"
                    ),
                ));
            }
            return Ok(Literal::IpRange(x, y));
        }
        return Err(Error::new(
            ErrorKind::Syntax,
            span,
            format!(
                "invalid range \"{text}\": expected integers (1..5) or IP addresses (10.0.0.1..10.0.0.9)"
            ),
        ));
    }
    if let Some((ip, len)) = text.split_once('/') {
        let ip: IpAddr = ip.parse().map_err(|_| invalid_cidr(text, span))?;
        let len: u8 = len.parse().map_err(|_| invalid_cidr(text, span))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if len > max || len.to_string().len() != text.split_once('/').map_or(0, |(_, l)| l.len()) {
            return Err(invalid_cidr(text, span));
        }
        return Ok(Literal::Cidr(ip, len));
    }
    if let Some(i) = parse_int(text, span)? {
        return Ok(Literal::Int(i));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Literal::Ip(ip));
    }
    Err(invalid_value(text, span))
}

fn invalid_cidr(text: &str, span: Span) -> Error {
    Error::new(
        ErrorKind::Syntax,
        span,
        format!(
            "invalid CIDR \"{text}\": expected an address and a prefix length (at most 32 for IPv4, 128 for IPv6)"
        ),
    )
}
