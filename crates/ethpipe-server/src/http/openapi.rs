//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Its paths and
//! schemas come from the handlers' `#[utoipa::path]` attributes and the
//! request and response types' `ToSchema`/`IntoParams` derives
//! ([`super::api::router`] collects them while it builds the routes); this
//! module adds what is document-wide: the title, the server prefix and the
//! bearer scheme.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ethpipe API",
        description = "Pipelines, runs and logs of ethpipe, and the token data it loaded (tokens, transfers, daily statistics). Amounts are exact decimal strings. Mutations need `Authorization: Bearer <ETHPIPE_API_TOKEN>` when the server has a token (always when it listens beyond loopback)."
    ),
    servers((url = "/api/v1")),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

/// The `bearer` scheme the mutations' `security` names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, document: &mut utoipa::openapi::OpenApi) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
