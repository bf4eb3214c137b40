//! Email bots end to end (issue #22), against a real IMAP server (a private
//! Dovecot, mail delivered into its Maildir) and a real SMTP receiver
//! (aiosmtpd, AUTH required), with a real worker and the loopback LLM, on
//! both databases: threading headers, what the agent is given, IDLE, loops
//! avoided, duplicates, retries, restarts, a rebuilt mailbox, a wrong password.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use std::time::{Duration, Instant};

use arvis_testkit::mail::{Dovecot, Received, SmtpReceiver, TestCa};
use arvis_testkit::{MockLlm, MockReply, TestApp, both_backends};
use serde_json::{Value, json};

const USER: &str = "bot@example.test";
const PASSWORD: &str = "Imap-Secret-pw-4711";
/// Bots made by the tests name this variable (`EMAIL_PASSWORD` itself would seed one).
const PASSWORD_VAR: &str = "EMAIL_PASSWORD_1";
const REPLY_WITHIN: Duration = Duration::from_secs(20);

struct Mail {
    imap: Dovecot,
    smtp: SmtpReceiver,
}

fn servers() -> Mail {
    Mail { imap: Dovecot::start(USER, PASSWORD), smtp: SmtpReceiver::start(USER, PASSWORD) }
}

fn builder(backend: arvis_testkit::Backend, mock: &MockLlm, mail: &Mail) -> arvis_testkit::TestAppBuilder {
    TestApp::builder(backend)
        .with_worker()
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
        .env("EMAIL_IMAP_HOST", "127.0.0.1")
        .env("EMAIL_IMAP_PORT", &mail.imap.port.to_string())
        .env("EMAIL_SMTP_HOST", "127.0.0.1")
        .env("EMAIL_SMTP_PORT", &mail.smtp.port.to_string())
        .env("EMAIL_USER", USER)
        .env("EMAIL_FROM", &format!("Arvis <{USER}>"))
        .env("EMAIL_TLS", "none")
        .env(PASSWORD_VAR, PASSWORD)
        .env("BOT_LEASE_MS", "2000")
}

async fn create_bot(app: &TestApp, agent: i64, token_var: &str) -> i64 {
    let (status, body) = app
        .post("/api/bots", json!({"name": "mail", "platform": "email", "token": token_var, "defaultAgentId": agent}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

/// A plain-text mail to the bot.
fn mail(from: &str, id: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\nTo: {USER}\nSubject: {subject}\nMessage-ID: <{id}>\nDate: Tue, 1 Dec 2026 10:00:00 +0000\n\
         MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
    )
}

/// The last user message of every LLM request, in order.
fn prompts(mock: &MockLlm) -> Vec<String> {
    mock.requests()
        .iter()
        .map(|r| {
            let msgs = r.body["messages"].as_array().unwrap();
            msgs.iter().rev().find(|m| m["role"] == "user").unwrap()["content"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

fn to(r: &Received) -> String {
    r.rcpt_tos.join(",")
}

async fn wait_deliveries(app: &TestApp, status: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + REPLY_WITHIN;
    loop {
        let (code, d) = app.get(&format!("/api/deliveries?status={status}")).await;
        assert_eq!(code, 200, "{d}");
        let d = d.as_array().unwrap().clone();
        if d.len() >= n {
            return d;
        }
        assert!(Instant::now() < deadline, "{} of {n} {status} deliveries: {d:?}", d.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_backends!(a_mail_is_answered_in_its_thread_from_its_own_words, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("Yes: the Analytical Engine can."));
    let mail_servers = servers();
    let app = builder(backend, &mock, &mail_servers).with_bridge().start().await;
    let (imap, smtp) = (&mail_servers.imap, &mail_servers.smtp);
    let id = create_bot(&app, app.helper_agent().await, PASSWORD_VAR).await;
    app.wait_bot_status(id, "running", Duration::from_secs(10)).await;
    // Let the connector settle into IDLE: the mail below is then found by
    // the server's notice, not by the first look at the inbox.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let sent_at = Instant::now();
    imap.deliver(&format!(
        "From: Ada Lovelace <Ada@Example.test>\nTo: {USER}\nSubject: Engine question\n\
         Message-ID: <q1@example.test>\nReferences: <q0@example.test>\nIn-Reply-To: <q0@example.test>\n\
         Content-Type: text/plain; charset=utf-8\n\n\
         Can it compute Bernoulli numbers?\n\n\
         On Mon, 30 Nov 2026 at 09:00, Arvis <{USER}> wrote:\n> Ask me anything.\n> >> older history\n"
    ));
    let got = smtp.wait_received(1, REPLY_WITHIN).await;
    let latency = sent_at.elapsed();
    let r = &got[0];
    assert_eq!(to(r), "ada@example.test", "the sender, lowercased");
    assert_eq!(r.auth_user.as_deref(), Some(USER), "submitted with the account's login");
    assert_eq!(r.subject().as_deref(), Some("Re: Engine question"));
    assert_eq!(r.header("In-Reply-To").as_deref(), Some("<q1@example.test>"));
    assert_eq!(r.header("References").as_deref(), Some("<q0@example.test> <q1@example.test>"));
    assert_eq!(r.header("Auto-Submitted").as_deref(), Some("auto-replied"));
    assert!(r.header("From").unwrap().contains(USER), "{:?}", r.header("From"));
    assert!(r.header("Message-ID").unwrap().starts_with("<arvis."), "{:?}", r.header("Message-ID"));
    assert_eq!(r.text(), "Yes: the Analytical Engine can.");
    // The agent got the subject and the new words only, not the quoted history.
    let prompt = mock.last_user_prompt();
    assert!(prompt.contains("Engine question") && prompt.contains("Bernoulli numbers"), "{prompt}");
    assert!(!prompt.contains("Ask me anything") && !prompt.contains("wrote:"), "{prompt}");
    assert!(!prompt.contains("older history"), "{prompt}");
    // IDLE: the server's notice, not the 30 s poll, brought the mail in.
    assert!(latency < Duration::from_secs(10), "answered in {latency:?}: IDLE was not used");

    // An HTML-only mail is answered from its text.
    imap.deliver(&format!(
        "From: grace@example.test\nTo: {USER}\nSubject: Compilers\nMessage-ID: <h1@example.test>\n\
         MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n\
         <html><body><p>What is a <b>compiler</b>?</p><p>Thanks, Grace</p></body></html>\n"
    ));
    let got = smtp.wait_received(2, REPLY_WITHIN).await;
    assert_eq!(to(&got[1]), "grace@example.test");
    assert_eq!(got[1].subject().as_deref(), Some("Re: Compilers"));
    let prompt = mock.last_user_prompt();
    assert!(prompt.contains("What is a compiler?"), "{prompt}");
    assert!(!prompt.contains('<'), "no markup reaches the agent: {prompt}");

    // Nothing is answered that could start a loop: an auto-reply, list mail,
    // the bot's own mail. A human's mail after them still is.
    let vacation = mail("ada@example.test", "auto1@example.test", "Out of office", "I am away.")
        .replace("Subject:", "Auto-Submitted: auto-replied\nSubject:");
    imap.deliver(&vacation);
    let list = mail("news@example.test", "list1@example.test", "Digest", "News.")
        .replace("Subject:", "Precedence: list\nSubject:");
    imap.deliver(&list);
    imap.deliver(&mail(USER, "own1@example.test", "Re: Engine question", "My own reply"));
    imap.deliver(&mail("grace@example.test", "h2@example.test", "Again", "One more thing."));
    let got = smtp.wait_received(3, REPLY_WITHIN).await;
    assert_eq!(to(&got[2]), "grace@example.test");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.received().len(), 3, "the auto-reply, the list mail and the own mail got no answer");
    assert_eq!(mock.request_count(), 3, "{:?}", prompts(&mock));

    // The conversation is a DM on the sender's address; the password shows nowhere.
    let (_, bots) = app.get("/api/bots").await;
    let (_, deliveries) = app.get("/api/deliveries").await;
    assert!(!bots.to_string().contains(PASSWORD) && !deliveries.to_string().contains(PASSWORD));
    let (_, logs) = app.get("/api/logs?limit=500").await;
    assert!(!logs.to_string().contains(PASSWORD), "the password is in the logs");
    app.stop().await;
});

both_backends!(one_reply_per_message_id_and_a_451_is_retried_once_delivered, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("Answered once."));
    let mail_servers = servers();
    let app = builder(backend, &mock, &mail_servers).with_bridge().start().await;
    let (imap, smtp) = (&mail_servers.imap, &mail_servers.smtp);
    let id = create_bot(&app, app.helper_agent().await, PASSWORD_VAR).await;
    app.wait_bot_status(id, "running", Duration::from_secs(10)).await;

    // The receiver refuses the first attempt with 451: the reply goes out on
    // a later attempt, once.
    smtp.fail_next(451, 1);
    let m = mail("ada@example.test", "dup1@example.test", "Twice", "Did you get this?");
    imap.deliver(&m);
    let got = smtp.wait_received(1, REPLY_WITHIN).await;
    assert_eq!(got[0].header("In-Reply-To").as_deref(), Some("<dup1@example.test>"));
    let sent = wait_deliveries(&app, "sent", 1).await;
    assert_eq!(sent[0]["attempts"], 2, "{}", sent[0]);
    assert!(sent[0]["lastError"].as_str().unwrap().contains("451"), "{}", sent[0]);
    assert_eq!(smtp.attempts(), 2);

    // The same message delivered again (a second copy in the mailbox) is not answered again.
    imap.deliver(&m);
    imap.deliver(&mail("ada@example.test", "dup2@example.test", "Then", "And this one?"));
    let got = smtp.wait_received(2, REPLY_WITHIN).await;
    assert_eq!(got[1].header("In-Reply-To").as_deref(), Some("<dup2@example.test>"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.received().len(), 2, "one reply per Message-ID");
    assert_eq!(mock.request_count(), 2);

    // A 5xx is permanent: failed at once, with the server's text.
    smtp.fail_next(554, 1);
    imap.deliver(&mail("ada@example.test", "rej1@example.test", "Refused", "Will this bounce?"));
    let failed = wait_deliveries(&app, "failed", 1).await;
    assert_eq!(failed[0]["attempts"], 1, "{}", failed[0]);
    let why = failed[0]["lastError"].as_str().unwrap();
    assert!(why.contains("554") && why.contains("Refused by the test receiver"), "{why}");
    assert!(!why.contains(PASSWORD));
    app.stop().await;
});

both_backends!(a_restart_answers_new_mail_once_and_old_mail_never, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("Here I am."));
    let mail_servers = servers();
    let app = builder(backend, &mock, &mail_servers).start().await;
    let (imap, smtp) = (&mail_servers.imap, &mail_servers.smtp);
    // Mail that was in the inbox before the bot existed is not answered.
    imap.deliver(&mail("old@example.test", "old1@example.test", "Ancient", "From last year."));
    // INTERNALDATE has whole seconds: the old mail is a second older than what follows.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let id = create_bot(&app, app.helper_agent().await, PASSWORD_VAR).await;
    let first = app.spawn_bridge().await;
    app.wait_bot_status(id, "running", Duration::from_secs(10)).await;
    imap.deliver(&mail("ada@example.test", "r1@example.test", "First", "Hello?"));
    smtp.wait_received(1, REPLY_WITHIN).await;
    app.wait_sent_deliveries(1).await;
    first.stop().await;
    assert_eq!(app.bot(id).await["status"], "stopped");

    // While no bridge runs, a mail arrives; it is answered after the restart,
    // and nothing before it is answered again.
    imap.deliver(&mail("ada@example.test", "r2@example.test", "Second", "Still there?"));
    let second = app.spawn_bridge().await;
    let got = smtp.wait_received(2, REPLY_WITHIN).await;
    assert_eq!(got[1].header("In-Reply-To").as_deref(), Some("<r2@example.test>"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.received().len(), 2, "no duplicate, no old mail");
    assert_eq!(mock.request_count(), 2);
    assert!(prompts(&mock).iter().all(|p| !p.contains("last year")), "{:?}", prompts(&mock));
    second.stop().await;

    // The mailbox is rebuilt (a new UIDVALIDITY): the mail that came since
    // the last look is answered; what was answered before is not, again.
    imap.reset_uids();
    imap.deliver(&mail("ada@example.test", "r3@example.test", "Third", "After the move."));
    let third = app.spawn_bridge().await;
    let got = smtp.wait_received(3, REPLY_WITHIN).await;
    assert_eq!(got[2].header("In-Reply-To").as_deref(), Some("<r3@example.test>"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.received().len(), 3, "the old mail was not answered again: {:?}", prompts(&mock));
    assert_eq!(mock.request_count(), 3);
    third.stop().await;
    app.stop().await;
});

both_backends!(a_wrong_password_is_reported_without_the_password, |backend| async move {
    let mock = MockLlm::start().await;
    let mail_servers = servers();
    let app =
        builder(backend, &mock, &mail_servers).env("EMAIL_PASSWORD_2", "Wrong-pw-0815").with_bridge().start().await;
    let id = create_bot(&app, app.helper_agent().await, "EMAIL_PASSWORD_2").await;
    let b = app.wait_bot_status(id, "error", Duration::from_secs(15)).await;
    let why = b["lastError"].as_str().unwrap();
    assert!(why.contains("login") && why.contains("refused"), "{why}");
    assert!(why.contains("AUTHENTICATIONFAILED") || why.contains("Authentication failed"), "{why}");
    assert!(!why.contains("Wrong-pw-0815") && !b.to_string().contains("Wrong-pw-0815"), "{b}");
    let (_, logs) = app.get("/api/logs?limit=500").await;
    assert!(!logs.to_string().contains("Wrong-pw-0815"), "the password is in the logs");
    app.stop().await;
});

both_backends!(email_is_listed_configured_and_seeded_from_the_environment, |backend| async move {
    let mock = MockLlm::start().await;
    let mail_servers = servers();
    let app = builder(backend, &mock, &mail_servers).env("EMAIL_PASSWORD", PASSWORD).with_bridge().start().await;
    let (status, connectors) = app.get("/api/connectors").await;
    assert_eq!(status, 200);
    let email = connectors.as_array().unwrap().iter().find(|c| c["platform"] == "email").unwrap().clone();
    assert_eq!(email["configured"], true, "{email}");
    let vars: Vec<&str> = email["vars"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for v in [
        "EMAIL_IMAP_HOST",
        "EMAIL_IMAP_PORT",
        "EMAIL_SMTP_HOST",
        "EMAIL_SMTP_PORT",
        "EMAIL_USER",
        "EMAIL_PASSWORD",
        "EMAIL_FROM",
        "EMAIL_TLS",
    ] {
        assert!(vars.contains(&v), "{v} missing: {email}");
    }
    assert!(!connectors.to_string().contains(PASSWORD));
    // Seeded once, with the password's variable as its token, and it runs.
    let deadline = Instant::now() + Duration::from_secs(5);
    let seeded = loop {
        let (_, bots) = app.get("/api/bots").await;
        if let Some(b) = bots.as_array().unwrap().iter().find(|b| b["platform"] == "email") {
            break b.clone();
        }
        assert!(Instant::now() < deadline, "no email bot was seeded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seeded["name"], "Email bot");
    assert_eq!(seeded["token"], "EMAIL_PASSWORD");
    app.wait_bot_status(seeded["id"].as_i64().unwrap(), "running", Duration::from_secs(10)).await;
    app.stop().await;
});

both_backends!(implicit_tls_and_starttls_both_work_with_a_trusted_certificate, |backend| async move {
    let ca = TestCa::new();
    // The system's certificate store, as rustls-native-certs reads it (each
    // test is its own process under nextest; no other test here uses TLS).
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca.ca) };
    let imap = Dovecot::start_tls(USER, PASSWORD, &ca);
    for (mode, imap_port) in [("tls", imap.tls_port), ("starttls", imap.port)] {
        let smtp = SmtpReceiver::start_tls(USER, PASSWORD, mode, &ca);
        let mock = MockLlm::start().await;
        mock.set_default(MockReply::text(&format!("Over {mode}.")));
        let app = TestApp::builder(backend)
            .with_worker()
            .with_bridge()
            .env("OPENAI_API_KEY", "sk-test")
            .env("OPENAI_BASE_URL", &format!("{}/v1", mock.url))
            .env("EMAIL_IMAP_HOST", "127.0.0.1")
            .env("EMAIL_IMAP_PORT", &imap_port.to_string())
            .env("EMAIL_SMTP_HOST", "127.0.0.1")
            .env("EMAIL_SMTP_PORT", &smtp.port.to_string())
            .env("EMAIL_USER", USER)
            .env("EMAIL_TLS", mode)
            .env(PASSWORD_VAR, PASSWORD)
            .start()
            .await;
        let id = create_bot(&app, app.helper_agent().await, PASSWORD_VAR).await;
        app.wait_bot_status(id, "running", Duration::from_secs(10)).await;
        imap.deliver(&mail("ada@example.test", &format!("{mode}@example.test"), "Secure?", "Is this encrypted?"));
        let got = smtp.wait_received(1, REPLY_WITHIN).await;
        assert_eq!(got[0].text(), format!("Over {mode}."), "{mode}");
        assert_eq!(got[0].auth_user.as_deref(), Some(USER), "{mode}: AUTH is only offered over TLS there");
        app.stop().await;
    }
    // Dovecot refuses a plain-text login here: both sessions were encrypted.
    let logins: Vec<String> = imap.log().lines().filter(|l| l.contains("Login: user=")).map(str::to_string).collect();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert!(logins.iter().all(|l| l.contains("TLS")), "{logins:?}");
});

both_backends!(a_server_without_idle_is_polled, |backend| async move {
    let mock = MockLlm::start().await;
    mock.set_default(MockReply::text("Polled."));
    let mail_servers =
        Mail { imap: Dovecot::start_without_idle(USER, PASSWORD), smtp: SmtpReceiver::start(USER, PASSWORD) };
    let app = builder(backend, &mock, &mail_servers).with_bridge().start().await;
    let id = create_bot(&app, app.helper_agent().await, PASSWORD_VAR).await;
    app.wait_bot_status(id, "running", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent_at = Instant::now();
    mail_servers.imap.deliver(&mail("ada@example.test", "p1@example.test", "Poll", "Anyone?"));
    // The next look is at most POLL_EVERY (30 s) away; no IDLE notice brings it sooner.
    let got = mail_servers.smtp.wait_received(1, Duration::from_secs(50)).await;
    assert_eq!(got[0].text(), "Polled.");
    assert!(sent_at.elapsed() > Duration::from_secs(3), "answered in {:?}: no IDLE here", sent_at.elapsed());
    app.stop().await;
});
