//! The one error type at the HTTP edge. Every handler and extractor returns
//! [`AppError`]; it becomes a status code and a one-line message once, in
//! [`IntoResponse`]: a JSON `{"error": …}` body, which [`html_error_pages`]
//! turns into an HTML page for the routes a browser reads.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Invalid;
use crate::service::ServiceError;
use crate::store::QueryError;
use crate::views;

/// Largest request body accepted: mutations take a few small JSON fields.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A path, query string or body axum could not extract.
    #[error("{message}")]
    Rejected {
        status: StatusCode,
        message: String,
        #[source]
        source: Cause,
    },
    /// A mutation without the right bearer token.
    #[error("this endpoint changes state: send Authorization: Bearer <ETHPIPE_API_TOKEN>")]
    Unauthorized,
    /// No token is configured and the Host does not name loopback.
    #[error("without ETHPIPE_API_TOKEN, changes are accepted only for a loopback Host (127.0.0.1, [::1] or localhost)")]
    HostNotLoopback,
    /// No route has this path.
    #[error("{0}")]
    NoRoute(&'static str),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<QueryError> for AppError {
    fn from(error: QueryError) -> AppError {
        AppError::Service(error.into())
    }
}

/// Every error body: one line saying what went wrong.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: String,
}

/// Marks a response as an error, with its message, for [`html_error_pages`].
#[derive(Clone)]
struct ErrorMessage(String);

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Invalid(_) => StatusCode::BAD_REQUEST,
            AppError::Rejected { status, .. } => *status,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::HostNotLoopback => StatusCode::FORBIDDEN,
            AppError::NoRoute(_) => StatusCode::NOT_FOUND,
            AppError::Service(error) => match error {
                ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
                ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                ServiceError::Conflict(_) => StatusCode::CONFLICT,
                ServiceError::NoSource(_) | ServiceError::Ledger { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ServiceError::Query(QueryError::Timeout(_) | QueryError::Unavailable { .. }) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ServiceError::Query(_) | ServiceError::RunTaskLost(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
        }
    }

    /// What the user reads.
    pub fn message(&self) -> String {
        match self {
            AppError::Service(ServiceError::Query(QueryError::Timeout(_))) => {
                "the query took longer than the server's statement timeout; narrow it (a shorter range or a smaller limit)".into()
            }
            AppError::Service(ServiceError::Query(QueryError::Unavailable { message, .. })) => {
                format!("the database is not reachable: {message}")
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        if status.is_server_error() {
            // The cause chain goes to the log; the client gets the one line.
            let mut chain = String::new();
            let mut source = std::error::Error::source(&self);
            while let Some(cause) = source {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                source = cause.source();
            }
            tracing::error!("{status}: {message}{chain}");
        }
        let mut response = (
            status,
            Json(ErrorBody {
                error: message.clone(),
            }),
        )
            .into_response();
        if matches!(self, AppError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ethpipe\""),
            );
        }
        response.extensions_mut().insert(ErrorMessage(message));
        response
    }
}

/// Response middleware for the pages: an [`AppError`]'s response becomes
/// the HTML error page, with the same status, message and headers.
pub async fn html_error_pages(response: Response) -> Response {
    let Some(ErrorMessage(message)) = response.extensions().get::<ErrorMessage>().cloned() else {
        return response;
    };
    let status = response.status();
    let title = status.canonical_reason().unwrap_or("Error");
    let page = views::error_page(status.as_u16(), title, &message);
    let (mut parts, _json) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let html = Html(page.into_string()).into_response();
    let (html_parts, body) = html.into_parts();
    if let Some(content_type) = html_parts.headers.get(header::CONTENT_TYPE) {
        parts
            .headers
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    Response::from_parts(parts, body)
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> AppError {
        AppError::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: format!("invalid query string: {}", rejection.body_text()),
            source: Box::new(rejection),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> AppError {
        AppError::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: format!("invalid path: {}", rejection.body_text()),
            source: Box::new(rejection),
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> AppError {
        // axum answers a well-formed body of the wrong shape with 422; every
        // bad input here is a 400, as the API documents.
        let status = match rejection.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        let message = match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "expected a JSON body with Content-Type: application/json".to_string()
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                format!("the request body is larger than {BODY_LIMIT_BYTES} bytes")
            }
            _ => format!("invalid JSON body: {}", rejection.body_text()),
        };
        AppError::Rejected {
            status,
            message,
            source: Box::new(rejection),
        }
    }
}
