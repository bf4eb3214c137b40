//! Agents using tools from MCP servers (issue 23), against real MCP servers:
//! the reference server `@modelcontextprotocol/server-everything` from npm
//! (stdio and Streamable HTTP) and `tests/python/mcp_test_server.py`, written
//! with the official Python `mcp` package (echo, hang, die mid-call, huge
//! results, a tool list that grows). Both are installed by `scripts/test.sh`
//! (target/mcp-npm, target/mcp-venv); a test fails with that hint when they
//! are missing. The model is the loopback [`MockLlm`]: it makes the tool
//! calls, and its recorded requests show what was declared and what came back.

#![expect(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arvis_testkit::{Backend, MockLlm, MockReply, TestApp, both_backends};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// `node …/server-everything/dist/index.js`, installed by scripts/test.sh.
fn everything() -> String {
    let path = repo().join("target/mcp-npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh (it installs @modelcontextprotocol/server-everything from tests/mcp/package-lock.json)",
        path.display()
    );
    path.display().to_string()
}

/// The venv's python with the `mcp` package, and the test server's script.
fn python_server() -> (String, String) {
    let python = repo().join("target/mcp-venv/bin/python");
    let ok =
        std::process::Command::new(&python).args(["-c", "import mcp"]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "{} with the `mcp` package is missing: run scripts/test.sh (it creates the venv)", python.display());
    (python.display().to_string(), repo().join("tests/python/mcp_test_server.py").display().to_string())
}

async fn app_with(backend: Backend, mock: &MockLlm, extra: &[(&str, &str)]) -> TestApp {
    let mut b = TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url));
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.start().await
}

async fn agent(app: &TestApp, slug: &str, tools: Value) -> i64 {
    let (status, body) = app
        .post(
            "/api/agents",
            json!({"slug": slug, "name": slug, "model": "openai/gpt-4o-mini", "systemPrompt": "Be terse.",
                   "allowedTools": tools}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

async fn server(app: &TestApp, body: Value) -> i64 {
    let (status, created) = app.post("/api/mcp-servers", body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_i64().unwrap()
}

async fn python_stdio(app: &TestApp, name: &str, env: &[&str]) -> i64 {
    let (python, script) = python_server();
    server(app, json!({"name": name, "transport": "stdio", "command": python, "args": [script, "stdio"], "env": env}))
        .await
}

async fn chat(app: &TestApp, agent: i64, message: &str) -> Value {
    let (status, body) = app.post(&format!("/api/agents/{agent}/chat"), json!({"message": message})).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The tool names declared in an OpenAI request.
fn declared(req: &Value) -> Vec<String> {
    req["tools"]
        .as_array()
        .map(|t| t.iter().map(|t| t["function"]["name"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The last message of an OpenAI request (the tool result, after a tool round).
fn last_message(req: &Value) -> Value {
    req["messages"].as_array().unwrap().last().unwrap().clone()
}

/// Polls `/tools` until `check` holds.
async fn wait_tools(app: &TestApp, id: i64, within: Duration, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = app.get(&format!("/api/mcp-servers/{id}/tools")).await;
        assert_eq!(status, 200, "{body}");
        if check(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "gave up waiting on /tools: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tool_names(list: &Value) -> Vec<String> {
    list["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

both_backends!(mcp_servers_crud_validation_and_no_secret_values, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let (status, created) = app
        .post(
            "/api/mcp-servers",
            json!({"name": "files", "transport": "stdio", "command": "node", "args": ["server.js"],
                   "env": ["CARGO_PKG_NAME"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "files");
    assert_eq!(created["env"], json!(["CARGO_PKG_NAME"]));
    assert_eq!(created["isEnabled"], true);
    assert_eq!(created["status"], "unknown");
    // Names only: the value of the named variable is in this process, never in the API.
    assert!(!created.to_string().contains(env!("CARGO_PKG_NAME")), "{created}");

    let (status, http) = app
        .post(
            "/api/mcp-servers",
            json!({"name": "remote", "transport": "http", "url": "https://mcp.example.com/mcp",
                   "headers": {"Authorization": "REMOTE_MCP_TOKEN"}}),
        )
        .await;
    assert_eq!(status, 201, "{http}");
    assert_eq!(http["headers"], json!({"Authorization": "REMOTE_MCP_TOKEN"}));

    let (status, dup) =
        app.post("/api/mcp-servers", json!({"name": "files", "transport": "stdio", "command": "x"})).await;
    assert_eq!(status, 409, "{dup}");
    assert!(dup["error"].as_str().unwrap().contains("already exists"));

    for (bad, hint) in [
        (json!({"name": "Bad Name", "transport": "stdio", "command": "x"}), "name"),
        (json!({"name": "a/b", "transport": "stdio", "command": "x"}), "name"),
        (json!({"name": "ok", "transport": "sse", "command": "x"}), "transport"),
        (json!({"name": "ok", "transport": "stdio"}), "command"),
        (json!({"name": "ok", "transport": "http"}), "url"),
        (json!({"name": "ok", "transport": "http", "url": "ftp://x"}), "url"),
        (json!({"name": "ok", "transport": "stdio", "command": "x", "env": ["sk-live secret"]}), "NAME"),
        (
            json!({"name": "ok", "transport": "http", "url": "https://x", "headers": {"Authorization": "Bearer abc"}}),
            "NAME",
        ),
        (json!({"name": "ok", "transport": "stdio", "command": "x", "url": "https://x"}), "http"),
        (json!({"name": "ok", "transport": "stdio", "command": "x", "token": "x"}), "token"),
    ] {
        let (status, body) = app.post("/api/mcp-servers", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains(hint), "{bad}: {body}");
    }

    let (status, list) = app.get("/api/mcp-servers").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 2);

    let (status, patched) = app.patch(&format!("/api/mcp-servers/{id}"), json!({"isEnabled": false, "args": []})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((patched["isEnabled"].clone(), patched["args"].clone()), (json!(false), json!([])));
    let (status, body) = app.patch(&format!("/api/mcp-servers/{id}"), json!({"name": "remote"})).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = app.patch(&format!("/api/mcp-servers/{id}"), json!({"transport": "http"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = app.patch("/api/mcp-servers/999999", json!({"isEnabled": true})).await;
    assert_eq!(status, 404);

    let (status, tools) = app.get(&format!("/api/mcp-servers/{id}/tools")).await;
    assert_eq!(status, 200, "{tools}");
    assert_eq!((tools["status"].clone(), tools["tools"].clone()), (json!("unknown"), json!([])));
    let (status, body) = app.get("/api/mcp-servers/999999/tools").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.get("/api/mcp-servers/abc/tools").await;
    assert_eq!(status, 400, "{body}");

    let (status, _) = app.delete(&format!("/api/mcp-servers/{id}")).await;
    assert_eq!(status, 200);
    let (status, _) = app.delete(&format!("/api/mcp-servers/{id}")).await;
    assert_eq!(status, 404);

    // allowedTools: built-ins and the two MCP forms; anything else is a 400.
    let (status, a) = app
        .post(
            "/api/agents",
            json!({"slug": "t", "name": "t", "allowedTools": ["calculate", "mcp:files/read", "mcp:remote/*"]}),
        )
        .await;
    assert_eq!(status, 201, "{a}");
    let agent_id = a["id"].as_i64().unwrap();
    for bad in ["run_shell", "mcp:files", "mcp:Files/x", "mcp:files/", "mcp:files/a b"] {
        let (status, body) = app.patch(&format!("/api/agents/{agent_id}"), json!({"allowedTools": [bad]})).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains("allowedTools"), "{bad}: {body}");
    }
    app.stop().await;
});

// A chat whose model calls server-everything's `echo` over stdio: only the
// granted tool is declared, and its result is in the model's next request.
both_backends!(a_chat_calls_an_mcp_tool_over_stdio, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app_with(backend, &mock, &[]).await;
    let id = server(
        &app,
        json!({"name": "everything", "transport": "stdio", "command": "node", "args": [everything(), "stdio"]}),
    )
    .await;
    let a = agent(&app, "echoer", json!(["calculate", "mcp:everything/echo"])).await;
    mock.push(MockReply::tool("mcp_everything_echo", json!({"message": "hello from the model"})));
    mock.push(MockReply::text("It echoed."));
    let reply = chat(&app, a, "echo something").await;
    assert_eq!(reply["content"], "It echoed.", "{reply}");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(declared(&reqs[0].body), ["calculate", "mcp_everything_echo"]);
    let schema = &reqs[0].body["tools"][1]["function"]["parameters"];
    assert_eq!(schema["type"], "object", "{schema}");
    assert!(schema["properties"]["message"].is_object(), "the server's input schema is declared: {schema}");
    let result = last_message(&reqs[1].body);
    assert_eq!(result["role"], "tool");
    assert_eq!(result["content"], "Echo: hello from the model", "{result}");

    let tools = wait_tools(&app, id, Duration::from_secs(5), |b| b["status"] == "ready").await;
    let names = tool_names(&tools);
    assert!(names.contains(&"echo".to_string()) && names.contains(&"get-sum".to_string()), "{names:?}");
    assert!(tools["statusAt"].is_string() && tools["lastError"].is_null(), "{tools}");
    // Prometheus: the call counted by server, tool and outcome, and timed.
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("arvis_mcp_tool_calls_total")
            && l.contains("server=\"everything\"")
            && l.contains("tool=\"echo\"")
            && l.contains("outcome=\"ok\"")),
        "{metrics}"
    );
    assert!(metrics.contains("arvis_mcp_tool_call_duration_seconds"), "{metrics}");
    // The dashboard's agent editor lists what the worker recorded.
    for path in ["/agents/new".to_string(), format!("/agents/{a}")] {
        let page = app.page(&path).await;
        assert_eq!(page.status, 200);
        assert!(page.contains("<code>mcp:everything/echo</code>"), "{path}: {}", page.html);
        assert!(page.contains("<code>mcp:everything/*</code>") && page.contains("ready"), "{path}");
    }
    app.stop().await;
});

/// A free loopback port (bound and released: the server binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// server-everything in Streamable HTTP mode; killed on drop.
struct HttpEverything {
    child: std::process::Child,
    url: String,
}

impl HttpEverything {
    fn start() -> HttpEverything {
        use std::io::BufRead as _;
        let port = free_port();
        let mut child = std::process::Command::new("node")
            .args([everything(), "streamableHttp".into()])
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("node (installed by scripts/test.sh)");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on port") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20)).expect("server-everything streamableHttp did not start");
        HttpEverything { child, url: format!("http://127.0.0.1:{port}/mcp") }
    }
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

both_backends!(a_chat_calls_an_mcp_tool_over_streamable_http, |backend: Backend| async move {
    let remote = HttpEverything::start();
    let mock = MockLlm::start().await;
    let app = app_with(backend, &mock, &[("HTTP_FETCH_ALLOW_PRIVATE", "true")]).await;
    // A header's value comes from the worker's environment variable of that name.
    let id = server(
        &app,
        json!({"name": "web", "transport": "http", "url": remote.url,
                                  "headers": {"X-Arvis-Test": "CARGO_PKG_NAME"}}),
    )
    .await;
    let a = agent(&app, "adder", json!(["mcp:web/*"])).await;
    mock.push(MockReply::tool("mcp_web_get-sum", json!({"a": 2, "b": 3})));
    mock.push(MockReply::text("Five."));
    let reply = chat(&app, a, "2+3?").await;
    assert_eq!(reply["content"], "Five.", "{reply}");
    let reqs = mock.requests();
    let names = declared(&reqs[0].body);
    assert!(names.contains(&"mcp_web_get-sum".to_string()) && names.contains(&"mcp_web_echo".to_string()), "{names:?}");
    let result = last_message(&reqs[1].body);
    assert!(result["content"].as_str().unwrap().contains('5'), "{result}");
    let tools = wait_tools(&app, id, Duration::from_secs(5), |b| b["status"] == "ready").await;
    assert!(tool_names(&tools).contains(&"get-sum".to_string()));

    // A variable that is not set on the worker: status error naming it, the run goes on.
    let missing = server(
        &app,
        json!({"name": "nokey", "transport": "http", "url": remote.url,
                                       "headers": {"Authorization": "ARVIS_TEST_NOT_SET"}}),
    )
    .await;
    let b = agent(&app, "nokey", json!(["mcp:nokey/*"])).await;
    mock.push(MockReply::text("without"));
    assert_eq!(chat(&app, b, "hi").await["content"], "without");
    let tools = wait_tools(&app, missing, Duration::from_secs(5), |b| b["status"] == "error").await;
    assert!(tools["lastError"].as_str().unwrap().contains("ARVIS_TEST_NOT_SET"), "{tools}");
    app.stop().await;
});

// Without HTTP_FETCH_ALLOW_PRIVATE an HTTP server on a loopback address is refused, as http_fetch refuses it.
both_backends!(http_servers_pass_the_private_address_guard, |backend: Backend| async move {
    let remote = HttpEverything::start();
    let mock = MockLlm::start().await;
    let app = app_with(backend, &mock, &[]).await;
    let id = server(&app, json!({"name": "local", "transport": "http", "url": remote.url})).await;
    let a = agent(&app, "guarded", json!(["mcp:local/*"])).await;
    mock.push(MockReply::text("no tools"));
    let reply = chat(&app, a, "hi").await;
    assert_eq!(reply["content"], "no tools");
    assert!(declared(&mock.requests()[0].body).is_empty(), "nothing of a refused server is declared");
    let tools = wait_tools(&app, id, Duration::from_secs(5), |b| b["status"] == "error").await;
    assert!(tools["lastError"].as_str().unwrap().contains("refusing"), "{tools}");
    app.stop().await;
});

// hang → a timeout tool error; huge → cut at MCP_RESULT_MAX_BYTES; die mid-call
// → a tool error, and the restarted server answers the next call; env passes
// exactly the named variables.
both_backends!(misbehaving_tools_are_tool_errors_and_runs_complete, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app_with(backend, &mock, &[("MCP_CALL_TIMEOUT_MS", "1500"), ("MCP_RESULT_MAX_BYTES", "1000")]).await;
    let id = python_stdio(&app, "py", &["CARGO_PKG_NAME"]).await;
    let a = agent(&app, "brave", json!(["mcp:py/*"])).await;

    // hang
    mock.push(MockReply::tool("mcp_py_hang", json!({})));
    mock.push(MockReply::text("after hang"));
    let started = Instant::now();
    assert_eq!(chat(&app, a, "hang").await["content"], "after hang");
    let result = last_message(&mock.requests()[1].body);
    let text = result["content"].as_str().unwrap();
    assert!(text.starts_with("Error: ") && text.contains("1500 ms"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(12), "the timeout bounds the call");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("arvis_mcp_tool_calls_total")
            && l.contains("tool=\"hang\"")
            && l.contains("outcome=\"timeout\"")),
        "{metrics}"
    );

    // isError
    mock.push(MockReply::tool("mcp_py_fail", json!({})));
    mock.push(MockReply::text("after fail"));
    let n = mock.request_count();
    assert_eq!(chat(&app, a, "fail").await["content"], "after fail");
    let text = last_message(&mock.requests()[n + 1].body)["content"].as_str().unwrap().to_string();
    assert_eq!(text, "Error: Error executing tool fail", "the isError text, as the server wrote it");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("arvis_mcp_tool_calls_total")
            && l.contains("tool=\"fail\"")
            && l.contains("outcome=\"tool_error\"")),
        "{metrics}"
    );

    // huge
    mock.push(MockReply::tool("mcp_py_huge", json!({"size": 50_000})));
    mock.push(MockReply::text("after huge"));
    assert_eq!(chat(&app, a, "huge").await["content"], "after huge");
    let text = last_message(&mock.requests()[5].body)["content"].as_str().unwrap().to_string();
    assert!(text.len() < 1200 && text.contains("truncated: the result was 50000 bytes"), "{}", text.len());

    // env: the named variable reaches the child, the others do not.
    mock.push(MockReply::tool("mcp_py_env", json!({"name": "CARGO_PKG_NAME"})));
    mock.push(MockReply::text("env 1"));
    chat(&app, a, "env").await;
    assert_eq!(last_message(&mock.requests()[7].body)["content"], env!("CARGO_PKG_NAME"));
    mock.push(MockReply::tool("mcp_py_env", json!({"name": "CARGO_MANIFEST_DIR"})));
    mock.push(MockReply::text("env 2"));
    chat(&app, a, "env").await;
    assert_eq!(last_message(&mock.requests()[9].body)["content"], "<unset>");

    // die mid-call
    mock.push(MockReply::tool("mcp_py_pid", json!({})));
    mock.push(MockReply::text("pid"));
    chat(&app, a, "pid").await;
    let first_pid = last_message(&mock.requests()[11].body)["content"].as_str().unwrap().to_string();
    mock.push(MockReply::tool("mcp_py_die", json!({})));
    mock.push(MockReply::text("after die"));
    assert_eq!(chat(&app, a, "die").await["content"], "after die");
    let text = last_message(&mock.requests()[13].body)["content"].as_str().unwrap().to_string();
    assert!(text.starts_with("Error: "), "{text}");
    mock.push(MockReply::tool("mcp_py_echo", json!({"text": "back"})));
    mock.push(MockReply::text("after restart"));
    assert_eq!(chat(&app, a, "echo").await["content"], "after restart");
    assert_eq!(last_message(&mock.requests()[15].body)["content"], "echo: back", "the server was restarted");
    mock.push(MockReply::tool("mcp_py_pid", json!({})));
    mock.push(MockReply::text("pid"));
    chat(&app, a, "pid").await;
    let second_pid = last_message(&mock.requests()[17].body)["content"].as_str().unwrap().to_string();
    assert_ne!(first_pid, second_pid, "a new process");
    let tools = wait_tools(&app, id, Duration::from_secs(5), |b| b["status"] == "ready").await;
    assert!(tool_names(&tools).contains(&"die".to_string()));

    // Shutdown leaves no process behind.
    let pid: u32 = second_pid.parse().unwrap();
    app.stop().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true);
        if zombie {
            break;
        }
        assert!(Instant::now() < deadline, "the MCP server process {pid} outlived the worker");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
});

// notifications/tools/list_changed: the new tool shows in /tools and is declared to the model.
both_backends!(a_tool_list_change_is_picked_up, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app_with(backend, &mock, &[]).await;
    let id = python_stdio(&app, "py", &[]).await;
    let a = agent(&app, "grower", json!(["mcp:py/*"])).await;
    mock.push(MockReply::tool("mcp_py_grow", json!({})));
    mock.push(MockReply::text("grown"));
    assert_eq!(chat(&app, a, "grow").await["content"], "grown");
    assert!(!declared(&mock.requests()[0].body).contains(&"mcp_py_added".to_string()));
    assert_eq!(last_message(&mock.requests()[1].body)["content"], "grew");
    let tools = wait_tools(&app, id, Duration::from_secs(10), |b| tool_names(b).contains(&"added".to_string())).await;
    assert_eq!(tools["status"], "ready");
    mock.push(MockReply::tool("mcp_py_added", json!({})));
    mock.push(MockReply::text("used it"));
    assert_eq!(chat(&app, a, "use the new tool").await["content"], "used it");
    assert!(declared(&mock.requests()[2].body).contains(&"mcp_py_added".to_string()));
    assert_eq!(last_message(&mock.requests()[3].body)["content"], "added tool answered");
    app.stop().await;
});

// An agent without the tool in allowedTools never sees it, and a call the model makes anyway is refused.
both_backends!(an_agent_without_the_tool_never_sees_it, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app_with(backend, &mock, &[]).await;
    python_stdio(&app, "py", &[]).await;
    let a = agent(&app, "narrow", json!(["calculate", "mcp:py/echo"])).await;
    mock.push(MockReply::tool("mcp_py_pid", json!({})));
    mock.push(MockReply::text("refused"));
    assert_eq!(chat(&app, a, "try").await["content"], "refused");
    let reqs = mock.requests();
    assert_eq!(declared(&reqs[0].body), ["calculate", "mcp_py_echo"]);
    assert_eq!(last_message(&reqs[1].body)["content"], "Error: tool mcp_py_pid is not enabled for this agent");
    let none = agent(&app, "plain", json!([])).await;
    mock.push(MockReply::text("no tools"));
    chat(&app, none, "hi").await;
    assert!(declared(&mock.requests()[2].body).is_empty());
    app.stop().await;
});

both_backends!(stdio_servers_can_be_turned_off, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app_with(backend, &mock, &[("MCP_STDIO_ALLOWED", "false")]).await;
    let id = python_stdio(&app, "py", &[]).await;
    let a = agent(&app, "nostdio", json!(["mcp:py/*"])).await;
    mock.push(MockReply::text("fine without"));
    assert_eq!(chat(&app, a, "hi").await["content"], "fine without");
    assert!(declared(&mock.requests()[0].body).is_empty());
    let tools = wait_tools(&app, id, Duration::from_secs(5), |b| b["status"] == "error").await;
    assert!(tools["lastError"].as_str().unwrap().contains("MCP_STDIO_ALLOWED=false"), "{tools}");
    app.stop().await;
});

// The same MCP tool, declared and answered in each provider's wire format.
both_backends!(mcp_tools_in_every_providers_wire_format, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app_with(
        backend,
        &mock,
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test"),
            ("ANTHROPIC_BASE_URL", &mock.url),
            ("GOOGLE_API_KEY", "goog-test"),
            ("GOOGLE_BASE_URL", &mock.url),
        ],
    )
    .await;
    server(
        &app,
        json!({"name": "everything", "transport": "stdio", "command": "node", "args": [everything(), "stdio"]}),
    )
    .await;
    for (slug, model) in [("claude", "anthropic/claude-haiku-4-5-20251001"), ("gem", "google/gemini-2.0-flash")] {
        let (status, body) = app
            .post(
                "/api/agents",
                json!({"slug": slug, "name": slug, "model": model, "allowedTools": ["mcp:everything/echo"]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_i64().unwrap();
        let before = mock.request_count();
        mock.push(MockReply::tool("mcp_everything_echo", json!({"message": slug})));
        mock.push(MockReply::text("done"));
        assert_eq!(chat(&app, id, "go").await["content"], "done", "{model}");
        let reqs = mock.requests();
        let (first, second) = (&reqs[before].body, &reqs[before + 1].body);
        if slug == "claude" {
            assert_eq!(first["tools"][0]["name"], "mcp_everything_echo", "{first}");
            assert!(first["tools"][0]["input_schema"]["properties"]["message"].is_object());
            let last = second["messages"].as_array().unwrap().last().unwrap();
            assert_eq!(last["content"][0]["type"], "tool_result", "{last}");
            assert!(last["content"][0].to_string().contains("Echo: claude"), "{last}");
        } else {
            let decl = &first["tools"][0]["functionDeclarations"][0];
            assert_eq!(decl["name"], "mcp_everything_echo", "{first}");
            let contents = second["contents"].as_array().unwrap();
            let response = &contents.last().unwrap()["parts"][0]["functionResponse"];
            assert_eq!(response["name"], "mcp_everything_echo");
            assert!(response.to_string().contains("Echo: gem"), "{response}");
        }
    }
    app.stop().await;
});

// An edit reaches the worker (ConfigChanged): the old child is closed and the
// next run uses the new configuration; after a delete the tools are gone.
both_backends!(server_edits_and_deletes_reach_the_worker, |backend: Backend| async move {
    let mock = MockLlm::start().await;
    let app = app_with(backend, &mock, &[]).await;
    let id = python_stdio(&app, "py", &[]).await;
    let a = agent(&app, "editor", json!(["mcp:py/env"])).await;
    let env_call = || {
        mock.push(MockReply::tool("mcp_py_env", json!({"name": "CARGO_PKG_NAME"})));
        mock.push(MockReply::text("read"));
    };
    env_call();
    chat(&app, a, "env").await;
    assert_eq!(last_message(&mock.requests()[1].body)["content"], "<unset>");
    let (status, body) = app.patch(&format!("/api/mcp-servers/{id}"), json!({"env": ["CARGO_PKG_NAME"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "unknown", "what was learned about the old configuration is reset");
    env_call();
    chat(&app, a, "env").await;
    assert_eq!(last_message(&mock.requests()[3].body)["content"], env!("CARGO_PKG_NAME"), "the new env is used");
    wait_tools(&app, id, Duration::from_secs(5), |b| b["status"] == "ready").await;

    let (status, _) = app.delete(&format!("/api/mcp-servers/{id}")).await;
    assert_eq!(status, 200);
    mock.push(MockReply::text("nothing to call"));
    chat(&app, a, "env").await;
    assert!(declared(&mock.requests()[4].body).is_empty(), "a deleted server's tools are not declared");
    app.stop().await;
});
