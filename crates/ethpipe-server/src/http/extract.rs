//! Extractors whose rejection is an [`AppError`], so no handler ever sees,
//! or handles, a rejection: [`Path`], [`Query`] and [`Json`] wrap axum's own,
//! ([`Json`] is also the JSON response), and [`Authorized`] is the proof that a mutation may proceed.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::AppError;
use super::AppState;

/// Path parameters; a mismatch is a 400 with axum's description.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// The query string; a malformed one is a 400.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// A JSON body; wrong content type, size or shape is a 415, 413 or 400.
/// As a response, the value serialised as JSON.
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Json(value))
    }
}

/// Proof that a mutating request may proceed: the bearer token matched, or
/// the server requires none (loopback without `ETHPIPE_API_TOKEN`). Taken
/// first by every mutation, so a request without the token is refused
/// before its body is even read.
pub struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if !state.config.token_required() {
            // No token means loopback only. A page elsewhere could still reach
            // the port through DNS rebinding (its own name resolving to
            // 127.0.0.1), so the Host must name loopback too.
            return if host_is_loopback(parts) {
                Ok(Authorized)
            } else {
                Err(AppError::HostNotLoopback)
            };
        }
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(token) if state.config.token_matches(token) => Ok(Authorized),
            _ => Err(AppError::Unauthorized),
        }
    }
}

/// Whether the request's Host header names a loopback address or `localhost`.
fn host_is_loopback(parts: &Parts) -> bool {
    let Some(host) = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.host())
    else {
        return false;
    };
    // Strip the port: `127.0.0.1:6789`, `[::1]:6789`, `localhost:6789`.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
