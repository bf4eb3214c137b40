//! A loopback WhatsApp Cloud API (written from Meta's Cloud API reference:
//! "Messages", "Webhooks", "Error codes"), both directions.
//!
//! - Graph API under `/v21.0` (so `WHATSAPP_API_URL` = [`FakeWhatsApp::url`]):
//!   `GET /{phone-number-id}` (the phone number's fields) and
//!   `POST /{phone-number-id}/messages` (text messages: `messaging_product`
//!   `whatsapp`, `type` `text`, `text.body` at most 4096 characters, else 400
//!   code 100). A wrong Bearer token answers 401 code 190, an unknown phone
//!   number id 400 code 100, all in Graph's `{"error":{"message","type","code",
//!   "fbtrace_id"}}`.
//! - Chaos: [`FakeWhatsApp::fail_next`] queues answers for the next sends —
//!   429 code 130429 with `Retry-After`, 500 code 131000, or a connection
//!   cut mid-answer (the message not accepted).
//! - Webhooks: [`FakeWhatsApp::deliver`] posts a notification to the gateway
//!   signed as Meta signs it, `X-Hub-Signature-256: sha256=` + hex
//!   HMAC-SHA256(app secret, raw body); [`text_notification`] and friends
//!   build the payloads Meta sends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};

/// A message the bot sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub to: String,
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
    checks: usize,
}

struct FakeState {
    token: String,
    phone_number_id: String,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

pub struct FakeWhatsApp {
    /// What `WHATSAPP_API_URL` should be.
    pub url: String,
    pub app_secret: String,
    pub phone_number_id: String,
    state: Arc<FakeState>,
    server: tokio::task::JoinHandle<()>,
    client: reqwest::Client,
}

impl Drop for FakeWhatsApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn graph_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body =
        json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf123"}});
    (status, Json(body)).into_response()
}

fn authorized(s: &FakeState, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(format!("Bearer {}", s.token).as_str())
}

async fn phone_number(State(s): State<Arc<FakeState>>, Path(phone): Path<String>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return graph_error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token - Cannot parse access token");
    }
    if phone != s.phone_number_id {
        return graph_error(StatusCode::BAD_REQUEST, 100, "Unsupported get request. Object does not exist");
    }
    s.inner.lock().unwrap().checks += 1;
    Json(json!({"verified_name": "Arvis Test", "display_phone_number": "+1 555-0100", "id": phone})).into_response()
}

async fn messages(
    State(s): State<Arc<FakeState>>,
    Path(phone): Path<String>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    if !authorized(&s, &headers) {
        return graph_error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token - Cannot parse access token");
    }
    if phone != s.phone_number_id {
        return graph_error(StatusCode::BAD_REQUEST, 100, "Unsupported post request. Object does not exist");
    }
    let Some(Json(body)) = body else {
        return graph_error(StatusCode::BAD_REQUEST, 100, "Invalid parameter");
    };
    if body["messaging_product"] != "whatsapp" || body["type"] != "text" {
        return graph_error(StatusCode::BAD_REQUEST, 100, "(#100) Param messaging_product is required");
    }
    let text = body["text"]["body"].as_str().unwrap_or_default().to_string();
    let to = body["to"].as_str().unwrap_or_default().to_string();
    if text.is_empty() || to.is_empty() {
        return graph_error(StatusCode::BAD_REQUEST, 100, "(#100) Invalid parameter");
    }
    if text.chars().count() > 4096 {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "(#100) Param text['body'] must be at most 4096 characters long",
        );
    }
    let failure = s.inner.lock().unwrap().failures.take();
    match failure {
        Some(Failure::RateLimited { retry_after_secs }) => {
            let mut r = graph_error(StatusCode::TOO_MANY_REQUESTS, 130429, "(#130429) Rate limit hit");
            r.headers_mut().insert("retry-after", retry_after_secs.to_string().parse().unwrap());
            return r;
        }
        Some(Failure::ServerError) => {
            return graph_error(StatusCode::INTERNAL_SERVER_ERROR, 131000, "(#131000) Something went wrong");
        }
        Some(Failure::Disconnect) => return cut_off(),
        None => {}
    }
    let id = format!("wamid.OUT{}", s.next_id.fetch_add(1, Ordering::SeqCst));
    s.inner.lock().unwrap().sent.push(Sent { to: to.clone(), body: text, at: Instant::now() });
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": id}]
    }))
    .into_response()
}

/// `sha256=` + hex HMAC-SHA256(secret, body): Meta's `X-Hub-Signature-256`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A notification as Meta sends it for one inbound message.
pub fn notification(phone_number_id: &str, from: &str, message: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550100", "phone_number_id": phone_number_id},
                    "contacts": [{"profile": {"name": "Ada"}, "wa_id": from}],
                    "messages": [message]
                },
                "field": "messages"
            }]
        }]
    })
}

/// A text message from `from`, with its `wamid`.
pub fn text_message(wamid: &str, from: &str, text: &str) -> Value {
    json!({"from": from, "id": wamid, "timestamp": "1733050000", "text": {"body": text}, "type": "text"})
}

impl FakeWhatsApp {
    /// Serves the Graph API for `token` and `phone_number_id`; webhooks are signed with `app_secret`.
    pub async fn start(token: &str, phone_number_id: &str, app_secret: &str) -> FakeWhatsApp {
        arvis_shared::install_crypto_provider(); // its client delivers webhooks
        let state = Arc::new(FakeState {
            token: token.to_string(),
            phone_number_id: phone_number_id.to_string(),
            inner: Mutex::default(),
            next_id: AtomicU64::new(1),
        });
        let app = axum::Router::new()
            .route("/v21.0/{phone}", get(phone_number))
            .route("/v21.0/{phone}/messages", post(messages))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v21.0", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        FakeWhatsApp {
            url,
            app_secret: app_secret.to_string(),
            phone_number_id: phone_number_id.to_string(),
            state,
            server,
            client: reqwest::Client::new(),
        }
    }

    /// A text notification for this fake's phone number: (payload, wamid).
    pub fn text_notification(&self, from: &str, text: &str) -> (Value, String) {
        let wamid = format!("wamid.IN{}", rand::random::<u64>());
        (notification(&self.phone_number_id, from, text_message(&wamid, from, text)), wamid)
    }

    /// Posts `payload` to `{gateway}/webhook/whatsapp`, signed with the app
    /// secret; the status and body of the answer.
    pub async fn deliver(&self, gateway: &str, payload: &Value) -> (u16, String) {
        let body = serde_json::to_vec(payload).unwrap();
        let signature = sign(&self.app_secret, &body);
        self.deliver_raw(gateway, body, Some(&signature)).await
    }

    /// Posts a raw body with the given signature header (or none).
    pub async fn deliver_raw(&self, gateway: &str, body: Vec<u8>, signature: Option<&str>) -> (u16, String) {
        let mut req = self
            .client
            .post(format!("{gateway}/webhook/whatsapp"))
            .header("content-type", "application/json")
            .header("user-agent", "facebookexternalua");
        if let Some(s) = signature {
            req = req.header("x-hub-signature-256", s);
        }
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// The next sends get these answers, in order.
    pub fn fail_next(&self, failures: &[Failure]) {
        self.state.inner.lock().unwrap().failures.push(failures);
    }

    /// Every failure answered, with when.
    pub fn failed_at(&self) -> Vec<(Failure, Instant)> {
        self.state.inner.lock().unwrap().failures.answered()
    }

    /// How many times the credentials were checked (`GET /{phone-number-id}`).
    pub fn checks(&self) -> usize {
        self.state.inner.lock().unwrap().checks
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
