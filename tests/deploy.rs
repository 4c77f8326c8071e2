//! The deployment files agree with the code: the systemd unit verifies, the Prometheus rules
//! and the daemon's own /metrics output pass promtool, and the Grafana dashboard and the rules
//! only use metrics the daemon exports. (The Dockerfile is linted by .ci/run with hadolint.)

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> String {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "{name} is not installed: run scripts/install-deps.sh");
    name.to_string()
}

/// A metrics page with every family present (histograms observed once).
fn metrics_text() -> String {
    let m = memaudit::metrics::Metrics::new();
    for s in memaudit::metrics::STAGES {
        m.stage(s).observe(0.001);
    }
    m.span_chars.observe(120.0);
    m.coverage.observe(0.3);
    m.entropy.observe(2.0);
    m.lag.with_label_values(&["llm-outputs", "0"]).set(3);
    m.dead_letters.with_label_values(&["invalid_json"]).inc();
    m.offset_gaps.with_label_values(&["llm-outputs", "0"]).inc();
    m.offset_gap_records
        .with_label_values(&["llm-outputs", "0"])
        .inc_by(3);
    m.produce_rejected
        .with_label_values(&["verdicts", "reduced"])
        .inc();
    m.commits.with_label_values(&["ok"]).inc();
    m.rebalances.with_label_values(&["assign"]).inc();
    m.index_info.with_label_values(&["abc", "1"]).set(1);
    m.http_requests
        .with_label_values(&["/v1/check", "200"])
        .inc();
    m.http_seconds
        .with_label_values(&["/v1/check"])
        .observe(0.0002);
    m.http_actions
        .with_label_values(&["/v1/check", "block", "audit"])
        .inc();
    m.model_info
        .with_label_values(&["none", "cpu", "off"])
        .set(1);
    m.render()
}

#[test]
fn systemd_unit_verifies() {
    let sa = tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    // verify needs ExecStart's binary to exist: point it at the one just built.
    let unit = std::fs::read_to_string(repo().join("systemd/memaudit.service"))
        .unwrap()
        .replace("/usr/local/bin/memaudit", env!("CARGO_BIN_EXE_memaudit"));
    let path = dir.path().join("memaudit.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(sa).arg("verify").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}

#[test]
fn prometheus_rules_and_metrics_pass_promtool() {
    let promtool = tool("promtool");
    let out = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(repo().join("config/prometheus/memaudit-rules.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics_text().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

#[test]
fn dashboard_and_rules_use_exported_metrics() {
    let text = metrics_text();
    let exported: std::collections::BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    for file in [
        "config/grafana/memaudit-dashboard.json",
        "config/prometheus/memaudit-rules.yml",
    ] {
        let body = std::fs::read_to_string(repo().join(file)).unwrap();
        let mut used = 0;
        for (i, _) in body.match_indices("memaudit_") {
            let name: String = body[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_string();
            assert!(
                exported.contains(&base),
                "{file} uses {name}, which the daemon does not export"
            );
            used += 1;
        }
        assert!(used > 5, "{file}");
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("config/grafana/memaudit-dashboard.json")).unwrap(),
    )
    .unwrap();
    assert!(dash["panels"].as_array().unwrap().len() >= 8);
}
