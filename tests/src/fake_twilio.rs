//! A loopback Twilio (written from Twilio's REST API reference for the
//! Message resource, its error codes, and "Webhooks security"), both
//! directions.
//!
//! - REST (`TWILIO_API_URL` = [`FakeTwilio::url`]), Basic auth `Sid:AuthToken`:
//!   `GET /2010-04-01/Accounts/{Sid}.json` (the account) and
//!   `POST /2010-04-01/Accounts/{Sid}/Messages.json` (form-encoded `To`,
//!   `From`, `Body`; a `Body` over 1600 characters is 400 code 21617, a `From`
//!   that is not the account's number 400 code 21606). A wrong SID or token
//!   answers 401 code 20003, in Twilio's `{"code","message","more_info","status"}`.
//! - Chaos: [`FakeTwilio::fail_next`] queues answers for the next sends —
//!   429 code 20429 with `Retry-After`, 500 code 20500, or a connection cut
//!   mid-answer (the message not accepted).
//! - Webhooks: [`FakeTwilio::deliver_sms`] posts an inbound SMS the way Twilio
//!   does — form-encoded parameters and `X-Twilio-Signature` = base64
//!   HMAC-SHA1(auth token, the URL + every parameter's name and value, sorted
//!   by name) — over the URL Twilio was configured with, which may differ
//!   from the one the request actually reaches (a proxy).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use bytes::Bytes;
use hmac::{KeyInit as _, Mac as _};
use serde_json::json;

/// A message the bot sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub to: String,
    pub from: String,
    pub body: String,
    pub at: Instant,
}

pub use crate::send_failures::Failure;
use crate::send_failures::{Script, cut_off};

#[derive(Default)]
struct Inner {
    sent: Vec<Sent>,
    /// The failures the next sends get, and those answered.
    failures: Script,
}

struct FakeState {
    sid: String,
    token: String,
    number: String,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

/// An answer to a delivered webhook.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

pub struct FakeTwilio {
    /// What `TWILIO_API_URL` should be.
    pub url: String,
    pub sid: String,
    pub auth_token: String,
    /// The account's number (`TWILIO_PHONE_NUMBER`).
    pub number: String,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
    client: reqwest::Client,
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn twilio_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({
        "code": code, "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status.as_u16()
    });
    (status, Json(body)).into_response()
}

fn authorized(s: &FakeState, headers: &HeaderMap) -> bool {
    let Some(b64) = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default();
    decoded == format!("{}:{}", s.sid, s.token).into_bytes()
}

async fn account(State(s): State<Arc<FakeState>>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) || file.strip_suffix(".json") != Some(s.sid.as_str()) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    Json(json!({"sid": s.sid, "friendly_name": "Arvis test account", "status": "active", "type": "Full"}))
        .into_response()
}

async fn create_message(
    State(s): State<Arc<FakeState>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&s, &headers) || sid != s.sid {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: Vec<(String, String)> =
        form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let (to, from, text) = (get("To"), get("From"), get("Body"));
    if to.is_empty() {
        return twilio_error(StatusCode::BAD_REQUEST, 21604, "A 'To' phone number is required.");
    }
    if from != s.number {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21606,
            "The From phone number is not a valid, SMS-capable inbound phone number for your account.",
        );
    }
    if text.is_empty() {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    if text.chars().count() > 1600 {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let failure = s.inner.lock().unwrap().failures.take();
    match failure {
        Some(Failure::RateLimited { retry_after_secs }) => {
            let mut r = twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            r.headers_mut().insert("retry-after", retry_after_secs.to_string().parse().unwrap());
            return r;
        }
        Some(Failure::ServerError) => {
            return twilio_error(StatusCode::INTERNAL_SERVER_ERROR, 20500, "Internal Server Error");
        }
        Some(Failure::Disconnect) => return cut_off(),
        None => {}
    }
    let id = format!("SM{:032x}", s.next_id.fetch_add(1, Ordering::SeqCst));
    s.inner.lock().unwrap().sent.push(Sent {
        to: to.clone(),
        from: from.clone(),
        body: text.clone(),
        at: Instant::now(),
    });
    let resp = json!({"sid": id, "account_sid": s.sid, "to": to, "from": from, "body": text, "status": "queued",
        "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01"});
    (StatusCode::CREATED, Json(resp)).into_response()
}

/// base64 HMAC-SHA1(auth token, url + each name+value sorted by name): `X-Twilio-Signature`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl FakeTwilio {
    /// Serves the REST API for account `sid` with `auth_token`, owning `number`.
    pub async fn start(sid: &str, auth_token: &str, number: &str) -> FakeTwilio {
        arvis_shared::install_crypto_provider(); // its client delivers webhooks
        let state = Arc::new(FakeState {
            sid: sid.to_string(),
            token: auth_token.to_string(),
            number: number.to_string(),
            inner: Mutex::default(),
            next_id: AtomicU64::new(1),
        });
        let app = axum::Router::new()
            .route("/2010-04-01/Accounts/{file}", get(account))
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create_message))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        FakeTwilio {
            url,
            sid: sid.to_string(),
            auth_token: auth_token.to_string(),
            number: number.to_string(),
            state,
            server,
            client: reqwest::Client::new(),
        }
    }

    /// The parameters Twilio posts for an inbound SMS from `from` to this
    /// account's number, with a fresh `MessageSid`.
    pub fn sms_params(&self, from: &str, text: &str) -> Vec<(String, String)> {
        let sid = format!("SM{:032x}", rand::random::<u128>());
        [
            ("ToCountry", "US"),
            ("ToState", "CA"),
            ("SmsMessageSid", sid.as_str()),
            ("NumMedia", "0"),
            ("ToCity", "SAN FRANCISCO"),
            ("FromZip", "94105"),
            ("SmsSid", sid.as_str()),
            ("FromState", "CA"),
            ("SmsStatus", "received"),
            ("FromCity", "SAN FRANCISCO"),
            ("Body", text),
            ("FromCountry", "US"),
            ("To", self.number.as_str()),
            ("ToZip", "94105"),
            ("NumSegments", "1"),
            ("MessageSid", sid.as_str()),
            ("AccountSid", self.sid.as_str()),
            ("From", from),
            ("ApiVersion", "2010-04-01"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Posts `params` to `post_to`, signed over `signed_url` (the URL Twilio
    /// was configured with) with the auth token, as Twilio does.
    pub async fn deliver(&self, post_to: &str, signed_url: &str, params: &[(String, String)]) -> Answer {
        let signature = sign(&self.auth_token, signed_url, params);
        self.deliver_raw(post_to, params, Some(&signature)).await
    }

    /// Posts `params` with the given signature header (or none).
    pub async fn deliver_raw(&self, post_to: &str, params: &[(String, String)], signature: Option<&str>) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let mut req = self
            .client
            .post(post_to)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", "TwilioProxy/1.1")
            .header("i-twilio-idempotency-token", rand::random::<u64>().to_string());
        if let Some(s) = signature {
            req = req.header("x-twilio-signature", s);
        }
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        Answer { status, content_type, body: resp.text().await.unwrap() }
    }

    /// The next sends get these answers, in order.
    pub fn fail_next(&self, failures: &[Failure]) {
        self.state.inner.lock().unwrap().failures.push(failures);
    }

    pub fn failed_at(&self) -> Vec<(Failure, Instant)> {
        self.state.inner.lock().unwrap().failures.answered()
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state.inner.lock().unwrap().sent.clone()
    }

    pub fn sent_to(&self, to: &str) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| s.to == to).collect()
    }

    /// Waits until at least `n` messages went to `to` (panics after `within`).
    pub async fn wait_sent(&self, to: &str, n: usize, within: Duration) -> Vec<Sent> {
        let deadline = Instant::now() + within;
        loop {
            let sent = self.sent_to(to);
            if sent.len() >= n {
                return sent;
            }
            assert!(Instant::now() < deadline, "{} of {n} messages reached {to}: {sent:?}", sent.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
