//! Dashboard test support: fetch a page as HTML ([`TestApp::page`]) and assert
//! on it ([`Page`]), and fill the database with many rows fast ([`seed`]) to
//! render a page with an empty database and with 10 000 rows.
//!
//! The seeders write with one `INSERT … SELECT` over a recursive counter (the
//! same SQL on SQLite and Postgres), not 10 000 round trips: seeding 10 000
//! messages takes well under a second on both.
//!
//! [`browser::run_scenario`] runs one scenario of `tests/browser/scenarios.mjs`
//! (playwright-core in Debian's Chromium) against a running app.

use reqwest::header::HeaderMap;

use crate::TestApp;

/// A fetched page.
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub html: String,
}

impl Page {
    /// How often `needle` occurs in the HTML.
    pub fn count(&self, needle: &str) -> usize {
        self.html.matches(needle).count()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.html.contains(needle)
    }

    /// The checks every page must pass: the whole shell rendered (navigation
    /// to every page, the health badge, the main column) and the security
    /// headers. Returns `self` to chain more asserts.
    pub fn assert_shell(&self) -> &Page {
        assert_eq!(self.status, 200, "{}", self.html);
        assert!(self.html.starts_with("<!DOCTYPE html>"), "{}", self.html);
        assert!(self.contains("id=\"health\""), "health badge missing");
        assert!(self.contains("<main id=\"main\""), "main column missing");
        for href in ["href=\"/\"", "href=\"/chat\"", "href=\"/agents\"", "href=\"/queue\"", "href=\"/settings\""] {
            assert!(self.contains(href), "nav link {href} missing");
        }
        self.assert_headers()
    }

    /// CSP, nosniff, framing and no-store.
    pub fn assert_headers(&self) -> &Page {
        let h = |name: &str| self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let csp = h("content-security-policy");
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "CSP: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "CSP: {csp}");
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("cache-control"), "no-store");
        self
    }

    /// No script the page did not mean: every `<script` is one of our two
    /// external files, and no tag carries an inline event handler or a
    /// `javascript:` URL (escaped text may show them: it has no `<`).
    pub fn assert_no_injected_script(&self) -> &Page {
        let scripts = self.count("<script");
        let ours = self.count("<script src=\"/assets/");
        assert_eq!(scripts, ours, "a <script> that is not ours:\n{}", self.html);
        for tag in self.html.split('<').skip(1).map(|t| t.split('>').next().unwrap_or("")) {
            let lower = tag.to_ascii_lowercase();
            for bad in [" onerror=", " onload=", " onclick=", " onmouseover=", "javascript:"] {
                assert!(!lower.contains(bad), "{bad} in the tag <{tag}>");
            }
            assert!(!lower.starts_with("img ") || lower.contains("src=\"/assets/"), "an image not ours: <{tag}>");
        }
        self
    }
}

impl TestApp {
    /// GET a dashboard page (with these extra headers, e.g. a cookie).
    pub async fn page_with(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut req = client.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let html = resp.text().await.unwrap();
        Page { status, headers, html }
    }

    /// GET a dashboard page.
    pub async fn page(&self, path: &str) -> Page {
        self.page_with(path, &[]).await
    }

    /// POST a form (urlencoded) as a browser on our own origin would; no
    /// redirects followed.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let body: String =
            fields.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&");
        let mut req =
            client.post(self.url(path)).header("content-type", "application/x-www-form-urlencoded").body(body);
        // A browser marks its own page's posts same-origin, unless the test says otherwise.
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("sec-fetch-site")) {
            req = req.header("sec-fetch-site", "same-origin");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let html = resp.text().await.unwrap();
        Page { status, headers, html }
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Bulk rows for rendering tests.
pub mod seed {
    use crate::TestApp;

    // The statements below are built from numbers and ids made here (no
    // outside input), hence `AssertSqlSafe`.

    /// `WITH RECURSIVE n(i) …` counting 1..=count, for `INSERT … SELECT`.
    fn counter(count: i64) -> String {
        format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) ")
    }

    fn now() -> i64 {
        arvis_shared::clock::now_ms()
    }

    /// `count` agents `bulk-1` … named `Bulk agent N`; returns nothing (list them by API).
    pub async fn agents(app: &TestApp, count: i64) {
        let pool = app.db.pool().await;
        let sql = format!(
            "INSERT INTO agents (slug, name, role, model, created_at, updated_at) {} \
             SELECT 'bulk-' || i, 'Bulk agent ' || i, 'specialist', 'openai/gpt-6-luna', {t}, {t} FROM n",
            counter(count),
            t = now()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
        // The store caches the agent list; a write behind its back must drop it.
        app.deps.store.agent_cache().invalidate();
    }

    /// A conversation of `agent_id` with `count` messages (alternating user and
    /// assistant, in time order, the newest a minute old, one a minute apart, so they spread over ~7 days at
    /// 10 000); returns the conversation id.
    pub async fn messages(app: &TestApp, agent_id: i64, count: i64) -> String {
        let channel = format!("seed-{:08x}", rand::random::<u32>());
        messages_in(app, agent_id, "dashboard", &channel, "closed", count).await
    }

    /// [`messages`] in the agent's dashboard chat (what `/chat/{id}` shows).
    pub async fn dashboard_chat(app: &TestApp, agent_id: i64, count: i64) -> String {
        let channel = arvis_shared::domain::conversation::dashboard_channel(agent_id);
        messages_in(app, agent_id, "dashboard", &channel, "active", count).await
    }

    async fn messages_in(
        app: &TestApp,
        agent_id: i64,
        platform: &str,
        channel: &str,
        status: &str,
        count: i64,
    ) -> String {
        let pool = app.db.pool().await;
        let id = format!("conv_seed{:08x}", rand::random::<u32>());
        let t = now();
        sqlx::query(
            "INSERT INTO conversations (id, agent_id, platform, channel_id, status, message_count, total_tokens, \
             started_at, last_message_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)",
        )
        .bind(&id)
        .bind(agent_id)
        .bind(platform)
        .bind(channel)
        .bind(status)
        .bind(count)
        .bind(t - count * 60_000)
        .bind(t)
        .execute(&pool)
        .await
        .unwrap();
        let sql = format!(
            "INSERT INTO messages (conversation_id, role, content, created_at) {} \
             SELECT '{id}', CASE WHEN i % 2 = 0 THEN 'assistant' ELSE 'user' END, 'seeded message ' || i, \
             {t} - (({count} - i + 1) * 60000) FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
        id
    }

    /// `count` conversations of `agent_id`, one message each.
    pub async fn conversations(app: &TestApp, agent_id: i64, count: i64) {
        let pool = app.db.pool().await;
        let t = now();
        let sql = format!(
            "INSERT INTO conversations (id, agent_id, platform, channel_id, status, message_count, total_tokens, \
             started_at, last_message_at) {} SELECT 'conv_bulk' || i, {agent_id}, 'web', 'bulk-' || i, 'closed', 1, \
             0, {t} - i, {t} - i FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// `count` memory facts of `agent_id`.
    pub async fn memory(app: &TestApp, agent_id: i64, count: i64) {
        let pool = app.db.pool().await;
        let t = now();
        let sql = format!(
            "INSERT INTO memory_facts (agent_id, category, content, created_at) {} \
             SELECT {agent_id}, 'fact', 'bulk fact ' || i, {t} - i FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// `count` failed jobs of `agent_id`.
    pub async fn failed_jobs(app: &TestApp, agent_id: i64, count: i64) {
        let pool = app.db.pool().await;
        let t = now();
        let sql = format!(
            "INSERT INTO jobs (agent_id, kind, priority, status, payload, error, attempts, max_attempts, run_after, \
             created_at) {} SELECT {agent_id}, 'message', 5, 'failed', '{{\"prompt\":\"p\"}}', 'seeded failure', 3, 3, \
             {t}, {t} - i FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    }

    // --- Workflows, Webhooks, Skills, Bots & connectors, Accounts.

    /// `count` enabled workflows of `agent_id`, `Bulk workflow N`, every hour,
    /// the N-th next due N minutes from now.
    pub async fn workflows(app: &TestApp, agent_id: i64, count: i64) {
        let pool = app.db.pool().await;
        let t = now();
        let sql = format!(
            "INSERT INTO workflows (name, agent_id, schedule, prompt, next_run_at, created_at, updated_at) {} \
             SELECT 'Bulk workflow ' || i, {agent_id}, 'every 1 h', 'bulk prompt ' || i, {t} + i * 60000, {t}, {t} FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// `count` webhooks of `agent_id` at `/webhook/bulk-N`, each with the
    /// secret `bulk-secret-N-` followed by 16 `x` (tests look for it).
    pub async fn webhooks(app: &TestApp, agent_id: i64, count: i64) {
        let pool = app.db.pool().await;
        let t = now();
        let sql = format!(
            "INSERT INTO webhooks (name, path, agent_id, secret, created_at, updated_at) {} \
             SELECT 'Bulk webhook ' || i, 'bulk-' || i, {agent_id}, 'bulk-secret-' || i || '-xxxxxxxxxxxxxxxx', {t}, {t} \
             FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// `count` community skills `bulk-skill-M`, M = 1 000 000 + N (so name order is number order).
    pub async fn skills(app: &TestApp, count: i64) {
        let pool = app.db.pool().await;
        let t = now();
        let sql = format!(
            "INSERT INTO skills (name, display_name, content, created_at, updated_at) {} \
             SELECT 'bulk-skill-' || (1000000 + i), 'Bulk skill ' || i, 'do thing ' || i, {t}, {t} \
             FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// `count` telegram bots `Bulk bot N` with token variable `BULK_TOKEN_N`, in `error`
    /// with the last error `seeded error N`; returns the first one's id.
    pub async fn bots(app: &TestApp, count: i64) -> i64 {
        let pool = app.db.pool().await;
        let t = now();
        let sql = format!(
            "INSERT INTO bots (name, platform, token, status, last_error, created_at, updated_at) {} \
             SELECT 'Bulk bot ' || i, 'telegram', 'BULK_TOKEN_' || i, 'error', 'seeded error ' || i, {t}, {t} FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        let first: i64 =
            sqlx::query_scalar("SELECT MIN(id) FROM bots WHERE name LIKE 'Bulk bot %'").fetch_one(&pool).await.unwrap();
        pool.close().await;
        first
    }

    /// `count` failed deliveries of `bot_id` (`failed reply N`, error `refused N`).
    pub async fn failed_deliveries(app: &TestApp, bot_id: i64, count: i64) {
        let pool = app.db.pool().await;
        let t = now();
        let sql = format!(
            "INSERT INTO deliveries (bot_id, platform, channel_id, chunk_index, dedupe_key, content, status, attempts, \
             last_error, next_attempt_at, created_at, updated_at) {} \
             SELECT {bot_id}, 'telegram', 'chan-' || i, 0, 'seed:' || i, 'failed reply ' || i, 'failed', 5, \
             'refused ' || i, {t}, {t} - i, {t} - i FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// `count` accounts `bulk-account-N` (openai, priority N) whose key variable is `BULK_KEY_N`.
    pub async fn accounts(app: &TestApp, count: i64) {
        let pool = app.db.pool().await;
        let t = now();
        let sql = format!(
            "INSERT INTO accounts (name, provider, model, api_key_env, priority, created_at, updated_at) {} \
             SELECT 'bulk-account-' || i, 'openai', 'gpt-bulk', 'BULK_KEY_' || i, i, {t}, {t} FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// `count` LLM calls of `agent_id`, spread evenly over the last 35 days
    /// (so each period holds a share): providers `anthropic` / `openai`
    /// alternating, models `claude-haiku` / `gpt-mini`, every tenth call
    /// unpriced (NULL cost), the others 0.0001 × i dollars.
    pub async fn usage(app: &TestApp, agent_id: i64, count: i64) {
        let pool = app.db.pool().await;
        let t = now();
        let step = 35 * 86_400_000 / count.max(1);
        let sql = format!(
            "INSERT INTO usage (agent_id, provider, model, input_tokens, output_tokens, cost_usd, duration_ms, \
             created_at, cache_read_tokens, cache_write_tokens) {} \
             SELECT {agent_id}, CASE WHEN i % 2 = 0 THEN 'anthropic' ELSE 'openai' END, \
             CASE WHEN i % 2 = 0 THEN 'claude-haiku' ELSE 'gpt-mini' END, 100 + i % 7, 10 + i % 3, \
             CASE WHEN i % 10 = 0 THEN NULL ELSE i * 0.0001 END, 200 + i % 1000, {t} - CAST(i AS BIGINT) * {step}, \
             0, 0 FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    }

    /// `count` log lines `seeded log N`, one a second back from now, levels
    /// debug, info, warn, error in turn (so each level holds a quarter).
    pub async fn logs(app: &TestApp, count: i64) {
        let pool = app.db.pool().await;
        let t = now();
        let sql = format!(
            "INSERT INTO logs (level, level_num, service, target, msg, fields, created_at) {} \
             SELECT CASE i % 4 WHEN 0 THEN 'debug' WHEN 1 THEN 'info' WHEN 2 THEN 'warn' ELSE 'error' END, \
             i % 4 + 1, 'gateway', 'seed', 'seeded log ' || i, '{{}}', {t} - i * 1000 FROM n",
            counter(count)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

/// The real-browser scenarios: Node + playwright-core from `tests/browser/`
/// (installed by `scripts/test.sh`), Chromium at `CHROMIUM` or `/usr/bin/chromium`.
pub mod browser {
    use std::path::PathBuf;
    use std::time::Duration;

    use serde_json::Value;

    use crate::TestApp;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
    }

    fn chromium() -> String {
        std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
    }

    /// Runs `scenario` (logging in with `password`) with `env` added; returns
    /// the JSON facts it printed last. A missing browser or package fails the
    /// test with what to run, never passes it.
    pub async fn run_scenario(app: &TestApp, scenario: &str, password: &str, env: &[(&str, String)]) -> Value {
        assert!(
            std::path::Path::new(&chromium()).exists(),
            "no Chromium at {}: run scripts/test.sh (it installs Debian's chromium and chromium-driver), \
             or point CHROMIUM at a browser",
            chromium()
        );
        assert!(
            dir().join("node_modules/playwright-core").exists(),
            "playwright-core is not installed: run scripts/test.sh, or `npm ci` in {}",
            dir().display()
        );
        let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg("scenarios.mjs")
            .arg(scenario)
            .current_dir(dir())
            .env("BASE_URL", &app.base)
            .env("PASSWORD", password)
            .env("CHROMIUM", chromium())
            .env("SCREENSHOTS", screenshots)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let run = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await;
        let out = run.unwrap_or_else(|_| panic!("scenario {scenario} did not finish in 120 s")).expect("run node");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "scenario {scenario} failed:\n{stderr}\n{stdout}");
        let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no result: {stdout}"));
        serde_json::from_str(line).unwrap()
    }
}
