//! Authentication: every documented route needs credentials when a password
//! is set (enumerated from the router's own OpenAPI document), JWT tampering
//! and expiry, the login limiter, and the refusal to serve an open API on a
//! public address.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use arvis_testkit::{Backend, TestApp, both_backends};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";
const API_KEY: &str = "test-api-key-0123456789";
const JWT_SECRET: &str = "jwt-secret-for-tests-0123456789abcdef";

async fn secured(backend: Backend) -> TestApp {
    TestApp::builder(backend)
        .env("DASHBOARD_PASSWORD", PASSWORD)
        .env("DASHBOARD_API_KEY", API_KEY)
        .env("JWT_SECRET", JWT_SECRET)
        .start()
        .await
}

/// Every (method, concrete path) the router documents.
fn all_routes() -> Vec<(Method, String)> {
    let doc = serde_json::to_value(arvis_gateway::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "1").replace("{path}", "x");
        for method in item.as_object().unwrap().keys() {
            if let Ok(m) = method.to_uppercase().parse::<Method>() {
                out.push((m, concrete.clone()));
            }
        }
    }
    assert!(out.len() >= 7, "the router documents too few routes: {out:?}");
    out
}

async fn login(app: &TestApp) -> String {
    let resp = app.client.post(app.url("/api/auth/login")).json(&json!({"password": PASSWORD})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Max-Age=604800"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_string()
}

both_backends!(every_route_but_health_and_login_needs_credentials, |backend| async move {
    let app = secured(backend).await;
    let cookie = login(&app).await;
    for (method, path) in all_routes() {
        // Inbound webhooks authenticate each delivery with its HMAC signature instead.
        let public =
            matches!(path.as_str(), "/api/health" | "/api/auth/login" | "/api/auth/logout" | "/healthz" | "/readyz")
                || path.starts_with("/webhook/");
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let (status, json) = app.call(method.clone(), &path, body.clone(), &[]).await;
        if public {
            assert_ne!(status, 401, "{method} {path} must be public");
            continue;
        }
        assert_eq!(status, 401, "{method} {path} without credentials");
        assert!(json["error"].is_string(), "{method} {path}: {json}");
        for header in [
            ("x-api-key", API_KEY.to_string()),
            ("authorization", format!("Bearer {API_KEY}")),
            ("cookie", cookie.clone()),
        ] {
            let (status, _) = app.call(method.clone(), &path, body.clone(), &[(header.0, &header.1)]).await;
            assert_ne!(status, 401, "{method} {path} with {}", header.0);
            assert!(status < 500, "{method} {path} answered {status}");
        }
        let (status, _) = app.call(method.clone(), &path, body.clone(), &[("x-api-key", "wrong-key")]).await;
        assert_eq!(status, 401, "{method} {path} with a wrong key");
    }
});

fn token(secret: &str, exp_offset: i64, alg: Algorithm) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({"role": "admin", "iat": now, "exp": now + exp_offset});
    jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes()).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_foreign_and_expired_tokens_are_refused() {
    let app = secured(Backend::Sqlite).await;
    let good = token(JWT_SECRET, 3600, Algorithm::HS256);
    let cookie = |t: &str| format!("arvis-token={t}");
    assert_eq!(app.call(Method::GET, "/api/agents", None, &[("cookie", &cookie(&good))]).await.0, 200);

    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let foreign = token("some-other-secret-0123456789", 3600, Algorithm::HS256);
    let expired = token(JWT_SECRET, -10, Algorithm::HS256);
    let other_alg = token(JWT_SECRET, 3600, Algorithm::HS512);
    let header_b64 = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let none_alg = format!("{header_b64}.{}.", good.split('.').nth(1).unwrap());
    for (what, t) in [
        ("tampered", tampered),
        ("foreign", foreign),
        ("expired", expired),
        ("HS512", other_alg),
        ("alg none", none_alg),
    ] {
        let (status, _) = app.call(Method::GET, "/api/agents", None, &[("cookie", &cookie(&t))]).await;
        assert_eq!(status, 401, "{what} token must be refused");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_are_throttled_even_for_the_right_password() {
    let app = secured(Backend::Sqlite).await;
    for i in 0..10 {
        let (status, body) = app.post("/api/auth/login", json!({"password": format!("wrong-{i}")})).await;
        assert_eq!(status, 401, "attempt {i}: {body}");
    }
    let resp = app.client.post(app.url("/api/auth/login")).json(&json!({"password": PASSWORD})).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("too many"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_clears_the_cookie_and_health_stays_public() {
    let app = secured(Backend::Sqlite).await;
    let resp = app.client.post(app.url("/api/auth/logout")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (status, body) = app.get("/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert!(body["uptime"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_api_is_refused_on_a_public_address() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let public: std::net::SocketAddr = "0.0.0.0:5100".parse().unwrap();
    let err = arvis_gateway::state(app.deps.clone(), public).err().expect("must refuse").to_string();
    assert!(err.contains("DASHBOARD_PASSWORD"), "{err}");
    assert!(arvis_gateway::state(app.deps.clone(), "127.0.0.1:5100".parse().unwrap()).is_ok());
    let secured = secured(Backend::Sqlite).await;
    assert!(arvis_gateway::state(secured.deps.clone(), public).is_ok());
}
