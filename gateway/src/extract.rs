//! Extractors whose rejections are `ApiError`s, so that malformed JSON, a wrong
//! content type, an oversized body or a bad path parameter all answer with the
//! reference's `{"error": …}` body (axum's own extractors answer in plain text,
//! with 415/422 codes the reference does not know).

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;

use crate::error::ApiError;

/// JSON body extractor: 400 for anything unusable, 413 over the body limit.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large");
        }
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::bad_request("request body must be JSON with Content-Type: application/json")
            }
            JsonRejection::JsonDataError(e) => {
                ApiError::bad_request(format!("invalid request body: {}", e.body_text_short()))
            }
            JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("request body is not valid JSON"),
            other => ApiError::bad_request(format!("cannot read request body: {}", other.body_text())),
        }
    }
}

trait ShortText {
    fn body_text_short(&self) -> String;
}

impl ShortText for axum::extract::rejection::JsonDataError {
    /// serde's message without axum's "Failed to deserialize…" prefix.
    fn body_text_short(&self) -> String {
        let text = self.body_text();
        text.split_once(": ").map(|(_, rest)| rest.to_string()).unwrap_or(text)
    }
}

/// Path parameters: a non-numeric id is a 400, not axum's plain-text answer.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::bad_request(format!("invalid path parameter: {}", r.body_text()))
    }
}

/// Query string parameters.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}

/// An `application/x-www-form-urlencoded` body (the dashboard's forms).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub struct AppForm<T>(pub T);

impl From<FormRejection> for ApiError {
    fn from(r: FormRejection) -> ApiError {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large");
        }
        ApiError::bad_request(format!("cannot read the form: {}", r.body_text()))
    }
}
