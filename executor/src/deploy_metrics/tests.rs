use super::*;

fn event(
    command: &str,
    release: &str,
    outcome: &str,
    started: &str,
    finished: &str,
    total: f64,
) -> DeployEvent {
    DeployEvent {
        command: command.into(),
        release: release.into(),
        namespace: "shop".into(),
        revision: Some(1),
        outcome: outcome.into(),
        started: started.into(),
        finished: finished.into(),
        failure_detected: None,
        rollback_complete: None,
        rolled_back_to: None,
        failure: None,
        durations: [("total".to_string(), total)].into_iter().collect(),
    }
}

/// A scripted history: two good deploys, one rolled back automatically (restored after 120 s),
/// one failed and restored by a manual rollback an hour later, a blocked apply, another
/// release, and a failure never restored.
fn history() -> Vec<DeployEvent> {
    let mut rolled_back = event(
        "apply",
        "api",
        "rolled-back",
        "2026-01-02T00:00:00Z",
        "2026-01-02T00:03:00Z",
        180.0,
    );
    rolled_back.failure_detected = Some("2026-01-02T00:01:00Z".into());
    rolled_back.rollback_complete = Some("2026-01-02T00:03:00Z".into());
    let mut failed = event(
        "apply",
        "api",
        "failed",
        "2026-01-03T00:00:00Z",
        "2026-01-03T00:05:00Z",
        300.0,
    );
    failed.failure_detected = Some("2026-01-03T00:02:00Z".into());
    let mut never = event(
        "apply",
        "api",
        "failed",
        "2026-01-06T00:00:00Z",
        "2026-01-06T00:05:00Z",
        300.0,
    );
    never.failure_detected = Some("2026-01-06T00:02:00Z".into());
    vec![
        // Out of order on purpose: the log is sorted by start.
        event(
            "apply",
            "api",
            "deployed",
            "2026-01-04T00:00:00Z",
            "2026-01-04T00:02:00Z",
            120.0,
        ),
        event(
            "apply",
            "api",
            "deployed",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:01:00Z",
            60.0,
        ),
        rolled_back,
        failed,
        event(
            "rollback",
            "api",
            "deployed",
            "2026-01-03T01:00:00Z",
            "2026-01-03T01:02:00Z",
            120.0,
        ),
        event(
            "apply",
            "api",
            "blocked",
            "2026-01-05T00:00:00Z",
            "2026-01-05T00:00:01Z",
            1.0,
        ),
        event(
            "apply",
            "web",
            "deployed",
            "2026-01-05T00:00:00Z",
            "2026-01-05T00:00:30Z",
            30.0,
        ),
        never,
    ]
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

#[test]
fn delivery_metrics_of_one_release() {
    let s = summarize(&history(), Some("api"), None, at("2026-01-11T00:00:00Z"));
    assert_eq!(
        (s.changes, s.deployed, s.rolled_back, s.failed),
        (5, 2, 1, 2)
    );
    assert_eq!(s.days, 10.0);
    assert!((s.deployment_frequency_per_day - 0.2).abs() < 1e-9);
    assert!((s.change_failure_rate - 0.6).abs() < 1e-9);
    // (120 s + 3600 s) / 2
    assert_eq!(s.mean_time_to_restore_seconds, Some(1860.0));
    assert_eq!(s.unrestored, 1);
    assert_eq!(s.deploy_duration_p50_seconds, Some(60.0));
    assert_eq!(s.deploy_duration_p95_seconds, Some(120.0));
    assert_eq!(s.from, "2026-01-01T00:00:00Z");
}

#[test]
fn delivery_metrics_of_all_releases_and_a_window() {
    let now = at("2026-01-11T00:00:00Z");
    let all = summarize(&history(), None, None, now);
    assert_eq!((all.changes, all.deployed), (6, 3));
    assert!((all.change_failure_rate - 0.5).abs() < 1e-9);
    assert_eq!(all.deploy_duration_p50_seconds, Some(60.0));
    assert_eq!(all.deploy_duration_p95_seconds, Some(120.0));
    let window = summarize(
        &history(),
        Some("api"),
        Some(at("2026-01-03T00:00:00Z")),
        now,
    );
    assert_eq!((window.changes, window.deployed, window.failed), (3, 1, 2));
    assert_eq!(window.days, 8.0);
    assert!((window.deployment_frequency_per_day - 0.125).abs() < 1e-9);
    assert_eq!(window.mean_time_to_restore_seconds, Some(3600.0));
    assert_eq!(window.unrestored, 1);
    let empty = summarize(&[], None, None, now);
    assert_eq!(empty.change_failure_rate, 0.0);
    assert_eq!(empty.mean_time_to_restore_seconds, None);
    assert_eq!(empty.deploy_duration_p50_seconds, None);
    assert!(human(&empty, None).contains("mean time to restore:   -"));
    assert!(human(&window, Some("api")).contains("change failure rate:    66.7%"));
}

#[test]
fn exposition_is_prometheus_text() {
    let mut e = event(
        "apply",
        "api",
        "rolled-back",
        "2026-01-02T00:00:00Z",
        "2026-01-02T00:03:00Z",
        180.0,
    );
    e.release = "a\"b".into();
    e.durations.insert("rollout".into(), 42.5);
    let text = exposition(&e);
    assert!(text.contains("# TYPE executor_release_success gauge\nexecutor_release_success{release=\"a\\\"b\",namespace=\"shop\"} 0\n"), "{text}");
    assert!(
        text.contains("executor_release_rolled_back{release=\"a\\\"b\",namespace=\"shop\"} 1\n")
    );
    assert!(text.contains("executor_release_duration_seconds{release=\"a\\\"b\",namespace=\"shop\",phase=\"rollout\"} 42.5\n"));
    assert!(text.contains("executor_release_info{release=\"a\\\"b\",namespace=\"shop\",command=\"apply\",outcome=\"rolled-back\",revision=\"1\"} 1\n"));
    assert!(text.contains("executor_release_timestamp_seconds{release=\"a\\\"b\",namespace=\"shop\"} 1767312180.0\n"), "{text}");
    assert!(
        text.contains(
            "# HELP executor_release_success 1 if the last release was deployed, 0 otherwise.\n"
        ),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    // For the Pushgateway, whose grouping key holds them: no release and namespace labels.
    let pushed = encode_metrics(&e, false);
    assert!(
        pushed.contains("\nexecutor_release_success{} 0\n"),
        "{pushed}"
    );
    assert!(
        pushed.contains("executor_release_duration_seconds{phase=\"rollout\"} 42.5\n"),
        "{pushed}"
    );
    assert!(!pushed.contains("release=\""), "{pushed}");
}

#[test]
fn log_round_trip_and_bad_lines_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deploys.jsonl");
    for e in history() {
        append_log(&path, &e).expect("append");
    }
    assert_eq!(read_log(&path).expect("reads"), history());
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("\nnot json\n");
    std::fs::write(&path, text).expect("write");
    let err = read_log(&path).unwrap_err().to_string();
    assert!(
        err.contains("deploys.jsonl:10: not a deploy log entry"),
        "{err}"
    );
    assert!(read_log(&dir.path().join("missing"))
        .unwrap_err()
        .to_string()
        .contains("cannot read"));
}

#[test]
fn record_writes_the_log_and_the_textfile_and_reports_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut report = Report::new("apply", "api", "shop");
    report.outcome = Outcome::Deployed;
    report.revision = Some(4);
    report.durations.insert("total".into(), 12.0);
    report
        .timeline
        .insert("started".into(), "2026-01-01T00:00:00Z".into());
    report
        .timeline
        .insert("finished".into(), "2026-01-01T00:00:12Z".into());
    let args = RecordArgs {
        deploy_log: Some(dir.path().join("log.jsonl")),
        metrics_file: Some(dir.path().join("api.prom")),
        pushgateway: None,
    };
    assert!(record(&args, &report).is_empty());
    let logged = read_log(&dir.path().join("log.jsonl")).expect("log");
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (logged[0].outcome.as_str(), logged[0].revision),
        ("deployed", Some(4))
    );
    let prom = std::fs::read_to_string(dir.path().join("api.prom")).expect("textfile");
    assert!(prom.contains("executor_release_success{release=\"api\",namespace=\"shop\"} 1"));
    // Only the log and the textfile: no temporary file is left beside them.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["api.prom", "log.jsonl"]);
    let bad = RecordArgs {
        deploy_log: Some(dir.path().join("no/such/dir/log")),
        metrics_file: Some(dir.path().join("no/such/dir/m.prom")),
        pushgateway: Some("http://127.0.0.1:1".into()),
    };
    let problems = record(&bad, &report);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[2].starts_with("cannot push metrics to http://127.0.0.1:1"));
}
