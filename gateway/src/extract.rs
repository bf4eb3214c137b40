//! Extractors whose rejections are `ApiError`s, so that malformed JSON, a wrong
//! content type, an oversized body or a bad path parameter all answer with the
//! reference's `{"error": …}` body (axum's own extractors answer in plain text,
//! with 415/422 codes the reference does not know).

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// JSON body extractor: 400 for anything unusable (a body that is not a JSON
/// object included), 413 over the body limit.
///
/// An integer field also takes a number written with a zero fraction (`456.0`):
/// JSON Schema counts it as an integer, so a client generated from our
/// document may send it, while serde's `i64` refuses it. Only a body that
/// fails to deserialize is read a second time (as a `Value`, with such numbers
/// made integers), so the common case costs nothing more.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::bad_request("request body must be JSON with Content-Type: application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
            } else {
                ApiError::bad_request(format!("cannot read request body: {}", r.body_text()))
            }
        })?;
        // Every body of this API is an object; serde would also fill a struct
        // from an array (`[null, null]`), which the document does not allow.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b != b'{') {
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Ok(_) => ApiError::bad_request("request body must be a JSON object"),
                Err(_) => ApiError::bad_request("request body is not valid JSON"),
            });
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(AppJson(value)),
            Err(rejection @ JsonRejection::JsonDataError(_)) => {
                retry_with_integers(&bytes).map(AppJson).ok_or_else(|| rejection.into())
            }
            Err(rejection) => Err(rejection.into()),
        }
    }
}

/// `application/json` or any `…+json` type, as axum's `Json` accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body again, with every number that has a zero fraction and fits an
/// `i64` turned into an integer; `None` when it still does not deserialize.
fn retry_with_integers<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    fn integers(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => match arvis_shared::domain::json_integer(n) {
                Some(i) => {
                    *v = serde_json::Value::from(i);
                    true
                }
                None => false,
            },
            serde_json::Value::Array(items) => items.iter_mut().map(integers).fold(false, |a, b| a | b),
            serde_json::Value::Object(map) => map.values_mut().map(integers).fold(false, |a, b| a | b),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !integers(&mut value) {
        return None;
    }
    serde_json::from_value(value).ok()
}

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
