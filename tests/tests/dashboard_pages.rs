//! Rendering tests of the dashboard's pages: each page with an empty database
//! and with 10 000 rows, asserted on the HTML (the shell, escaping, paging),
//! plus the access rules pages add to the API's (login redirect, the login
//! form, logout revoking the session, cross-origin forms refused).

#![expect(clippy::unwrap_used)]

use arvis_testkit::dashboard::{form_encode, seed};
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
    // Every page of the navigation answers with the shell (one not built yet
    // says "coming soon"), never a broken link.
    let nav = page.html.split("<nav class=\"side\"").nth(1).unwrap().split("</nav>").next().unwrap();
    let hrefs: Vec<&str> = nav.split("href=\"").skip(1).map(|h| h.split('"').next().unwrap()).collect();
    assert_eq!(hrefs.len(), 13, "{nav}");
    for href in hrefs {
        app.page(href).await.assert_shell();
    }
    // A mistyped page is an HTML 404; the API keeps its JSON.
    let missing = app.page("/no-such-page").await;
    assert_eq!(missing.status, 404);
    assert!(missing.html.starts_with("<!DOCTYPE html>") && missing.contains("There is no such page."));
    assert_eq!(app.get("/api/no-such-route").await, (404, json!({"error": "no such route"})));
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

// --- chat

/// The events of an SSE body: `(event, data)` in order.
fn sse_events(body: &str) -> Vec<(String, serde_json::Value)> {
    body.split("\n\n")
        .filter_map(|frame| {
            let event = frame.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

async fn stream(app: &TestApp, agent: i64, message: &str) -> (u16, String) {
    let resp = app
        .client
        .post(app.url(&format!("/chat/{agent}/stream")))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("message={}", form_encode(message)))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

both_backends!(the_chat_page_renders_an_empty_and_a_10000_message_history, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let id = agent(&app, "talker").await;
    let picker = app.page("/chat").await;
    picker.assert_shell();
    assert!(picker.contains(&format!("href=\"/chat/{id}\"")), "{}", picker.html);
    let empty = app.page(&format!("/chat/{id}")).await;
    empty.assert_shell().assert_no_injected_script();
    assert!(empty.contains("No messages yet"));
    assert!(empty.contains(&format!("data-chat-stream=\"/chat/{id}/stream\"")));

    seed::dashboard_chat(&app, id, 10_000).await;
    let full = app.page(&format!("/chat/{id}")).await;
    full.assert_shell();
    assert_eq!(full.count("<div class=\"msg "), 100, "one page of history");
    assert!(full.contains("seeded message 10000<"), "the newest on the first page");
    assert!(full.contains("Page 1 of 100"));
    let oldest = app.page(&format!("/chat/{id}?page=100")).await;
    assert!(oldest.contains("seeded message 1<") && !oldest.contains("seeded message 101<"));
    assert_eq!(app.page("/chat/999999").await.status, 404);
    app.stop().await;
});

both_backends!(a_chat_reply_streams_as_server_sent_events_and_resumes, |backend: Backend| async move {
    let mock = arvis_testkit::MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let (_, body) = app.post("/api/agents", json!({"slug": "s", "name": "S", "model": "openai/gpt-4o-mini"})).await;
    let id = body["id"].as_i64().unwrap();
    mock.push(arvis_testkit::MockReply::text("Here is <script>alert(1)</script> **bold**"));
    let (status, text) = stream(&app, id, "hi").await;
    assert_eq!(status, 200, "{text}");
    let events = sse_events(&text);
    assert_eq!(events[0].0, "accepted", "{text}");
    let job = events[0].1["jobId"].as_i64().unwrap();
    let deltas: String =
        events.iter().filter(|(e, _)| e == "delta").map(|(_, d)| d["text"].as_str().unwrap()).collect();
    assert!(events.iter().filter(|(e, _)| e == "delta").count() > 1, "streamed in pieces: {text}");
    assert_eq!(deltas, "Here is <script>alert(1)</script> **bold**", "deltas are the raw text, shown as text");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "reply");
    let html = data["html"].as_str().unwrap();
    assert_eq!(html, "<p>Here is &lt;script&gt;alert(1)&lt;/script&gt; <strong>bold</strong></p>");

    // Reconnecting after the end: the whole reply, from the job row.
    let resumed = app.client.get(app.url(&format!("/chat/{id}/jobs/{job}/events"))).send().await.unwrap();
    assert_eq!(resumed.status(), 200);
    let events = sse_events(&resumed.text().await.unwrap());
    assert_eq!(events.first().map(|e| e.0.as_str()), Some("resumed"));
    assert_eq!(events.last().unwrap().1["html"], html);
    // Another agent's job is not readable through this agent's URL.
    assert_eq!(
        app.client.get(app.url(&format!("/chat/{}/jobs/{job}/events", id + 1))).send().await.unwrap().status(),
        404
    );

    // The history shows the reply rendered, escaped.
    let page = app.page(&format!("/chat/{id}")).await;
    page.assert_no_injected_script();
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; <strong>bold</strong>"), "{}", page.html);

    // Refusals come back as the API's {"error"}.
    let (status, text) = stream(&app, id, "   ").await;
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["error"], "the message is empty");
    assert_eq!(stream(&app, 999_999, "hi").await.0, 404);
    // Cross-origin: refused before anything is stored.
    let forged = app
        .client
        .post(app.url(&format!("/chat/{id}/stream")))
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("message=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let (_, history) = app.get(&format!("/api/agents/{id}/history")).await;
    assert!(!history.to_string().contains("forged"));
    app.stop().await;
});

// --- agents

both_backends!(the_agents_list_renders_one_and_10000_agents, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let one = app.page("/agents").await;
    one.assert_shell();
    assert_eq!(one.count("<td><a href=\"/agents/"), 1, "the conductor alone");
    assert!(one.contains("conductor"));
    seed::agents(&app, 10_000).await;
    let page = app.page("/agents").await;
    page.assert_shell();
    assert_eq!(page.count("<td><a href=\"/agents/"), 50);
    assert!(page.contains("Page 1 of 201 · 10001 items"), "{}", page.html);
    let last = app.page("/agents?page=201").await;
    assert_eq!(last.count("<td><a href=\"/agents/"), 1);
    assert!(last.contains("Bulk agent 10000<"));
    assert_eq!(app.page("/agents?page=junk").await.status, 200, "a bad page number shows the first page");
    app.stop().await;
});

both_backends!(agents_are_created_edited_and_refused_with_the_apis_message, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let fields = |slug: &'static str, max: &'static str| {
        vec![
            ("name", "Writer"),
            ("slug", slug),
            ("role", "creative"),
            ("model", "openai/gpt-6-luna"),
            ("allowedTools", "calculate, get_time"),
            ("temperature", "0.3"),
            ("maxTokens", max),
            ("systemPrompt", "You write."),
            ("isActive", "on"),
        ]
    };
    let refused = app.post_form("/agents/new", &fields("writer", "0"), &[]).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.contains("id=\"maxTokens-error\" role=\"alert\">maxTokens must be between 1 and 1000000</span>"),
        "{}",
        refused.html
    );
    assert!(refused.contains("value=\"writer\""), "the form keeps what was typed");
    let created = app.post_form("/agents/new", &fields("writer", "2048"), &[]).await;
    assert_eq!(created.status, 303, "{}", created.html);
    let location = created.headers["location"].to_str().unwrap().to_string();
    let id: i64 = location.trim_start_matches("/agents/").parse().unwrap();
    let (_, agents) = app.get("/api/agents").await;
    let agent = agents.as_array().unwrap().iter().find(|a| a["id"] == id).unwrap().clone();
    assert_eq!(agent["maxTokens"], 2048);
    assert_eq!(agent["allowedTools"], json!(["calculate", "get_time"]));
    assert_eq!(agent["role"], "creative");
    assert_eq!(agent["createdBy"], "dashboard");

    let duplicate = app.post_form("/agents/new", &fields("writer", "2048"), &[]).await;
    assert_eq!(duplicate.status, 409);
    assert!(duplicate.contains("id=\"slug-error\" role=\"alert\">an agent with this slug already exists</span>"));

    // Edit: unticking "active" pauses it; the new model is stored.
    let edit = [
        ("name", "Writer 2"),
        ("slug", "writer"),
        ("role", "creative"),
        ("model", "openai/gpt-5"),
        ("temperature", "1"),
        ("maxTokens", "100"),
    ];
    let saved = app.post_form(&format!("/agents/{id}"), &edit, &[]).await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let (_, agents) = app.get("/api/agents").await;
    let agent = agents.as_array().unwrap().iter().find(|a| a["id"] == id).unwrap().clone();
    assert_eq!(
        (agent["name"].as_str(), agent["model"].as_str(), agent["isActive"].as_bool()),
        (Some("Writer 2"), Some("openai/gpt-5"), Some(false))
    );
    let bad = [("name", "W"), ("slug", "writer"), ("role", "boss"), ("temperature", "1"), ("maxTokens", "100")];
    let refused = app.post_form(&format!("/agents/{id}"), &bad, &[]).await;
    assert_eq!(refused.status, 400);
    assert!(refused.contains("id=\"role-error\" role=\"alert\">role must be one of"), "{}", refused.html);
    let not_a_number =
        [("name", "W"), ("slug", "writer"), ("role", "creative"), ("temperature", "hot"), ("maxTokens", "100")];
    let refused = app.post_form(&format!("/agents/{id}"), &not_a_number, &[]).await;
    assert!(refused.contains("id=\"temperature-error\" role=\"alert\">temperature must be a number"));

    // The conductor cannot be deleted: the API's message on its page.
    let (_, settings) = app.get("/api/settings").await;
    let conductor = settings["conductorAgentId"].as_i64().unwrap();
    let refused = app.post_form(&format!("/agents/{conductor}/delete"), &[], &[]).await;
    assert_eq!(refused.status, 409);
    assert!(refused.contains("cannot delete the active conductor"), "{}", refused.html);
    let deleted = app.post_form(&format!("/agents/{id}/delete"), &[], &[]).await;
    assert_eq!((deleted.status, deleted.headers["location"].to_str().unwrap()), (303, "/agents"));
    assert_eq!(app.page(&format!("/agents/{id}")).await.status, 404);
    app.stop().await;
});

both_backends!(an_agent_page_pages_10000_facts_and_conversations, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let id = agent(&app, "memo").await;
    let empty = app.page(&format!("/agents/{id}")).await;
    empty.assert_shell().assert_no_injected_script();
    assert!(empty.contains("No memory facts yet") && empty.contains("No conversations yet"));

    seed::memory(&app, id, 10_000).await;
    seed::conversations(&app, id, 10_000).await;
    let page = app.page(&format!("/agents/{id}")).await;
    page.assert_shell();
    assert!(page.contains("Memory (10000)") && page.contains("Conversations (10000)"));
    assert_eq!(page.count("/delete\" data-confirm=\"Delete this memory fact?\""), 50);
    assert_eq!(page.count("<td><a href=\"/api/conversations/conv_bulk"), 50);
    assert_eq!(page.count("Page 1 of 200 · 10000 items"), 2);
    let later = app.page(&format!("/agents/{id}?mpage=3&cpage=200")).await;
    assert!(later.contains("Page 3 of 200") && later.contains("Page 200 of 200"));
    assert!(later.contains("conv_bulk10000<"), "the oldest conversation on the last page");

    // Delete one fact through the page.
    let facts = app.deps.store.list_memory(Some(id)).await.unwrap();
    let fact = facts[0].id;
    let done = app.post_form(&format!("/agents/{id}/memory/{fact}/delete"), &[], &[]).await;
    assert_eq!(done.status, 303);
    assert_eq!(app.deps.store.agent_memory_page(id, 1, 0).await.unwrap().1, 9_999);
    // A fact of another agent is not deletable through this one's URL.
    assert_eq!(
        app.post_form(&format!("/agents/{}/memory/{}/delete", id + 100, facts[1].id), &[], &[]).await.status,
        404
    );
    app.stop().await;
});

// The split topology's bus: the stream's events come over a real NATS server.
both_backends!(the_chat_stream_works_over_nats, |backend: Backend| async move {
    let mock = arvis_testkit::MockLlm::start().await;
    let app = TestApp::builder(backend)
        .with_nats()
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .start()
        .await;
    let (_, body) = app.post("/api/agents", json!({"slug": "n", "name": "N", "model": "openai/gpt-4o-mini"})).await;
    let id = body["id"].as_i64().unwrap();
    mock.push(arvis_testkit::MockReply::text("over the wire in pieces"));
    let (status, text) = stream(&app, id, "hi").await;
    assert_eq!(status, 200, "{text}");
    let events = sse_events(&text);
    assert!(events.iter().filter(|(e, _)| e == "delta").count() > 1, "deltas came over NATS: {text}");
    assert_eq!(events.last().unwrap().1["html"], "<p>over the wire in pieces</p>");
    app.stop().await;
});
