//! Named lists of an account (`$name` in rule expressions), as Cloudflare's Lists API has them.
//!
//! Permissions: "Account Lists Read"/"Account Lists Write" (write implies read).

use crate::AppState;
use crate::error::ApiError;
use axum::Router;
use edgetrace_edge::lists::{Catalog, ItemValue, parse_kind};
use utoipa::OpenApi;

pub const LISTS_READ: &str = "Account Lists Read";
pub const LISTS_WRITE: &str = "Account Lists Write";

#[derive(OpenApi)]
#[openapi()]
pub(crate) struct Doc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}

/// An account's lists with their items, as rule expressions see them. A stored item that no
/// longer validates (a corrupt row) is an internal error, not a silently smaller list.
pub(crate) async fn catalog(state: &AppState, account_id: &str) -> Result<Catalog, ApiError> {
    let mut catalog = Catalog::new();
    for (list, items) in state.store.lists_with_items(account_id).await? {
        let kind = parse_kind(&list.list.kind)
            .map_err(|e| ApiError::internal(&format!("list {}", list.id), &e))?;
        let values = items
            .iter()
            .map(|i| {
                ItemValue::parse(kind, &i.item.data, "")
                    .map_err(|e| ApiError::internal(&format!("list item {}", i.id), &e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        catalog.insert(&list.list.name, kind, values);
    }
    Ok(catalog)
}
