//! The one error type of the API, and extractors that turn malformed requests into it.
//!
//! Every failure leaves the server as `{"error": {"code", "message"}}` with a fitting status. Messages
//! say what was wrong and what is accepted; internal errors are logged and answered with a generic message.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use vexil_core::ValidationError;
use vexil_store::StoreError;

/// An API failure: a status, a stable machine-readable code and a message for people.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable code, such as `invalid_value` or `version_conflict`.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// For a refused value: the field it was in (`rules[0].conditions[1].values`), so a form can show the message
    /// beside it.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None }
    }

    /// 400: the request could not be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no valid credentials.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 422 `invalid_value`: a value the request names that the server does not accept, in `field`.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self { field: Some(field.to_owned()), ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message) }
    }

    /// 403: the role does not allow it.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request contradicts the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 412: `If-Match` (or an expected version) no longer matches.
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "version_conflict", message)
    }

    /// 422: a change to a protected environment without a reason.
    pub fn reason_required(environment: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            format!("{environment} is protected: every change needs a reason; send \"reason\" (the CLI's --reason)"),
        )
    }

    /// 503: the store cannot be reached, so nothing was read or changed.
    pub fn store_unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "store unavailable: nothing was changed; retry later")
    }

    /// 500, logged; the client learns nothing of the internals.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the server log has the details")
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        Self { field: Some(error.field), ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", error.message) }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { target, .. } if target.starts_with("token ") => Self::unauthenticated(
                "the token this request came with was revoked or has expired (perhaps through another server); nothing was changed",
            ),
            StoreError::Conflict { target, .. } if target.starts_with("user ") => Self::new(
                StatusCode::CONFLICT,
                "version_conflict",
                format!("{}'s account changed while this request waited; nothing was changed: send it again", &target[5..]),
            ),
            StoreError::Conflict { .. } => Self::new(
                StatusCode::CONFLICT,
                "version_conflict",
                format!("{error}: someone else changed it first; read it again and retry"),
            ),
            StoreError::Invalid(message) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message),
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "store unavailable");
                Self::store_unavailable()
            }
            StoreError::Unknown(detail) => {
                tracing::error!(%detail, "a write's outcome is unknown");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "outcome_unknown",
                    "the store did not answer in time: the change may or may not have been made. Read it back (or its audit \
                     record) before trying again, or retry with the same Idempotency-Key header, which carries it out at most once",
                )
            }
            StoreError::Duplicate(key) => Self::new(
                StatusCode::CONFLICT,
                "idempotency_duplicate",
                format!("a write with Idempotency-Key `{}` was committed already", vexil_core::name::printable(&key)),
            ),
            StoreError::Corrupt(detail) => Self::internal(format!("corrupt store: {detail}")),
        }
    }
}

/// Every error's body, `{"error": {"code", "message"}}`, as the OpenAPI document describes it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable and machine-readable: `invalid_value`, `version_conflict`, `reason_required`, `forbidden`, … (docs/api.md).
    code: String,
    /// What was wrong and what is accepted, for people.
    message: String,
    /// For `invalid_value`: the field that was refused (`default`, `rules[0].conditions[1].values`, `split`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// The code of an error response, kept on the response for middleware (the idempotency layer).
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message, field: self.field } };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// A `Result` whose error is an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body, read whatever the content type, with size and syntax errors answered as [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(unreadable)?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request("request body is empty; send a JSON object"));
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|error| ApiError::bad_request(format!("request body is not valid: {}", body_error(&error.to_string()))))
    }
}

/// Why a request body could not be read: too large (413), not all there within `body_timeout` (408), or broken off.
pub fn unreadable(rejection: BytesRejection) -> ApiError {
    match rejection {
        _ if timed_out(&rejection) => body_timeout(),
        BytesRejection::FailedToBufferBody(failure) if failure.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is larger than this endpoint accepts")
        }
        other => ApiError::bad_request(format!("request body could not be read: {other}")),
    }
}

/// Whether reading a body failed because it did not arrive within `body_timeout`.
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// A request body that did not arrive within `body_timeout`.
pub fn body_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "request body did not arrive within the server's body_timeout; send it whole and promptly",
    )
}

/// Query parameters, with errors answered as [`ApiError`]s.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|query| ApiQuery(query.0))
            .map_err(|rejection: QueryRejection| ApiError::bad_request(format!("query string is not valid: {}", rejection.body_text())))
    }
}

/// Path parameters, with errors answered as [`ApiError`]s.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|path| ApiPath(path.0))
            .map_err(|rejection: PathRejection| ApiError::bad_request(format!("path is not valid: {}", rejection.body_text())))
    }
}

/// A JSON body that may be left out entirely (`POST …/enable` with no body means "no reason given").
pub struct ApiJsonOrEmpty<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for ApiJsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let empty = request.headers().get(axum::http::header::CONTENT_LENGTH).is_some_and(|length| length == "0");
        if empty {
            return Ok(ApiJsonOrEmpty(T::default()));
        }
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(unreadable)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJsonOrEmpty(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(ApiJsonOrEmpty)
            .map_err(|error| ApiError::bad_request(format!("request body is not valid: {}", body_error(&error.to_string()))))
    }
}

/// A JSON parser's complaint about a body, for people: "unknown value" rather than serde's "unknown variant" (no flag
/// variant is meant), the near miss among the accepted names when there is one, and control characters escaped.
fn body_error(text: &str) -> String {
    let text = text.replace("unknown variant", "unknown value");
    let near = (|| {
        let (_, rest) = text.split_once("unknown ")?;
        let (_, rest) = rest.split_once('`')?;
        let (given, rest) = rest.split_once('`')?;
        let (_, accepted) = rest.split_once("expected one of ")?;
        let names: Vec<&str> = accepted.split('`').skip(1).step_by(2).collect();
        vexil_core::name::nearest(given, names)
    })();
    let text = match near {
        Some(near) => format!("{text}; did you mean `{near}`?"),
        None => text,
    };
    vexil_core::name::printable_within(&text, 400)
}

#[cfg(test)]
mod body_error_tests {
    #[test]
    fn a_misspelt_name_gets_its_near_miss() {
        let said = super::body_error("unknown variant `endswith`, expected one of `equals`, `ends_with`, `in` at line 1 column 9");
        assert!(said.starts_with("unknown value `endswith`"), "{said}");
        assert!(said.ends_with("did you mean `ends_with`?"), "{said}");
    }
}
