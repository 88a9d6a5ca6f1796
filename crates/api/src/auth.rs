//! Who is calling, and may they: API tokens (`Authorization: Bearer`), scoped to one account
//! and a set of permissions, and the legacy `X-Auth-Email` + `X-Auth-Key` global key, with
//! every permission on its user's accounts. Then a rate limit per caller.

use crate::AppState;
use crate::error::{ApiError, codes};
use axum::http::{HeaderMap, StatusCode};
use edgetrace_store::{Token, User};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    Token(Token),
    User(User),
}

impl Principal {
    /// The id requests are attributed to and rate-limited by.
    pub fn id(&self) -> &str {
        match self {
            Principal::Token(t) => &t.id,
            Principal::User(u) => &u.id,
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                codes::AUTHENTICATION,
                format!("Authentication error: the {name} header is not valid text"),
            )
        }),
    }
}

fn auth_error(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        codes::AUTHENTICATION,
        format!("Authentication error: {message}"),
    )
}

/// Authenticates the request and applies the caller's rate limit.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let principal = identify(state, headers).await?;
    state.limiter.check(principal.id())?;
    Ok(principal)
}

async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(value) = header(headers, "authorization")? {
        let secret = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| auth_error("the Authorization header must be `Bearer <token>`"))?;
        return match state.store.token_by_secret(secret).await? {
            Some(t) if t.is_active() => Ok(Principal::Token(t)),
            Some(_) => Err(auth_error("this API token has been revoked")),
            None => Err(auth_error("invalid API token")),
        };
    }
    match (
        header(headers, "x-auth-email")?,
        header(headers, "x-auth-key")?,
    ) {
        (Some(email), Some(key)) => match state.store.user_by_key(email, key).await? {
            Some(user) => Ok(Principal::User(user)),
            None => Err(auth_error("unknown X-Auth-Email or wrong X-Auth-Key")),
        },
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::MISSING_AUTH,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
        )),
    }
}

/// An identifier (account, zone, ruleset, record, list, …) as Cloudflare writes them: 32
/// lowercase hex characters; anything else is a 404 for `path` (code 7003).
pub fn check_id(path: &str, id: &str) -> Result<(), ApiError> {
    if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(ApiError::not_found(path))
    }
}

/// Checks that the caller may act on `account_id` with at least one of `permissions`.
pub fn authorize(
    principal: &Principal,
    account_id: &str,
    permissions: &[&str],
) -> Result<(), ApiError> {
    let denied = |why: String| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            codes::UNAUTHORIZED,
            format!("Unauthorized to access requested resource: {why}"),
        ))
    };
    match principal {
        Principal::Token(t) if t.account_id != account_id => {
            denied("this token belongs to another account".into())
        }
        Principal::Token(t) if !permissions.iter().any(|p| t.allows(p)) => denied(format!(
            "this token lacks the permission {}",
            permissions.join(" or ")
        )),
        Principal::User(u) if !u.accounts.iter().any(|a| a == account_id) => {
            denied("this user is not a member of the account".into())
        }
        _ => Ok(()),
    }
}

/// For routes outside any account (the system-probe route on TCP): a token must carry the
/// permission; a global key carries every permission.
pub fn authorize_any_account(principal: &Principal, permission: &str) -> Result<(), ApiError> {
    match principal {
        Principal::Token(t) if !t.allows(permission) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            codes::UNAUTHORIZED,
            format!(
                "Unauthorized to access requested resource: this token lacks the permission {permission}"
            ),
        )),
        _ => Ok(()),
    }
}
