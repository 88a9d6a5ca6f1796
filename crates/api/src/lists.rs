//! (in progress)

use crate::AppState;
use axum::Router;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi()]
pub(crate) struct Doc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
