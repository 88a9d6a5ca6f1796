//! Recursive-descent parser: text → [`Expr`].

use crate::ast::{CmpOp, Expr, Index, Literal, LogicalOp, Rhs};
use crate::error::{Error, ErrorKind, Result, Span};
use crate::lexer::Lexer;

/// The longest expression accepted, in characters (Cloudflare's limit).
pub const MAX_EXPRESSION_CHARS: usize = 4096;
/// The deepest nesting accepted (parentheses, `not`, function calls).
pub const MAX_DEPTH: usize = 64;

const KEYWORDS: &[&str] = &[
    "and", "or", "xor", "not", "eq", "ne", "lt", "le", "gt", "ge", "contains", "matches",
    "wildcard", "strict", "in",
];

/// Parses `text` into a syntax tree (no type checking).
///
/// Errors carry a span within `text` and render with a caret.
pub fn parse(text: &str) -> Result<Expr> {
    parse_inner(text).map_err(|e| e.with_expression(text))
}

fn parse_inner(text: &str) -> Result<Expr> {
    let chars = text.chars().count();
    if chars > MAX_EXPRESSION_CHARS {
        let cut = text
            .char_indices()
            .nth(MAX_EXPRESSION_CHARS)
            .map_or(text.len(), |(i, _)| i);
        return Err(Error::new(
            ErrorKind::Limit,
            Span::new(cut, text.len()),
            format!("expression is {chars} characters long; the maximum is 4,096"),
        ));
    }
    let mut p = Parser {
        lx: Lexer::new(text),
        depth: 0,
    };
    let expr = p.or()?;
    p.lx.skip_ws();
    if !p.lx.at_end() {
        let span = p.lx.next_word_span();
        let found = &text[span.start..span.end];
        let msg = if matches!(
            expr,
            Expr::Compare { .. } | Expr::Logical { .. } | Expr::Not { .. }
        ) {
            format!(
                "unexpected \"{found}\": expected \"and\", \"or\", \"xor\" or the end of the expression"
            )
        } else {
            format!(
                "unexpected \"{found}\": expected an operator (eq, ne, lt, le, gt, ge, contains, matches, \
                 wildcard, strict wildcard, in), \"and\", \"or\", \"xor\" or the end of the expression"
            )
        };
        return Err(Error::new(ErrorKind::Syntax, span, msg));
    }
    Ok(expr)
}

struct Parser<'a> {
    lx: Lexer<'a>,
    depth: usize,
}

impl Parser<'_> {
    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::Limit,
                self.lx.next_char_span(),
                format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr> {
        self.chain(LogicalOp::Or, Self::xor)
    }

    fn xor(&mut self) -> Result<Expr> {
        self.chain(LogicalOp::Xor, Self::and)
    }

    fn and(&mut self) -> Result<Expr> {
        self.chain(LogicalOp::And, Self::unary)
    }

    fn eat_logical(&mut self, op: LogicalOp) -> bool {
        self.lx.skip_ws();
        match op {
            LogicalOp::And => self.lx.eat_word("and") || self.lx.eat("&&"),
            LogicalOp::Xor => self.lx.eat_word("xor") || self.lx.eat("^^"),
            LogicalOp::Or => self.lx.eat_word("or") || self.lx.eat("||"),
        }
    }

    fn chain(&mut self, op: LogicalOp, next: fn(&mut Self) -> Result<Expr>) -> Result<Expr> {
        let first = next(self)?;
        let mut items = vec![first];
        while self.eat_logical(op) {
            items.push(next(self)?);
        }
        if items.len() == 1 {
            return Ok(items.remove(0));
        }
        let span = items[0].span().to(items[items.len() - 1].span());
        Ok(Expr::Logical { op, items, span })
    }

    fn unary(&mut self) -> Result<Expr> {
        self.lx.skip_ws();
        let start = self.lx.pos;
        let negated = self.lx.eat_word("not")
            || (self.lx.peek() == Some('!') && self.lx.peek2() != Some('=') && self.lx.eat("!"));
        if negated {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            let span = Span::new(start, inner.span().end);
            return Ok(Expr::Not {
                inner: Box::new(inner),
                span,
            });
        }
        self.comparison()
    }

    fn cmp_op(&mut self) -> Option<(CmpOp, Span)> {
        self.lx.skip_ws();
        let start = self.lx.pos;
        let lx = &mut self.lx;
        let op = if lx.eat("==") {
            CmpOp::Eq
        } else if lx.eat("!=") {
            CmpOp::Ne
        } else if lx.eat("<=") {
            CmpOp::Le
        } else if lx.eat(">=") {
            CmpOp::Ge
        } else if lx.eat("<") {
            CmpOp::Lt
        } else if lx.eat(">") {
            CmpOp::Gt
        } else if lx.eat("~") {
            CmpOp::Matches
        } else if lx.eat_word("eq") {
            CmpOp::Eq
        } else if lx.eat_word("ne") {
            CmpOp::Ne
        } else if lx.eat_word("lt") {
            CmpOp::Lt
        } else if lx.eat_word("le") {
            CmpOp::Le
        } else if lx.eat_word("gt") {
            CmpOp::Gt
        } else if lx.eat_word("ge") {
            CmpOp::Ge
        } else if lx.eat_word("contains") {
            CmpOp::Contains
        } else if lx.eat_word("matches") {
            CmpOp::Matches
        } else if lx.eat_word("wildcard") {
            CmpOp::Wildcard
        } else if lx.eat_word("in") {
            CmpOp::In
        } else {
            let save = lx.pos;
            if lx.eat_word("strict") {
                lx.skip_ws();
                if lx.eat_word("wildcard") {
                    return Some((CmpOp::StrictWildcard, Span::new(start, self.lx.pos)));
                }
            }
            self.lx.pos = save;
            return None;
        };
        Some((op, Span::new(start, self.lx.pos)))
    }

    fn comparison(&mut self) -> Result<Expr> {
        let lhs = self.operand()?;
        let Some((op, op_span)) = self.cmp_op() else {
            return Ok(lhs);
        };
        let rhs = self.rhs(op, op_span)?;
        let span = lhs.span().to(rhs.span());
        Ok(Expr::Compare {
            lhs: Box::new(lhs),
            op,
            op_span,
            rhs,
            span,
        })
    }

    fn rhs(&mut self, op: CmpOp, op_span: Span) -> Result<Rhs> {
        self.lx.skip_ws();
        let start = self.lx.pos;
        if op == CmpOp::In {
            if self.lx.eat("$") {
                return match self.lx.ident() {
                    Some((name, span)) => {
                        Ok(Rhs::List(name.to_owned(), Span::new(start, span.end)))
                    }
                    None => Err(Error::new(
                        ErrorKind::Syntax,
                        Span::new(start, self.lx.next_char_span().end),
                        "expected a list name after \"$\", e.g. $blocked_ips",
                    )),
                };
            }
            if self.lx.eat("{") {
                let mut items = Vec::new();
                loop {
                    self.lx.skip_ws();
                    if self.lx.eat("}") {
                        break;
                    }
                    if self.lx.at_end() {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            Span::new(start, self.lx.pos),
                            "unclosed set: expected \"}\"",
                        ));
                    }
                    items.push(self.literal("in a set")?);
                }
                let span = Span::new(start, self.lx.pos);
                if items.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        span,
                        "a set needs at least one value",
                    ));
                }
                return Ok(Rhs::Set(items, span));
            }
            return Err(Error::new(
                ErrorKind::Syntax,
                Some(self.lx.next_word_span())
                    .filter(|s| !s.is_empty())
                    .unwrap_or(op_span),
                "expected a set of values {…} or a list $name after \"in\"",
            ));
        }
        let (lit, span) = self.literal(&format!("after \"{}\"", op.word()))?;
        Ok(Rhs::Literal(lit, span))
    }

    fn literal(&mut self, context: &str) -> Result<(Literal, Span)> {
        self.lx.skip_ws();
        let start = self.lx.pos;
        if self.lx.at_string() {
            let (s, span) = self.lx.string()?;
            return Ok((Literal::String(s), span));
        }
        if self.lx.eat_word("true") {
            return Ok((Literal::Bool(true), Span::new(start, self.lx.pos)));
        }
        if self.lx.eat_word("false") {
            return Ok((Literal::Bool(false), Span::new(start, self.lx.pos)));
        }
        match self.lx.peek() {
            Some(c) if c.is_ascii_hexdigit() || c == ':' || c == '-' => self.lx.number_like(),
            None => Err(Error::new(
                ErrorKind::Syntax,
                Span::new(start, start),
                format!("expected a value {context}, found the end of the expression"),
            )),
            Some(_) => {
                let span = self.lx.next_word_span();
                let found = &self.lx.src[span.start..span.end];
                let hint = if self.lx.at_ident() {
                    " (the right-hand side must be a literal value, not a field)"
                } else {
                    ""
                };
                Err(Error::new(
                    ErrorKind::Syntax,
                    span,
                    format!("expected a value {context}, found \"{found}\"{hint}"),
                ))
            }
        }
    }

    fn operand(&mut self) -> Result<Expr> {
        let mut expr = self.primary()?;
        let mut indexes = 0;
        loop {
            self.lx.skip_ws();
            if !self.lx.eat("[") {
                return Ok(expr);
            }
            let open = self.lx.pos - 1;
            indexes += 1;
            if self.depth + indexes > MAX_DEPTH {
                return Err(Error::new(
                    ErrorKind::Limit,
                    Span::new(open, open + 1),
                    format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
                ));
            }
            self.lx.skip_ws();
            let index = if self.lx.eat("*") {
                Index::Each
            } else if self.lx.at_string() {
                Index::Key(self.lx.string()?.0)
            } else {
                match self.lx.peek() {
                    Some(c) if c.is_ascii_digit() || c == '-' => match self.lx.number_like()? {
                        (Literal::Int(i), _) if i >= 0 => Index::Int(i),
                        (_, span) => {
                            return Err(Error::new(
                                ErrorKind::Syntax,
                                span,
                                "an array index must be a non-negative integer",
                            ));
                        }
                    },
                    _ => {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            self.lx.next_word_span().to(Span::new(open, open + 1)),
                            "expected an index: [0], [\"key\"] or [*]",
                        ));
                    }
                }
            };
            self.lx.skip_ws();
            if !self.lx.eat("]") {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    self.lx.next_char_span(),
                    "expected \"]\" to close the index",
                ));
            }
            let span = Span::new(expr.span().start, self.lx.pos);
            expr = Expr::Index {
                base: Box::new(expr),
                index,
                span,
            };
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        self.lx.skip_ws();
        let start = self.lx.pos;
        let Some(c) = self.lx.peek() else {
            return Err(Error::new(
                ErrorKind::Syntax,
                Span::new(start, start),
                "expected an expression, found the end of the input",
            ));
        };
        if c == '(' {
            self.lx.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            self.lx.skip_ws();
            if !self.lx.eat(")") {
                let span = self.lx.next_word_span();
                return Err(Error::new(
                    ErrorKind::Syntax,
                    if span.is_empty() {
                        Span::new(start, start + 1)
                    } else {
                        span
                    },
                    "expected \")\" to close the parenthesis",
                ));
            }
            return Ok(inner);
        }
        if self.lx.at_string() {
            let (s, span) = self.lx.string()?;
            return Ok(Expr::Literal {
                value: Literal::String(s),
                span,
            });
        }
        // An IPv6 address may start with a letter (`fe80::1`): read it before a field name.
        if c.is_ascii_digit() || c == '-' || c == ':' || self.lx.at_ipv6_word() {
            let (value, span) = self.lx.number_like()?;
            return Ok(Expr::Literal { value, span });
        }
        if let Some((name, span)) = self.lx.ident() {
            match name {
                "true" => {
                    return Ok(Expr::Literal {
                        value: Literal::Bool(true),
                        span,
                    });
                }
                "false" => {
                    return Ok(Expr::Literal {
                        value: Literal::Bool(false),
                        span,
                    });
                }
                _ => {}
            }
            if KEYWORDS.contains(&name) {
                return Err(Error::new(
                    ErrorKind::Syntax,
                    span,
                    format!(
                        "expected a field, a function call or a value, found the keyword \"{name}\""
                    ),
                ));
            }
            self.lx.skip_ws();
            if self.lx.eat("(") {
                self.enter()?;
                let mut args = Vec::new();
                self.lx.skip_ws();
                if !self.lx.eat(")") {
                    loop {
                        args.push(self.or()?);
                        self.lx.skip_ws();
                        if self.lx.eat(")") {
                            break;
                        }
                        if !self.lx.eat(",") {
                            let s = self.lx.next_word_span();
                            return Err(Error::new(
                                ErrorKind::Syntax,
                                if s.is_empty() { span } else { s },
                                format!("expected \",\" or \")\" in the arguments of {name}()"),
                            ));
                        }
                    }
                }
                self.depth -= 1;
                return Ok(Expr::Call {
                    name: name.to_owned(),
                    args,
                    span: Span::new(start, self.lx.pos),
                });
            }
            return Ok(Expr::Field {
                name: name.to_owned(),
                span,
            });
        }
        let span = self.lx.next_char_span();
        Err(Error::new(
            ErrorKind::Syntax,
            span,
            format!("unexpected \"{c}\": expected a field, a function call, a value or \"(\""),
        ))
    }
}
