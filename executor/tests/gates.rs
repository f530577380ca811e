#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! Blue-green rollouts, gates and hooks against the simulator and a real Prometheus: the
//! Service switch (never onto zero ready pods), failures before and after it, manual
//! promotion, metric and smoke gates, Prometheus unreachable, hook Jobs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use simulator::Behaviour;
use support::prometheus::{free_port, Exporter, Prometheus};
use support::{api_manifests, blue_green_manifests, hook_job, image};

mod support;

use support::env::{apply, apply_binary, env, executor, write, Env};

const BLUE_GREEN: &[&str] = &["--strategy", "blue-green", "--scale-down-delay", "1s"];

fn selector_color(env: &Env) -> String {
    let s = env
        .sim
        .get("v1", "Service", "shop", "api")
        .expect("service");
    s["spec"]["selector"]["color"].as_str().unwrap().to_string()
}

fn deployment(env: &Env, name: &str) -> Option<Value> {
    env.sim.get("apps/v1", "Deployment", "shop", name)
}

fn replicas(env: &Env, name: &str) -> Option<i64> {
    deployment(env, name).map(|d| d["spec"]["replicas"].as_i64().unwrap())
}

fn image_of(env: &Env, name: &str) -> String {
    deployment(env, name).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

/// (revision, status) of every revision.
fn history(env: &Env) -> Vec<(u64, String)> {
    let run = executor(env, &["history", "-r", "api", "-n", "shop", "-o", "json"]);
    assert_eq!(run.code, 0, "{run}");
    run.json()["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Installs v1 as blue-green: `api-blue` serves.
fn install_blue(env: &Env) {
    let v1 = write(env, "v1.yaml", &blue_green_manifests(1, "blue"));
    let run = apply(env, &v1, BLUE_GREEN);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(selector_color(env), "blue");
}

/// Samples, in one consistent snapshot of the namespace at a time, which color the Service
/// selects and how many ready pods it selects.
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(String, usize)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn selected_ready_pods(objects: &std::collections::BTreeMap<String, Value>) -> (String, usize) {
    let selector = objects["Service/api"]["spec"]["selector"].clone();
    let color = selector["color"].as_str().unwrap_or("").to_string();
    let ready = objects
        .iter()
        .filter(|(k, _)| k.starts_with("Pod/"))
        .filter(|(_, p)| {
            selector
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| &p["metadata"]["labels"][k] == v)
        })
        .filter(|(_, p)| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count();
    (color, ready)
}

impl Sampler {
    fn start(env: &Env) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (sim, s, st) = (env.sim.clone(), samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let sample = selected_ready_pods(&sim.snapshot("shop"));
                let mut all = s.lock().unwrap();
                if all.last() != Some(&sample) {
                    all.push(sample);
                }
                drop(all);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        // The first sample is the state before whatever the test does next.
        while samples.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        Sampler {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// Every distinct (color, ready pods) seen; fails if the Service ever selected none.
    fn finish(mut self) -> Vec<(String, usize)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let samples = self.samples.lock().unwrap().clone();
        assert!(
            samples.iter().all(|(_, ready)| *ready > 0),
            "the Service selected zero ready pods: {samples:?}"
        );
        samples
    }

    fn colors(samples: &[(String, usize)]) -> Vec<String> {
        let mut colors: Vec<String> = Vec::new();
        for (c, _) in samples {
            if colors.last() != Some(c) {
                colors.push(c.clone());
            }
        }
        colors
    }
}

#[test]
fn blue_green_switches_the_service_and_scales_the_old_color_down() {
    let env = env(10.0);
    install_blue(&env);
    let exporter = Exporter::start(0.001);
    let prometheus = Prometheus::start(&exporter);
    let sampler = Sampler::start(&env);
    // Rendered blue again: the executor deploys the idle color, green.
    let v2 = write(&env, "v2.yaml", &blue_green_manifests(2, "blue"));
    let run = apply(
        &env,
        &v2,
        &[
            BLUE_GREEN,
            &[
                "--smoke-url",
                &exporter.url("/healthz"),
                "--prometheus",
                &prometheus.url(),
                "--metric",
                "max(test_error_ratio)",
                "--max",
                "0.005",
                "--metric-interval",
                "500ms",
                "--observe",
                "1s",
            ],
        ]
        .concat(),
    );
    let samples = sampler.finish();
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "deployed", "{run}");
    assert_eq!(selector_color(&env), "green");
    assert_eq!(image_of(&env, "api-green"), image("api", 2));
    assert_eq!(image_of(&env, "api-blue"), image("api", 1));
    assert_eq!(replicas(&env, "api-green"), Some(2));
    assert_eq!(replicas(&env, "api-blue"), Some(0), "old color scaled down");
    assert_eq!(Sampler::colors(&samples), ["blue", "green"], "{samples:?}");
    let gates = run.gates();
    assert_eq!(
        gates,
        [
            ("readiness".to_string(), "passed".to_string()),
            ("smoke".into(), "passed".into()),
            ("metric max(test_error_ratio)".into(), "passed".into()),
            ("readiness".into(), "passed".into()),
        ],
        "{run}"
    );
    assert_eq!(report["gates"][2]["value"], 0.001);
    assert!(report["gates"][2]["time"].is_string());
    assert_eq!(
        history(&env),
        [(1, "superseded".into()), (2, "deployed".into())]
    );
    let status = executor(&env, &["status", "-r", "api", "-n", "shop", "-o", "json"]).json();
    assert_eq!(
        (status["serving"].as_str(), status["paused"].is_null()),
        (Some("green"), true),
        "{status}"
    );

    // The next release goes back to blue, scaled up from 0.
    let v3 = write(&env, "v3.yaml", &blue_green_manifests(3, "blue"));
    let sampler = Sampler::start(&env);
    let run = apply(&env, &v3, BLUE_GREEN);
    let samples = sampler.finish();
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(selector_color(&env), "blue");
    assert_eq!(image_of(&env, "api-blue"), image("api", 3));
    assert_eq!(replicas(&env, "api-green"), Some(0));
    assert_eq!(Sampler::colors(&samples), ["green", "blue"]);

    // `executor rollback` to revision 2 scales green up before the Service moves to it.
    let sampler = Sampler::start(&env);
    let run = executor(&env, &["rollback", "-r", "api", "-n", "shop", "-o", "json"]);
    let samples = sampler.finish();
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["rolledBackTo"], 2);
    assert_eq!(selector_color(&env), "green");
    assert_eq!(replicas(&env, "api-green"), Some(2));
    assert_eq!(image_of(&env, "api-green"), image("api", 2));
    assert!(
        deployment(&env, "api-blue").is_none(),
        "revision 3's color removed"
    );
    assert_eq!(Sampler::colors(&samples), ["blue", "green"]);
}

#[test]
fn failed_gate_before_the_switch_leaves_traffic_untouched() {
    let env = env(10.0);
    install_blue(&env);
    let exporter = Exporter::start(0.0);
    exporter.set_status(503);
    let sampler = Sampler::start(&env);
    let v2 = write(&env, "v2.yaml", &blue_green_manifests(2, "blue"));
    let run = apply(
        &env,
        &v2,
        &[
            BLUE_GREEN,
            &[
                "--smoke-url",
                &exporter.url("/healthz"),
                "--smoke-retries",
                "1",
                "--smoke-interval",
                "100ms",
            ],
        ]
        .concat(),
    );
    let samples = sampler.finish();
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "rolled-back");
    assert_eq!(report["failure"]["reason"], "gateFailed");
    assert!(
        report["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("answered 503, expected 200"),
        "{run}"
    );
    assert_eq!(Sampler::colors(&samples), ["blue"], "traffic never moved");
    assert_eq!(selector_color(&env), "blue");
    assert!(deployment(&env, "api-green").is_none(), "new color deleted");
    assert_eq!(replicas(&env, "api-blue"), Some(2));
    assert_eq!(image_of(&env, "api-blue"), image("api", 1));
    assert_eq!(
        history(&env),
        [
            (1, "superseded".into()),
            (2, "rolled-back".into()),
            (3, "deployed".into())
        ]
    );
    assert_eq!(
        run.gates(),
        [
            ("readiness".into(), "passed".into()),
            ("smoke".into(), "failed".into())
        ]
    );
}

#[test]
fn failed_gate_after_the_switch_moves_the_selector_back() {
    let env = env(10.0);
    install_blue(&env);
    let exporter = Exporter::start(0.25);
    let prometheus = Prometheus::start(&exporter);
    let sampler = Sampler::start(&env);
    let v2 = write(&env, "v2.yaml", &blue_green_manifests(2, "blue"));
    // The binary: its progress on stderr is checked below.
    let run = apply_binary(
        &env,
        &v2,
        &[
            BLUE_GREEN,
            &[
                "--prometheus",
                &prometheus.url(),
                "--metric",
                "max(test_error_ratio)",
                "--max",
                "0.005",
                "--metric-interval",
                "300ms",
                "--metric-failure-limit",
                "1",
                "--observe",
                "5s",
            ],
        ]
        .concat(),
    );
    let samples = sampler.finish();
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "rolled-back");
    let metric = &report["gates"][1];
    assert_eq!(metric["name"], "metric max(test_error_ratio)");
    assert_eq!(metric["outcome"], "failed");
    assert_eq!(metric["value"], 0.25);
    assert!(
        metric["message"]
            .as_str()
            .unwrap()
            .starts_with("2 of 2 measurement(s) above 0.005 (limit 1)"),
        "{metric}"
    );
    assert_eq!(
        Sampler::colors(&samples),
        ["blue", "green", "blue"],
        "{samples:?}"
    );
    assert_eq!(selector_color(&env), "blue");
    assert!(deployment(&env, "api-green").is_none());
    assert_eq!(replicas(&env, "api-blue"), Some(2));
    assert!(run.stderr.contains("switched back to blue"), "{run}");
}

#[test]
fn plan_shows_the_color_a_blue_green_apply_deploys() {
    let env = env(10.0);
    install_blue(&env);
    // The manifests are rendered blue; blue serves, so green is what the apply would deploy.
    let v2 = write(&env, "v2.yaml", &blue_green_manifests(2, "blue"));
    let plan = |strategy: &str| {
        executor(
            &env,
            &[
                "plan",
                "-r",
                "api",
                "-n",
                "shop",
                "--strategy",
                strategy,
                &v2,
            ],
        )
    };
    let run = plan("blue-green");
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains("blue-green: Service shop/api serves blue; the apply deploys green"),
        "{run}"
    );
    assert!(run.stdout.contains("+ Deployment shop/api-green"), "{run}");
    assert!(
        run.stdout
            .contains("~ Deployment shop/api-blue (kept as the previous color"),
        "{run}"
    );
    assert!(!run.stdout.contains("deleted"), "{run}");
    // Rolling plans the manifests as they are: blue updated in place.
    let run = plan("rolling");
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stdout.contains("blue-green:"), "{run}");
    assert!(run.stdout.contains("Deployment shop/api-blue"), "{run}");
    assert_eq!(replicas(&env, "api-green"), None, "plan changes nothing");
}

#[test]
fn manual_promotion_waits_for_promote_and_abort_undoes() {
    let env = env(10.0);
    install_blue(&env);
    let promote = |cmd: &str| executor(&env, &[cmd, "-r", "api", "-n", "shop", "-o", "json"]);
    let none = promote("promote");
    assert_eq!(none.code, 2, "{none}");
    assert!(none.json()["message"]
        .as_str()
        .unwrap()
        .contains("no revision paused"));

    let v2 = write(&env, "v2.yaml", &blue_green_manifests(2, "blue"));
    let run = apply(&env, &v2, &[BLUE_GREEN, &["--manual-promotion"]].concat());
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["outcome"], "paused");
    assert_eq!(selector_color(&env), "blue", "no switch before promote");
    assert_eq!(replicas(&env, "api-green"), Some(2));
    assert_eq!(
        history(&env),
        [(1, "deployed".into()), (2, "pending".into())]
    );
    // `status` says which color serves and that revision 2 waits for promotion.
    let status = executor(&env, &["status", "-r", "api", "-n", "shop"]);
    assert!(
        status
            .stdout
            .contains("blue-green: Service shop/api selects blue")
            && status
                .stdout
                .contains("paused: revision 2 runs green beside the serving color")
            && !status.stdout.contains("interrupted"),
        "{status}"
    );
    let status = executor(&env, &["status", "-r", "api", "-n", "shop", "-o", "json"]).json();
    assert_eq!(
        (
            status["serving"].as_str(),
            status["paused"]["revision"].as_u64()
        ),
        (Some("blue"), Some(2))
    );
    assert_eq!(status["paused"]["blueGreen"]["color"], "green");
    let sampler = Sampler::start(&env);
    let run = promote("promote");
    let samples = sampler.finish();
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["outcome"], "deployed");
    assert_eq!(selector_color(&env), "green");
    assert_eq!(Sampler::colors(&samples), ["blue", "green"]);
    assert_eq!(replicas(&env, "api-blue"), Some(0));
    assert_eq!(
        history(&env),
        [(1, "superseded".into()), (2, "deployed".into())]
    );

    // v3 goes to blue (scaled up again), paused, then aborted: green keeps serving and blue
    // goes back to 0, since it existed before revision 3.
    let v3 = write(&env, "v3.yaml", &blue_green_manifests(3, "green"));
    let run = apply(&env, &v3, &[BLUE_GREEN, &["--manual-promotion"]].concat());
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(image_of(&env, "api-blue"), image("api", 3));
    assert_eq!(replicas(&env, "api-blue"), Some(2));
    let sampler = Sampler::start(&env);
    let run = promote("abort");
    let samples = sampler.finish();
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["outcome"], "aborted");
    assert_eq!(Sampler::colors(&samples), ["green"]);
    assert_eq!(selector_color(&env), "green");
    assert_eq!(replicas(&env, "api-blue"), Some(0));
    assert_eq!(image_of(&env, "api-green"), image("api", 2));
    assert_eq!(
        history(&env),
        [
            (1, "superseded".into()),
            (2, "superseded".into()),
            (3, "rolled-back".into()),
            (4, "deployed".into())
        ]
    );
    assert_eq!(promote("abort").code, 2, "nothing left to abort");
}

fn install_rolling(env: &Env) {
    let v1 = write(env, "v1.yaml", &api_manifests(1, ""));
    let run = apply(env, &v1, &[]);
    assert_eq!(run.code, 0, "{run}");
}

#[test]
fn metric_gate_failure_rolls_back_a_rolling_release() {
    let env = env(10.0);
    install_rolling(&env);
    let exporter = Exporter::start(0.001);
    let prometheus = Prometheus::start(&exporter);
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    let args = [
        "--prometheus",
        &prometheus.url(),
        "--metric",
        "max(test_error_ratio)",
        "--max",
        "0.005",
        "--metric-interval",
        "200ms",
    ];
    let run = apply(&env, &v2, &args);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        run.gates(),
        [
            ("readiness".into(), "passed".into()),
            ("metric max(test_error_ratio)".into(), "passed".into()),
            ("readiness".into(), "passed".into())
        ]
    );
    exporter.set_ratio(0.5);
    prometheus.wait_for_value(0.5);
    let v3 = write(&env, "v3.yaml", &api_manifests(3, ""));
    let run = apply(&env, &v3, &args);
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "rolled-back");
    assert_eq!(report["rolledBackTo"], 2);
    assert_eq!(report["gates"][1]["outcome"], "failed");
    assert_eq!(report["gates"][1]["value"], 0.5);
    let d = deployment(&env, "api").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        image("api", 2)
    );
}

#[test]
fn unreachable_prometheus_fails_the_gate_unless_errors_are_ignored() {
    let env = env(10.0);
    install_rolling(&env);
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    let args = [
        "--prometheus",
        &nowhere,
        "--metric",
        "max(test_error_ratio)",
        "--max",
        "0.005",
    ];
    let run = apply(&env, &v2, &args);
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["gates"][1]["outcome"], "error");
    assert!(
        report["gates"][1]["message"]
            .as_str()
            .unwrap()
            .contains("cannot reach Prometheus"),
        "{run}"
    );
    let run = apply(
        &env,
        &v2,
        &[&args[..], &["--gate-errors", "ignore"]].concat(),
    );
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "deployed");
    assert_eq!(report["gates"][1]["outcome"], "ignored");
    // Kept in the release record too.
    let run = executor(&env, &["history", "-r", "api", "-n", "shop", "-o", "json"]);
    let revisions = run.json()["revisions"].as_array().unwrap().clone();
    let failed = &revisions[1];
    assert_eq!(failed["status"], "rolled-back");
    assert_eq!(failed["gates"][1]["outcome"], "error");
    let deployed = revisions.last().unwrap();
    assert_eq!(deployed["status"], "deployed");
    assert_eq!(deployed["gates"][1]["outcome"], "ignored");
    assert!(deployed["gates"][1]["time"].is_string());
}

#[test]
fn hook_jobs_run_at_their_phase_and_a_failed_one_fails_the_release() {
    let env = env(10.0);
    // migrate 1 succeeds, migrate 2 exits with 1.
    for (version, code) in [(1, 0), (2, 1)] {
        env.sim.set_behaviour(
            &image("migrate", version),
            Behaviour::Exits {
                after: Duration::from_secs(1),
                code,
            },
        );
    }
    let with_hook = |version: u32| {
        let mut text = api_manifests(version, "");
        text.push_str(&hook_job(
            "migrate",
            "pre-deploy",
            &image("migrate", version),
        ));
        text
    };
    let v1 = write(&env, "v1.yaml", &with_hook(1));
    let run = apply(&env, &v1, &[]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        run.gates()[0],
        ("hook pre-deploy Job shop/migrate".into(), "passed".into())
    );
    let job = env.sim.get("batch/v1", "Job", "shop", "migrate").unwrap();
    assert_eq!(job["status"]["succeeded"], 1);

    let v2 = write(&env, "v2.yaml", &with_hook(2));
    let run = apply(&env, &v2, &[]);
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["failure"]["reason"], "hookFailed");
    assert!(
        report["failure"]["message"]
            .as_str()
            .unwrap()
            .contains("BackoffLimitExceeded"),
        "{run}"
    );
    assert_eq!(
        run.gates(),
        [("hook pre-deploy Job shop/migrate".into(), "failed".into())]
    );
    let d = deployment(&env, "api").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        image("api", 1),
        "nothing of v2 applied"
    );
    assert_eq!(d["metadata"]["generation"], 1);

    // A post-deploy hook runs once v3 is rolled out; its failure rolls v3 back.
    let mut v3 = api_manifests(3, "");
    v3.push_str(&hook_job("smoke-test", "post-deploy", &image("migrate", 2)));
    let v3 = write(&env, "v3.yaml", &v3);
    let run = apply(&env, &v3, &[]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["failure"]["reason"], "hookFailed");
    assert_eq!(
        run.gates(),
        [
            ("readiness".into(), "passed".into()),
            (
                "hook post-deploy Job shop/smoke-test".into(),
                "failed".into()
            )
        ]
    );
    assert_eq!(
        deployment(&env, "api").unwrap()["spec"]["template"]["spec"]["containers"][0]["image"],
        image("api", 1)
    );
}

#[test]
fn smoke_gate_passes_on_the_expected_status_and_fails_otherwise() {
    let env = env(10.0);
    install_rolling(&env);
    let exporter = Exporter::start(0.0);
    exporter.set_status(204);
    let url = exporter.url("/ready");
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    let run = apply(&env, &v2, &["--smoke-url", &url, "--smoke-status", "204"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["gates"][1]["value"], 204.0);
    let v3 = write(&env, "v3.yaml", &api_manifests(3, ""));
    let run = apply(
        &env,
        &v3,
        &[
            "--smoke-url",
            &url,
            "--smoke-retries",
            "2",
            "--smoke-interval",
            "50ms",
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["gates"][1]["outcome"], "failed");
    assert!(
        report["gates"][1]["message"]
            .as_str()
            .unwrap()
            .contains("answered 204, expected 200 after 3 attempt(s)"),
        "{run}"
    );
    let d = deployment(&env, "api").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        image("api", 2)
    );
    // Credentials in the URL are used, never shown: not in the report, not in the progress.
    let secret_url = url.replacen("http://", "http://ops:s3cret@", 1);
    let v4 = write(&env, "v4.yaml", &api_manifests(4, ""));
    let run = apply(
        &env,
        &v4,
        &["--smoke-url", &secret_url, "--smoke-status", "204"],
    );
    assert_eq!(run.code, 0, "{run}");
    let message = run.json()["gates"][1]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.starts_with("GET http://***@127.0.0.1:"),
        "{message}"
    );
    assert!(!run.to_string().contains("s3cret"), "{run}");
}

#[test]
fn chart_color_variant_is_deployed_blue_green() {
    let env = env(10.0);
    // The chart's ExternalSecret needs its operator's CRD, as in a real cluster.
    env.sim
        .create(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "externalsecrets.external-secrets.io"},
            "spec": {"group": "external-secrets.io", "scope": "Namespaced",
                     "names": {"kind": "ExternalSecret", "plural": "externalsecrets", "singular": "externalsecret"},
                     "versions": [{"name": "v1beta1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .unwrap();
    assert!(env.sim.wait_until(Duration::from_secs(5), |sim| {
        sim.get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "externalsecrets.external-secrets.io",
        )
        .is_some_and(|c| c["status"]["conditions"].is_array())
    }));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let chart = root.join("charts/api");
    let helm = root.join("scripts/helm");
    let apply_chart = |level: &str| {
        let log_level = format!("config.logLevel={level}");
        let args = [
            "apply",
            "-r",
            "api",
            "-n",
            "shop",
            "-o",
            "json",
            "--chart",
            chart.to_str().unwrap(),
            "--helm",
            helm.to_str().unwrap(),
            "--set",
            "color=blue",
            "--set",
            &log_level,
            "--strategy",
            "blue-green",
            "--scale-down-delay",
            "0s",
        ];
        executor(&env, &args)
    };
    let run = apply_chart("info");
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(selector_color(&env), "blue");
    let sampler = Sampler::start(&env);
    let run = apply_chart("debug");
    let samples = sampler.finish();
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(selector_color(&env), "green");
    assert_eq!(Sampler::colors(&samples), ["blue", "green"]);
    // The color's ConfigMap and PodDisruptionBudget follow the Deployment's name.
    let green = deployment(&env, "api-green").unwrap();
    assert_eq!(green["metadata"]["labels"]["color"], "green");
    let config = env.sim.get("v1", "ConfigMap", "shop", "api-green").unwrap();
    assert_eq!(config["data"]["LOG_LEVEL"], "debug");
    let blue_config = env.sim.get("v1", "ConfigMap", "shop", "api-blue").unwrap();
    assert_eq!(blue_config["data"]["LOG_LEVEL"], "info");
    let pdb = env
        .sim
        .get("policy/v1", "PodDisruptionBudget", "shop", "api-green")
        .unwrap();
    assert_eq!(pdb["spec"]["selector"]["matchLabels"]["color"], "green");
    assert!(
        serde_json::to_string(&green["spec"]["template"]["spec"])
            .unwrap()
            .contains("\"api-green\""),
        "the pods use the green ConfigMap: {green}"
    );
    assert_eq!(replicas(&env, "api-blue"), Some(0));
}
