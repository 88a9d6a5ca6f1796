//! The edge configuration: rulesets in phases with validated actions, page rules and named
//! lists — checked here before anything is stored, and (issue 5) the request pipeline that the
//! proxy and the request tracer share.
//!
//! Validation functions take the JSON the API received and return either the value to store or
//! every problem found, each naming its JSON pointer (`/rules/2/expression`).

pub mod actions;
pub mod input;
pub mod lists;
pub mod page_rules;
pub mod phases;
pub mod pipeline;
pub mod ruleset;

/// A problem with one field of the input, named by its JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct FieldError {
    /// A JSON pointer into the request body, e.g. `/rules/2/expression`.
    pub pointer: String,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// Every problem found in one input.
pub type FieldErrors = Vec<FieldError>;
