//! `GET /client/v4/openapi.json`: the OpenAPI 3.1 document of every route, generated from the
//! handlers' annotations and the types they exchange.

use crate::error::{ErrorEnvelope, ErrorItem, ErrorSource};
use crate::{StoredTraceroute, TokenStatus};
use axum::Json;
use edgetrace_probe::report::{Colo, ColoTrace, Hop, Node, TargetSummary, Traceroute};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

macro_rules! envelope {
    ($name:ident, $result:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            /// Always true.
            pub success: bool,
            pub errors: Vec<ErrorItem>,
            pub messages: Vec<ErrorItem>,
            pub result: $result,
        }
    };
}

envelope!(
    TracerouteResponse,
    Vec<Traceroute>,
    "Traceroute results, one per target."
);
envelope!(
    ColosResponse,
    Vec<crate::ColoInfo>,
    "The live colos, with their agents."
);
envelope!(VerifyResponse, TokenStatus, "The verified token.");
envelope!(
    StoredTracerouteResponse,
    StoredTraceroute,
    "A stored traceroute."
);

/// The errors every authenticated route can answer.
#[derive(IntoResponses)]
#[allow(dead_code)] // a description of responses, never built
pub(crate) enum AuthErrors {
    /// Authentication error: unknown or revoked token, wrong key (10000)
    #[response(status = 401)]
    Unauthenticated(ErrorEnvelope),
    /// Rate limited (1015); `Retry-After` says when to retry
    #[response(status = 429)]
    RateLimited(ErrorEnvelope),
    /// Internal error (1000); details only in the server log
    #[response(status = 500)]
    Internal(ErrorEnvelope),
}

/// The errors of routes under `/accounts/{account_id}`.
#[derive(IntoResponses)]
#[allow(dead_code)] // a description of responses, never built
pub(crate) enum AccountErrors {
    /// Not authorized for the account or permission (9109)
    #[response(status = 403)]
    Forbidden(ErrorEnvelope),
    /// Invalid identifier, or no such object (7003)
    #[response(status = 404)]
    NotFound(ErrorEnvelope),
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token: `edgetrace token create`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_email",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Auth-Email"))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Auth-Key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "edgetrace API",
        description = "Cloudflare-compatible diagnostics API of edgetrace. Error codes: 1000 internal error; \
            1001 body not JSON or not an object; 1002 invalid field (`source.pointer` names it); 1003 body not \
            application/json; 1004 body over 1 MiB; 1005 unknown colo; 1006 conflict; 1007 colos unreachable (NATS down); 1015 rate limited; 7000 no route; \
            7001 method not allowed; 7003 invalid identifier; 9106 missing credentials; 9109 not authorized for \
            the account or permission; 10000 authentication error."
    ),
    servers((url = "/client/v4")),
    paths(
        crate::create_traceroute,
        crate::get_traceroute,
        crate::list_colos,
        crate::verify_token,
        serve,
    ),
    components(schemas(
        ErrorEnvelope, ErrorItem, ErrorSource, Traceroute, ColoTrace, Colo, Hop, Node, TargetSummary,
        TracerouteResponse, ColosResponse, crate::ColoInfo, VerifyResponse, StoredTracerouteResponse,
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::zones::Doc::openapi());
    doc.merge(crate::rulesets::Doc::openapi());
    doc.merge(crate::page_rules::Doc::openapi());
    doc.merge(crate::lists::Doc::openapi());
    doc.merge(crate::request_tracer::Doc::openapi());
    doc
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "Meta",
    summary = "This document",
    description = "The OpenAPI 3.1 document of every route, generated from the code. No credentials needed.",
    responses((status = 200, description = "The document", content_type = "application/json", body = Object))
)]
pub(crate) async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
