//! The crate's single error type, with spans and caret rendering.

use std::fmt;

/// A byte range `start..end` in the expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte of the range.
    pub start: usize,
    /// One past the last byte of the range.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` (byte offsets).
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What kind of problem an [`Error`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text does not follow the grammar.
    Syntax,
    /// A field name is not in the scheme.
    UnknownField,
    /// A function name is not known.
    UnknownFunction,
    /// Operand or argument types do not fit.
    Type,
    /// A function argument breaks the function's rules.
    Argument,
    /// A field or function is not available in this phase or expression kind.
    Availability,
    /// A regular expression or wildcard pattern is invalid.
    Pattern,
    /// A named list is unknown or of the wrong kind.
    List,
    /// The expression exceeds a size or nesting limit.
    Limit,
    /// A value given to an execution context does not fit the field.
    Context,
}

/// An error from parsing, checking or compiling an expression, or from
/// filling an execution context.
///
/// Its `Display` renders the message followed by the offending line of the
/// expression with carets under the problem:
///
/// ```text
/// unknown field "http.hots" — did you mean "http.host"?
///  | http.hots eq "example.com"
///  | ^^^^^^^^^
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct Error {
    kind: ErrorKind,
    message: String,
    span: Span,
    expression: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, span: Span, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            span,
            expression: String::new(),
        }
    }

    pub(crate) fn with_expression(mut self, text: &str) -> Self {
        // Clamp the span to the text so rendering never slices out of bounds.
        let len = text.len();
        let mut start = self.span.start.min(len);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = self.span.end.clamp(start, len);
        while !text.is_char_boundary(end) {
            end += 1;
        }
        self.span = Span::new(start, end);
        self.expression = text.to_owned();
        self
    }

    /// The kind of problem.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message alone, without the rendered expression.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where in the expression the problem is (byte offsets).
    pub fn span(&self) -> Span {
        self.span
    }

    /// The expression the error is about (empty for context errors).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The message, then the line of the expression holding the problem with
    /// carets (`^`) under it. Multi-line expressions also name the line and
    /// column.
    pub fn render(&self) -> String {
        let mut out = self.message.clone();
        if self.expression.is_empty() {
            return out;
        }
        let text = &self.expression;
        let start = self.span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = &text[line_start..line_end];
        let line_no = text[..line_start].matches('\n').count() + 1;
        let col = text[line_start..start].chars().count() + 1;
        let multi_line = text.contains('\n');
        if multi_line {
            out.push_str(&format!("\n --> line {line_no}, column {col}"));
        }
        let shown: String = line
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .collect();
        let pad = text[line_start..start].chars().count();
        let span_end = self.span.end.min(line_end).max(start);
        let width = text[start..span_end].chars().count().max(1);
        out.push_str("\n | ");
        out.push_str(&shown);
        out.push_str("\n | ");
        out.push_str(&" ".repeat(pad));
        out.push_str(&"^".repeat(width));
        out
    }
}

/// Shorthand for results carrying this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Levenshtein distance, for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate within a small edit distance.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.len() / 3).clamp(1, 3);
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

pub(crate) struct Quoted<'a>(pub &'a [u8]);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        write_escaped(f, self.0)?;
        f.write_str("\"")
    }
}

/// Writes bytes as the inside of a quoted string literal: `"` and `\` are
/// escaped, invalid UTF-8 and control bytes become `\xHH`.
pub(crate) fn write_escaped(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}
