use super::*;

#[derive(Default, Clone)]
pub struct Outcome {
    pub scenario: String,
    pub load: String,
    pub faults: String,
    pub sent: i64,
    pub completed: i64,
    pub failed: i64,
    pub stored: i64,
    pub lost: i64,
    pub duplicated: i64,
    pub non_final: i64,
    pub notes: Vec<String>,
    pub ok: bool,
    pub skipped: bool,
}

impl Outcome {
    pub fn print_json(&self) {
        println!(
            "{}",
            json!({"scenario": self.scenario, "load": self.load, "faults": self.faults, "sent": self.sent,
                "completed": self.completed, "failed": self.failed, "stored": self.stored, "lost": self.lost,
                "duplicated": self.duplicated, "nonFinal": self.non_final,
                "outcome": if self.skipped { "skipped" } else if self.ok { "pass" } else { "FAIL" },
                "notes": self.notes})
        );
    }
}

/// id, status, error, conversation, replies of the job, assistant messages of its conversation, reply text.
pub type JobFacts = (i64, String, String, Option<String>, i64, i64, Option<String>);

/// Counts what the database holds for the acknowledged requests (and for
/// every other job of the scenario's fresh database).
pub async fn account(c: &Cluster, o: &mut Outcome, sent: &[(i64, String)], failures_allowed: bool) {
    o.non_final = c.count("SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'running')").await;
    let rows: Vec<JobFacts> = sqlx::query_as(
        "SELECT j.id, j.status, COALESCE(j.error, ''), j.conversation_id, \
         (SELECT COUNT(*) FROM messages m WHERE m.job_id = j.id), \
         (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = j.conversation_id AND m.role = 'assistant'), \
         (SELECT m.content FROM messages m WHERE m.job_id = j.id ORDER BY m.id LIMIT 1) FROM jobs j",
    )
    .fetch_all(&c.pool)
    .await
    .unwrap();
    let by_id: std::collections::HashMap<i64, _> = rows.iter().map(|r| (r.0, r)).collect();
    o.sent = sent.len() as i64;
    let (mut missing, mut no_reply, mut wrong, mut silent_fail) = (0, 0, 0, 0);
    for (id, text) in sent {
        let Some(r) = by_id.get(id) else {
            missing += 1;
            continue;
        };
        match r.1.as_str() {
            "completed" => {
                o.completed += 1;
                if r.4 == 0 {
                    no_reply += 1;
                } else {
                    o.stored += 1;
                    if r.6.as_deref() != Some(&expected_reply(text)) {
                        wrong += 1;
                    }
                }
            }
            "failed" => {
                o.failed += 1;
                if r.2.trim().is_empty() {
                    silent_fail += 1;
                }
            }
            _ => {}
        }
    }
    // Duplicates: per job (the unique index should make this impossible) and
    // per user message (each request has its own conversation).
    for r in &rows {
        o.duplicated += (r.4 - 1).max(0);
        if r.3.is_some() {
            o.duplicated += (r.5 - 1).max(0);
        }
    }
    o.lost = missing + no_reply + wrong + silent_fail + o.non_final;
    let errors: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT LEFT(error, 80), COUNT(*), MIN(attempts), MIN(max_attempts) FROM jobs WHERE status = 'failed' \
         GROUP BY LEFT(error, 80) ORDER BY 2 DESC LIMIT 5",
    )
    .fetch_all(&c.pool)
    .await
    .unwrap_or_default();
    for (e, n, attempts, max) in errors {
        o.notes.push(format!("failed ×{n} (attempts ≥ {attempts} of {max}): {e}"));
    }
    let rerun = c.count("SELECT COUNT(*) FROM jobs WHERE attempts > 1").await;
    o.notes.push(format!("jobs that ran more than once (recovered through leases or retries): {rerun}"));
    for (n, what) in [
        (missing, "acknowledged but not in the database"),
        (no_reply, "completed without a stored reply"),
        (wrong, "reply does not echo its request"),
        (silent_fail, "failed without an error"),
    ] {
        if n > 0 {
            o.notes.push(format!("{n} {what}"));
        }
    }
    if o.failed > 0 && !failures_allowed {
        o.notes.push(format!("{} failed although the provider was healthy", o.failed));
    }
    o.ok = o.lost == 0 && o.duplicated == 0 && o.non_final == 0 && (failures_allowed || o.failed == 0);
}
