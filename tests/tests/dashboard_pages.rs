//! Rendering tests of the dashboard's pages: each page with an empty database
//! and with 10 000 rows, asserted on the HTML (the shell, escaping, paging),
//! plus the access rules pages add to the API's (login redirect, the login
//! form, logout revoking the session, cross-origin forms refused).

#![expect(clippy::unwrap_used)]

use arvis_testkit::dashboard::seed;
use arvis_testkit::{Backend, TestApp, both_backends};
use serde_json::json;

async fn agent(app: &TestApp, slug: &str) -> i64 {
    let (status, body) = app.post("/api/agents", json!({"slug": slug, "name": slug})).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

// --- the shell and the overview

both_backends!(the_overview_renders_on_an_empty_database, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let page = app.page("/").await;
    page.assert_shell().assert_no_injected_script();
    assert!(page.contains("No messages yet"), "{}", page.html);
    assert!(!page.contains("failed job"), "no banner without failures");
    assert!(page.contains("<svg"), "the 7-day chart renders with no data");
    assert_eq!(page.count("<rect class=\"bar\""), 7, "seven days");
    // Pages not built yet are linked and say so, never a broken link.
    let soon = app.page("/queue").await;
    soon.assert_shell();
    assert!(soon.contains("coming soon"), "{}", soon.html);
    app.stop().await;
});

both_backends!(the_overview_renders_10000_messages_and_failed_jobs, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let id = agent(&app, "busy").await;
    seed::messages(&app, id, 10_000).await;
    seed::failed_jobs(&app, id, 3).await;
    let page = app.page("/").await;
    page.assert_shell().assert_no_injected_script();
    // One message a minute back from now: 1 440 fall in the last 24 hours
    // (the newest is a minute old; ±1 for the minute the test straddles).
    let stats = page.html.split("Messages, 24 h").nth(1).unwrap();
    let n: i64 = stats.split("<dd>").nth(1).unwrap().split('<').next().unwrap().parse().unwrap();
    assert!((1439..=1441).contains(&n), "messages in 24 h: {n}");
    assert!(page.contains("3 failed jobs"), "the banner counts them");
    assert!(page.contains("href=\"/queue\""));
    // The last messages list is capped, not 10 000 rows.
    assert_eq!(page.count("<td class=\"message\">"), 10);
    assert!(page.contains("seeded message 10000<"), "the newest first");
    // Seven bars, the chart's table holds each day's count; they add up to the
    // messages of the last 7 days (today partial).
    assert_eq!(page.count("<rect class=\"bar\""), 7);
    // The fragment htmx refreshes is the same section alone.
    let live = app.page("/ui/overview").await;
    assert_eq!(live.status, 200);
    assert!(live.html.starts_with("<section id=\"overview-live\""), "{}", &live.html[..100.min(live.html.len())]);
    assert!(live.contains("3 failed jobs"));
    app.stop().await;
});

both_backends!(what_users_and_models_wrote_is_escaped_on_the_overview, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.post("/api/agents", json!({"slug": "x", "name": "<img src=x onerror=alert(1)>"})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let conv = app.deps.store.create_conversation(id, "web", "c1", None, None).await.unwrap();
    app.deps.store.append_message(&conv, "assistant", "<script>alert('x')</script>", None).await.unwrap();
    let page = app.page("/").await;
    page.assert_shell().assert_no_injected_script();
    assert!(
        page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
            || page.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{}",
        page.html
    );
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"), "{}", page.html);
    app.stop().await;
});

// --- assets

both_backends!(assets_are_served_with_a_content_hash_and_a_long_cache, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let page = app.page("/").await;
    let src = page.html.split("<script src=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(src.starts_with("/assets/htmx-2.0.11.min."), "{src}");
    let resp = app.client.get(app.url(&src)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(resp.text().await.unwrap().contains("htmx"));
    let stale = app.client.get(app.url("/assets/dashboard.000000000000.js")).send().await.unwrap();
    assert_eq!(stale.status(), 404, "an old hash is not served");
    app.stop().await;
});

// --- access

both_backends!(with_a_password_pages_need_a_session_and_logout_revokes_it, |backend: Backend| async move {
    let app = TestApp::builder(backend).env("DASHBOARD_PASSWORD", "hunter22").start().await;
    // Without a session: to the login form, coming back after.
    let page = app.page("/agents?page=2").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.headers["location"], "/login?next=/agents%3Fpage%3D2");
    let login = app.page("/login").await;
    assert_eq!(login.status, 200);
    assert!(login.contains("type=\"password\""));
    login.assert_no_injected_script();
    // The API still answers JSON 401 to scripts.
    assert_eq!(app.get("/api/agents").await.0, 401);

    // A wrong password: the form again, the API's message next to the field.
    let wrong = app.post_form("/login", &[("password", "nope"), ("next", "/agents")], &[]).await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.contains("<span class=\"field-error\" id=\"password-error\" role=\"alert\">invalid password</span>"),
        "{}",
        wrong.html
    );

    let ok = app.post_form("/login", &[("password", "hunter22"), ("next", "/agents")], &[]).await;
    assert_eq!(ok.status, 303, "{}", ok.html);
    assert_eq!(ok.headers["location"], "/agents");
    let set_cookie = ok.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    let overview = app.page_with("/", &[("cookie", &cookie)]).await;
    overview.assert_shell();
    assert!(overview.contains("action=\"/logout\""), "a logout button");
    assert!(!overview.contains(cookie.split('=').nth(1).unwrap()), "the token is never in the page");

    // Logout from another origin is refused (and the session lives on).
    let forged = app.post_form("/logout", &[], &[("cookie", &cookie), ("sec-fetch-site", "same-site")]).await;
    assert_eq!(forged.status, 403, "{}", forged.html);
    assert_eq!(app.page_with("/", &[("cookie", &cookie)]).await.status, 200);

    let out = app.post_form("/logout", &[], &[("cookie", &cookie)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.headers["location"], "/login");
    assert!(out.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    // The same cookie presented again: refused, by the pages and by the API.
    assert_eq!(app.page_with("/", &[("cookie", &cookie)]).await.status, 303);
    let (status, _) = app.call(reqwest::Method::GET, "/api/agents", None, &[("cookie", &cookie)]).await;
    assert_eq!(status, 401);
    app.stop().await;
});

both_backends!(a_cross_origin_login_post_is_refused, |backend: Backend| async move {
    let app = TestApp::builder(backend).env("DASHBOARD_PASSWORD", "hunter22").start().await;
    let forged = app.post_form("/login", &[("password", "hunter22")], &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(forged.status, 403);
    assert!(forged.headers.get("set-cookie").is_none());
    // After login, never to another site.
    let ok = app.post_form("/login", &[("password", "hunter22"), ("next", "//evil.example/")], &[]).await;
    assert_eq!(ok.headers["location"], "/");
    app.stop().await;
});

both_backends!(without_a_password_the_pages_are_open_and_login_goes_home, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    app.page("/agents").await.assert_shell();
    let login = app.page("/login").await;
    assert_eq!((login.status, login.headers["location"].to_str().unwrap()), (303, "/"));
    assert!(!app.page("/").await.contains("action=\"/logout\""), "nothing to log out of");
    app.stop().await;
});
