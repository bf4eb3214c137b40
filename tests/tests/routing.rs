//! The routing chain on both databases: which agent answers, at which
//! priority, and the errors that replace the original's silent drops.

#![expect(clippy::unwrap_used)] // a test fails by panicking

use arvis_shared::db::Store;
use arvis_shared::domain::agent::AgentFields;
use arvis_shared::routing::{Incoming, RouteError, RouteReason, route};
use arvis_testkit::{TestDb, both_backends};

fn fields(slug: &str, name: &str, active: bool) -> AgentFields {
    AgentFields {
        slug: slug.into(),
        name: name.into(),
        role: "specialist".into(),
        description: String::new(),
        model: "anthropic/claude-haiku-4-5-20251001".into(),
        system_prompt: String::new(),
        allowed_tools: vec![],
        temperature: 0.7,
        max_tokens: 4096,
        is_active: active,
        created_by: None,
        reasoning_effort: None,
        show_thinking: false,
        daily_budget_usd: None,
        monthly_budget_usd: None,
    }
}

fn msg<'a>(channel: &'a str, content: &'a str, agent_id: Option<i64>) -> Incoming<'a> {
    Incoming { platform: "discord", channel_id: channel, user_id: Some("u1"), content, agent_id, is_dm: false }
}

struct Setup {
    store: Store,
    conductor: i64,
    support: i64,
    paused: i64,
}

async fn setup(db: &TestDb) -> Setup {
    let store = db.store().await;
    let conductor =
        arvis_shared::bootstrap::ensure_conductor(&store, "anthropic/claude-haiku-4-5-20251001").await.unwrap().id;
    let support = store.create_agent(&fields("support", "Support Bot", true)).await.unwrap().id;
    let paused = store.create_agent(&fields("paused", "Sleepy", false)).await.unwrap().id;
    Setup { store, conductor, support, paused }
}

both_backends!(an_explicit_agent_wins_and_must_be_usable, |backend| async move {
    let db = TestDb::new(backend).await;
    let s = setup(&db).await;
    let r = route(&s.store, &msg("general", "hi", Some(s.support))).await.unwrap();
    assert_eq!((r.agent_id, r.priority, r.reason), (s.support, 5, RouteReason::Explicit));
    let r = route(&s.store, &msg("general", "hi", Some(s.conductor))).await.unwrap();
    assert_eq!((r.agent_id, r.priority, r.is_conductor), (s.conductor, 3, true));
    let e = route(&s.store, &msg("general", "hi", Some(9999))).await.unwrap_err();
    assert!(matches!(e, RouteError::UnknownAgent(9999)), "{e}");
    let e = route(&s.store, &msg("general", "hi", Some(s.paused))).await.unwrap_err();
    assert!(matches!(e, RouteError::InactiveAgent { .. }), "{e}");
    assert!(e.to_string().contains("Sleepy"));
});

both_backends!(a_channel_binding_routes_when_its_agent_is_active, |backend| async move {
    let db = TestDb::new(backend).await;
    let s = setup(&db).await;
    s.store.bind_channel("discord", "123", s.support, "full").await.unwrap();
    let r = route(&s.store, &msg("123", "@Sleepy hi", None)).await.unwrap();
    assert_eq!((r.agent_id, r.reason), (s.support, RouteReason::Binding));
    // Another platform's channel of the same id is not bound.
    let other = Incoming { platform: "telegram", ..msg("123", "hi", None) };
    assert_eq!(route(&s.store, &other).await.unwrap().agent_id, s.conductor);
    // A binding to a paused agent is skipped: the chain goes on.
    s.store.bind_channel("discord", "456", s.paused, "full").await.unwrap();
    let r = route(&s.store, &msg("456", "hello", None)).await.unwrap();
    assert_eq!((r.agent_id, r.reason), (s.conductor, RouteReason::Fallback));
    // A read-only binding refuses with a reason instead of dropping.
    s.store.bind_channel("discord", "789", s.support, "read_only").await.unwrap();
    let e = route(&s.store, &msg("789", "hello", None)).await.unwrap_err();
    assert!(matches!(e, RouteError::NotPermitted { .. }), "{e}");
    // Rebinding replaces the binding.
    s.store.bind_channel("discord", "789", s.support, "full").await.unwrap();
    assert_eq!(route(&s.store, &msg("789", "hello", None)).await.unwrap().agent_id, s.support);
    assert!(s.store.bind_channel("discord", "x", 9999, "full").await.is_err());
});

both_backends!(mentions_dashboard_channels_and_dms, |backend| async move {
    let db = TestDb::new(backend).await;
    let s = setup(&db).await;
    let r = route(&s.store, &msg("general", "hey @support bot, help", None)).await.unwrap();
    assert_eq!((r.agent_id, r.reason, r.priority), (s.support, RouteReason::Mention, 5));
    let r = route(&s.store, &msg("general", "hey @SUPPORT", None)).await.unwrap();
    assert_eq!(r.agent_id, s.support);
    // Paused agents are not mentionable; an e-mail address is no mention.
    assert_eq!(route(&s.store, &msg("general", "@sleepy wake up", None)).await.unwrap().agent_id, s.conductor);
    assert_eq!(route(&s.store, &msg("general", "mail x@support", None)).await.unwrap().agent_id, s.conductor);

    let channel = format!("dashboard-agent-{}", s.support);
    let r = route(&s.store, &msg(&channel, "hi", None)).await.unwrap();
    assert_eq!((r.agent_id, r.reason), (s.support, RouteReason::DashboardChannel));
    let channel = format!("dashboard-agent-{}", s.paused);
    assert!(matches!(route(&s.store, &msg(&channel, "hi", None)).await, Err(RouteError::InactiveAgent { .. })));

    for channel in ["web-abc", "dm-42"] {
        let r = route(&s.store, &msg(channel, "hi", None)).await.unwrap();
        assert_eq!((r.agent_id, r.reason, r.priority), (s.conductor, RouteReason::DirectMessage, 3));
    }
    let dm = Incoming { is_dm: true, ..msg("anything", "hi", None) };
    assert_eq!(route(&s.store, &dm).await.unwrap().reason, RouteReason::DirectMessage);
    let r = route(&s.store, &msg("general", "hi", None)).await.unwrap();
    assert_eq!((r.agent_id, r.reason, r.priority), (s.conductor, RouteReason::Fallback, 3));
});

both_backends!(without_a_conductor_the_sender_is_told, |backend| async move {
    let db = TestDb::new(backend).await;
    let s = setup(&db).await;
    let mut conductor = fields("conductor", "Conductor", false);
    conductor.role = "conductor".into();
    s.store.update_agent(s.conductor, &conductor).await.unwrap().unwrap();
    let e = route(&s.store, &msg("general", "anyone?", None)).await.unwrap_err();
    assert!(matches!(e, RouteError::NoConductor), "{e}");
    // Other routes still work.
    assert_eq!(route(&s.store, &msg("general", "@support?", None)).await.unwrap().agent_id, s.support);
    // An active agent with the conductor role takes over when the setting points at a paused one.
    let mut backup = fields("backup", "Backup", true);
    backup.role = "conductor".into();
    let backup = s.store.create_agent(&backup).await.unwrap().id;
    let r = route(&s.store, &msg("general", "anyone?", None)).await.unwrap();
    assert_eq!((r.agent_id, r.is_conductor, r.priority), (backup, true, 3));
});
