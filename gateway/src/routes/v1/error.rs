//! `V1Error`: every failure under `/v1`, in OpenAI's error shape
//! `{"error": {"message", "type", "param", "code"}}`, so that the official SDKs
//! raise their own typed exceptions (`AuthenticationError` for 401,
//! `NotFoundError` for 404, `RateLimitError` for 429, …). The access guard,
//! the JSON extractor and the router's fallbacks produce it too, so no `/v1`
//! answer is ever the REST API's `{"error": "…"}`. As there, a 5xx is logged
//! with its cause and answered with a generic message.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use arvis_shared::db::DbError;
use arvis_shared::intake::IntakeError;
use arvis_shared::routing::RouteError;

/// OpenAI's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    pub error: OpenAiError,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct OpenAiError {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `insufficient_quota`, `api_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// `invalid_api_key`, `model_not_found`, `insufficient_quota`, …
    pub code: Option<String>,
}

#[derive(Debug)]
pub struct V1Error {
    pub status: StatusCode,
    pub error: OpenAiError,
}

pub type V1Result<T> = Result<T, V1Error>;

impl V1Error {
    pub fn new(status: StatusCode, kind: &str, code: Option<&str>, message: impl Into<String>) -> V1Error {
        V1Error {
            status,
            error: OpenAiError {
                message: message.into(),
                kind: kind.into(),
                param: None,
                code: code.map(str::to_string),
            },
        }
    }

    pub fn with_param(mut self, param: &str) -> V1Error {
        self.error.param = Some(param.into());
        self
    }

    /// 400: the request is malformed or asks for something not supported.
    pub fn invalid(message: impl Into<String>) -> V1Error {
        V1Error::new(StatusCode::BAD_REQUEST, "invalid_request_error", None, message)
    }

    /// 401: no usable credentials.
    pub fn invalid_key(message: impl Into<String>) -> V1Error {
        V1Error::new(StatusCode::UNAUTHORIZED, "invalid_request_error", Some("invalid_api_key"), message)
    }

    /// 404 for a model (agent) that does not exist or that the key may not use.
    pub fn model_not_found(model: &str) -> V1Error {
        V1Error::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
    }

    /// 429: a budget is used up.
    pub fn insufficient_quota(message: impl Into<String>) -> V1Error {
        V1Error::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", Some("insufficient_quota"), message)
    }

    pub fn not_found(message: impl Into<String>) -> V1Error {
        V1Error::new(StatusCode::NOT_FOUND, "invalid_request_error", Some("not_found"), message)
    }

    pub fn internal(cause: impl std::fmt::Display) -> V1Error {
        tracing::error!(error = %cause, "internal error while serving a /v1 request");
        V1Error::new(StatusCode::INTERNAL_SERVER_ERROR, "api_error", None, "internal server error")
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> V1Error {
        tracing::error!(error = %cause, "dependency unavailable while serving a /v1 request");
        V1Error::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", None, "service temporarily unavailable")
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        (self.status, Json(OpenAiErrorBody { error: self.error })).into_response()
    }
}

impl From<DbError> for V1Error {
    fn from(e: DbError) -> V1Error {
        match e {
            DbError::Unavailable(_) | DbError::Closed => V1Error::unavailable(e),
            _ => V1Error::internal(e),
        }
    }
}

impl From<IntakeError> for V1Error {
    fn from(e: IntakeError) -> V1Error {
        match e {
            IntakeError::Invalid(invalid) => {
                // The intake's rules name the field: the end user's id, or the message.
                let param = if invalid.0.starts_with("userId") { "user" } else { "messages" };
                V1Error::invalid(invalid.0).with_param(param)
            }
            // Unknown, deleted or paused: not a model this caller can use now.
            IntakeError::Route(RouteError::UnknownAgent(id)) => V1Error::model_not_found(&id.to_string()),
            IntakeError::Route(route) => {
                V1Error::new(StatusCode::NOT_FOUND, "invalid_request_error", Some("model_not_found"), route.to_string())
                    .with_param("model")
            }
            IntakeError::OverBudget(over) => V1Error::insufficient_quota(over.to_string()),
            IntakeError::Unavailable(db) => db.into(),
        }
    }
}

/// A JSON body whose every rejection is a [`V1Error`] (400, or 413 over the body limit).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(V1Error))]
pub struct V1Json<T>(pub T);

impl From<JsonRejection> for V1Error {
    fn from(r: JsonRejection) -> V1Error {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return V1Error::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                None,
                "request body is too large",
            );
        }
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                V1Error::invalid("request body must be JSON with Content-Type: application/json")
            }
            JsonRejection::JsonDataError(e) => {
                let text = e.body_text();
                let short = text.split_once(": ").map(|(_, rest)| rest.to_string()).unwrap_or(text);
                V1Error::invalid(format!("invalid request body: {short}"))
            }
            JsonRejection::JsonSyntaxError(_) => V1Error::invalid("request body is not valid JSON"),
            other => V1Error::invalid(format!("cannot read request body: {}", other.body_text())),
        }
    }
}
