//! A simulator with namespace `shop`, a kubeconfig for it, and the executor run against it,
//! in this process or as the binary.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use clap::Parser;
use serde_json::{json, Value};
use simulator::{Options, Simulator};

pub struct Env {
    pub sim: Arc<Simulator>,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

/// A simulator where time runs `speed` times faster, with namespace `shop`.
pub fn env(speed: f64) -> Env {
    let sim = Simulator::start_with(Options {
        speed,
        ..Options::default()
    })
    .expect("simulator starts");
    sim.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .expect("namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    Env {
        sim: Arc::new(sim),
        dir,
        kubeconfig,
    }
}

/// A finished executor run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: not json:\n{}\n{}", self.stdout, self.stderr))
    }

    /// (name, outcome) of every gate in the JSON result.
    pub fn gates(&self) -> Vec<(String, String)> {
        self.json()["gates"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|g| {
                (
                    g["name"].as_str().unwrap().to_string(),
                    g["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The executor binary with `args` (see [`super::with_signature_opt_out`]) against the
/// simulator.
pub fn command(env: &Env, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_executor"));
    cmd.args(super::with_signature_opt_out(args))
        .env("KUBECONFIG", &env.kubeconfig)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

pub fn finished(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The executor binary run with `args` against the simulator: progress and warnings are in
/// `stderr`.
pub fn executor_binary(env: &Env, args: &[&str]) -> Run {
    finished(command(env, args).output().expect("executor runs"))
}

/// The commands that take `--kubeconfig`.
const CLUSTER_COMMANDS: &[&str] = &[
    "apply", "plan", "history", "status", "rollback", "promote", "abort", "backup", "restore",
    "dr-drill",
];

/// `executor args...` run in this process (with [`super::with_signature_opt_out`]) against
/// the simulator, as the binary runs it: its exit code, its result, and on stderr what the
/// binary prints there last, the error (progress and warnings are not in `stderr`: use
/// [`executor_binary`] to see them).
pub fn executor(env: &Env, args: &[&str]) -> Run {
    run_in_process(env, &super::with_signature_opt_out(args))
}

/// `executor args...` run in this process as given.
pub fn run_in_process(env: &Env, args: &[&str]) -> Run {
    let mut argv: Vec<std::ffi::OsString> = vec!["executor".into()];
    argv.extend(args.iter().map(Into::into));
    if args.first().is_some_and(|c| CLUSTER_COMMANDS.contains(c)) {
        argv.splice(
            2..2,
            [
                "--kubeconfig".into(),
                env.kubeconfig.clone().into_os_string(),
            ],
        );
    }
    let cli = match executor::cli::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let (stdout, stderr) = if e.use_stderr() {
                (String::new(), e.render().to_string())
            } else {
                (e.render().to_string(), String::new())
            };
            return Run {
                code: e.exit_code(),
                stdout,
                stderr,
            };
        }
    };
    let mut out = Vec::new();
    let (code, stderr) = match executor::cli::run_to(cli, &mut out, false) {
        Ok(status) => (i32::from(status.code()), String::new()),
        Err(e) => (
            i32::from(executor::exit::ExitStatus::Error.code()),
            format!("error: {e:#}\n"),
        ),
    };
    Run {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr,
    }
}

/// Writes `text` to `name` in the test's directory; returns its path.
pub fn write(env: &Env, name: &str, text: &str) -> String {
    let path = env.dir.path().join(name);
    std::fs::write(&path, text).expect("write manifest");
    path.display().to_string()
}

/// `executor apply -r api -n shop -o json MANIFEST EXTRA...`, in this process.
pub fn apply(env: &Env, manifest: &str, extra: &[&str]) -> Run {
    executor(env, &apply_args(manifest, extra))
}

/// `executor apply -r api -n shop -o json MANIFEST EXTRA...` by the binary.
pub fn apply_binary(env: &Env, manifest: &str, extra: &[&str]) -> Run {
    executor_binary(env, &apply_args(manifest, extra))
}

fn apply_args<'a>(manifest: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["apply", "-r", "api", "-n", "shop", "-o", "json", manifest];
    args.extend_from_slice(extra);
    args
}
