use super::*;

/// Every configured secret searched in every log line of every process.
pub fn secrets_in_logs(logs: &Path) -> Outcome {
    let mut hits = 0i64;
    let mut files = 0;
    let mut lines = 0i64;
    let mut stack = vec![logs.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            files += 1;
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned();
            for line in text.lines() {
                lines += 1;
                for s in SECRETS {
                    if line.contains(s) {
                        hits += 1;
                        eprintln!("SECRET LEAK in {}: {line}", p.display());
                    }
                }
            }
        }
    }
    Outcome {
        scenario: "secrets-in-logs".into(),
        load: format!("{files} log files, {lines} lines"),
        faults: format!("{} configured secrets searched", SECRETS.len()),
        lost: hits,
        ok: hits == 0 && lines > 0,
        notes: vec![format!("{hits} lines with a secret")],
        ..Default::default()
    }
}
