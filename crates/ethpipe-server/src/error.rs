//! The one error type at the HTTP edge: every handler returns it, and it
//! becomes a status code with a one-line message (JSON for the API, an HTML
//! page for the pages).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::queries::QueryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppError {
    /// Bad input: what was wrong and what is expected.
    BadRequest(String),
    NotFound(String),
    /// The request is fine but cannot be done now (the day is being loaded).
    Conflict(String),
    /// A mutation without the right bearer token.
    Unauthorized,
    /// 413/415 and friends, from body extraction.
    Status(u16, String),
    /// The database is unreachable or a query ran out of time.
    Unavailable(String),
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl AppError {
    pub fn bad_request(message: impl Into<String>) -> AppError {
        AppError::BadRequest(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Status(code, _) => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_REQUEST)
            }
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            AppError::BadRequest(m)
            | AppError::NotFound(m)
            | AppError::Conflict(m)
            | AppError::Status(_, m)
            | AppError::Unavailable(m)
            | AppError::Internal(m) => m,
            AppError::Unauthorized => {
                "this endpoint changes state: send Authorization: Bearer <ETHPIPE_API_TOKEN>"
            }
        }
    }

    fn finish(&self, mut response: Response) -> Response {
        if matches!(self, AppError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ethpipe\""),
            );
        }
        if let AppError::Internal(message) = self {
            tracing::error!("internal error: {message}");
        }
        response
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let response = (
            self.status(),
            Json(ErrorBody {
                error: self.message(),
            }),
        )
            .into_response();
        self.finish(response)
    }
}

impl From<QueryError> for AppError {
    fn from(error: QueryError) -> AppError {
        match error {
            QueryError::Timeout => AppError::Unavailable(
                "the query took longer than the server's statement timeout; narrow it (a shorter range or a smaller limit)".into(),
            ),
            QueryError::Unavailable(message) => {
                AppError::Unavailable(format!("the database is not reachable: {message}"))
            }
            QueryError::Failed(message) => AppError::Internal(message),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> AppError {
        AppError::BadRequest(format!("invalid query string: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> AppError {
        AppError::BadRequest(format!("invalid path: {}", rejection.body_text()))
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
            StatusCode::PAYLOAD_TOO_LARGE => format!(
                "the request body is larger than {} bytes",
                crate::BODY_LIMIT_BYTES
            ),
            _ => format!("invalid JSON body: {}", rejection.body_text()),
        };
        AppError::Status(status.as_u16(), message)
    }
}

/// The same errors, rendered as an HTML page for browsers.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(error: AppError) -> PageError {
        PageError(error)
    }
}

impl From<QueryError> for PageError {
    fn from(error: QueryError) -> PageError {
        PageError(error.into())
    }
}

impl From<QueryRejection> for PageError {
    fn from(rejection: QueryRejection) -> PageError {
        PageError(rejection.into())
    }
}

impl From<PathRejection> for PageError {
    fn from(rejection: PathRejection) -> PageError {
        PageError(rejection.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = crate::pages::error_page(status.as_u16(), title, self.0.message());
        self.0.finish((status, Html(body)).into_response())
    }
}
