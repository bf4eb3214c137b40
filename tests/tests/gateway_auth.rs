//! Authentication: every documented route needs credentials when a password
//! is set (enumerated from the router's own OpenAPI document), JWT tampering
//! and expiry, sessions that logout ends on every replica, cross-origin writes
//! refused, the login limiter, and the refusal to serve an open API on a
//! public address.

#![expect(clippy::unwrap_used)] // a test fails by panicking

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
            // The platform webhooks refuse an unsigned delivery with a 401 of
            // their own: the signature is their credential, not the API's.
            let signature_refused = json["error"].as_str().is_some_and(|e| e.contains("-Signature"));
            assert!(status != 401 || signature_refused, "{method} {path} must be public: {json}");
            continue;
        }
        assert_eq!(status, 401, "{method} {path} without credentials");
        if path.starts_with("/v1/") {
            // The OpenAI-compatible API answers in OpenAI's error shape.
            assert_eq!(json["error"]["code"], "invalid_api_key", "{method} {path}: {json}");
        } else {
            assert!(json["error"].is_string(), "{method} {path}: {json}");
        }
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

fn token(secret: &str, sid: Option<&str>, exp_offset: i64, alg: Algorithm) -> String {
    arvis_shared::jwt_crypto::install();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut claims = json!({"role": "admin", "iat": now, "exp": now + exp_offset});
    if let Some(sid) = sid {
        claims["sid"] = json!(sid);
    }
    jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret.as_bytes()).unwrap()).unwrap()
}

/// The session id inside a session cookie (`arvis-token=<jwt>`).
fn sid_of(cookie: &str) -> String {
    arvis_shared::jwt_crypto::install();
    let jwt = cookie.trim_start_matches("arvis-token=");
    let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp"]);
    let key = jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap();
    let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v).unwrap();
    data.claims["sid"].as_str().unwrap().to_string()
}

both_backends!(tampered_foreign_expired_and_unrecorded_tokens_are_refused, |backend| async move {
    let app = secured(backend).await;
    let session = login(&app).await;
    let sid = sid_of(&session);
    let cookie = |t: &str| format!("arvis-token={t}");
    let good = token(JWT_SECRET, Some(&sid), 3600, Algorithm::HS256);
    assert_eq!(app.call(Method::GET, "/api/agents", None, &[("cookie", &cookie(&good))]).await.0, 200);

    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let foreign = token("some-other-secret-0123456789", Some(&sid), 3600, Algorithm::HS256);
    let expired = token(JWT_SECRET, Some(&sid), -10, Algorithm::HS256);
    let other_alg = token(JWT_SECRET, Some(&sid), 3600, Algorithm::HS512);
    let header_b64 = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let none_alg = format!("{header_b64}.{}.", good.split('.').nth(1).unwrap());
    // Signed with the right secret, but naming no recorded session, or none at all.
    let unrecorded = token(JWT_SECRET, Some("00112233445566778899aabbccddeeff"), 3600, Algorithm::HS256);
    let no_sid = token(JWT_SECRET, None, 3600, Algorithm::HS256);
    for (what, t) in [
        ("tampered", tampered),
        ("foreign", foreign),
        ("expired", expired),
        ("HS512", other_alg),
        ("alg none", none_alg),
        ("unrecorded session", unrecorded),
        ("no session id", no_sid),
    ] {
        let (status, _) = app.call(Method::GET, "/api/agents", None, &[("cookie", &cookie(&t))]).await;
        assert_eq!(status, 401, "{what} token must be refused");
        let bearer = format!("Bearer {t}");
        let (status, _) = app.call(Method::GET, "/api/agents", None, &[("authorization", &bearer)]).await;
        assert_eq!(status, 401, "{what} token as a bearer must be refused");
    }
    app.stop().await;
});

both_backends!(logout_ends_the_session_on_every_gateway, |backend| async move {
    let mut app = secured(backend).await;
    let cookie = login(&app).await;
    let other_session = login(&app).await;
    // A second gateway replica over the same database.
    let replica = app.spawn_gateway().await;
    let agents = |base: String, cookie: String| {
        let client = app.client.clone();
        async move { client.get(format!("{base}/api/agents")).header("cookie", cookie).send().await.unwrap().status() }
    };
    assert_eq!(agents(app.base.clone(), cookie.clone()).await, 200);
    assert_eq!(agents(replica.clone(), cookie.clone()).await, 200);

    let resp = app.client.post(app.url("/api/auth/logout")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    // The same token presented again: refused here and on the replica.
    assert_eq!(agents(app.base.clone(), cookie.clone()).await, 401);
    assert_eq!(agents(replica.clone(), cookie.clone()).await, 401);
    let bearer = format!("Bearer {}", cookie.trim_start_matches("arvis-token="));
    let status = app.client.get(app.url("/api/agents")).header("authorization", bearer).send().await.unwrap().status();
    assert_eq!(status, 401);
    // Other sessions live on.
    assert_eq!(agents(replica.clone(), other_session).await, 200);
    app.stop().await;
});

both_backends!(cookie_sessions_cannot_be_ridden_from_another_origin, |backend| async move {
    let app = secured(backend).await;
    let cookie = login(&app).await;
    let host = app.base.trim_start_matches("http://").to_string();
    let create = |slug: &'static str, headers: Vec<(&'static str, String)>| {
        let (client, url) = (app.client.clone(), app.url("/api/agents"));
        async move {
            let mut req = client.post(url).json(&json!({"slug": slug, "name": slug, "model": "openai/gpt-4o-mini"}));
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    // A page of another origin (another port of the same host is the same *site*).
    let evil = "http://localhost:8080".to_string();
    let (status, body) = create("a", vec![("cookie", cookie.clone()), ("origin", evil.clone())]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("cross-origin"), "{body}");
    let fetch = vec![("cookie", cookie.clone()), ("sec-fetch-site", "same-site".to_string())];
    assert_eq!(create("b", fetch).await.0, 403);
    // The dashboard's own origin, and scripts without Origin, may write.
    let own = vec![
        ("cookie", cookie.clone()),
        ("origin", format!("http://{host}")),
        ("sec-fetch-site", "same-origin".into()),
    ];
    assert_eq!(create("c", own).await.0, 201);
    assert_eq!(create("d", vec![("cookie", cookie.clone())]).await.0, 201);
    // Reads are not refused, and the API key is never: it is not sent by a browser on its own.
    let (status, _) = app.call(Method::GET, "/api/agents", None, &[("cookie", &cookie), ("origin", &evil)]).await;
    assert_eq!(status, 200);
    assert_eq!(create("e", vec![("x-api-key", API_KEY.into()), ("origin", evil.clone())]).await.0, 201);
    // Nothing was written by the refused requests.
    let (_, agents) = app.call(Method::GET, "/api/agents", None, &[("x-api-key", API_KEY)]).await;
    let slugs: Vec<&str> = agents.as_array().unwrap().iter().filter_map(|a| a["slug"].as_str()).collect();
    assert!(!slugs.contains(&"a") && !slugs.contains(&"b") && slugs.contains(&"c"), "{slugs:?}");
    app.stop().await;
});

both_backends!(an_open_api_refuses_writes_from_web_pages, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let body = json!({"slug": "x", "name": "x", "model": "openai/gpt-4o-mini"});
    let resp = app
        .client
        .post(app.url("/api/agents"))
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(app.post("/api/agents", body).await.0, 201, "a script without Origin may");
    app.stop().await;
});

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
async fn logout_without_a_session_clears_the_cookie_and_health_stays_public() {
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

both_backends!(failed_logins_are_counted_across_gateway_replicas, |backend| async move {
    let mut app = secured(backend).await;
    let replica = app.spawn_gateway().await;
    let login_at = |base: String, password: String| {
        let client = app.client.clone();
        async move {
            let resp = client
                .post(format!("{base}/api/auth/login"))
                .json(&json!({"password": password}))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()))
        }
    };
    // Five failures on each replica: ten from this address in all.
    for i in 0..10 {
        let base = if i % 2 == 0 { app.base.clone() } else { replica.clone() };
        assert_eq!(login_at(base, format!("wrong-{i}")).await.0, 401, "attempt {i}");
    }
    for base in [app.base.clone(), replica.clone()] {
        let (status, retry_after) = login_at(base, PASSWORD.to_string()).await;
        assert_eq!(status, 429);
        let secs: u64 = retry_after.unwrap().parse().unwrap();
        assert!(secs > 0 && secs <= 900, "{secs}");
    }
    app.stop().await;
});
