use super::*;
use proptest::prelude::*;

fn load(text: &str) -> Loaded {
    load_bytes("in.yaml", text.as_bytes(), false)
}

#[test]
fn multi_document_stream_keeps_start_lines() {
    let text = "# leading comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n\n---\n# c\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n";
    let l = load(text);
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let got: Vec<(&str, usize)> = l.documents.iter().map(|d| (d.name(), d.line)).collect();
    assert_eq!(got, vec![("a", 2), ("b", 10)]);
    assert_eq!(&*l.documents[1].source, "in.yaml");
}

#[test]
fn many_documents_read_in_parallel_keep_file_order_and_lines() {
    // Four lines per document; document 250 is broken and 400 is not an object.
    let mut text = String::new();
    for i in 0..500 {
        match i {
            250 => text.push_str("apiVersion: v1\nkind: [unclosed\nmetadata: {}\n---\n"),
            400 => text.push_str("- just\n- a list\n# padding\n---\n"),
            _ => text.push_str(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\n---\n"
            )),
        }
    }
    let l = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .expect("pool")
        .install(|| load(&text));
    let got: Vec<(String, usize)> = l
        .documents
        .iter()
        .map(|d| (d.name().to_string(), d.line))
        .collect();
    let want: Vec<(String, usize)> = (0..500)
        .filter(|i| *i != 250 && *i != 400)
        .map(|i| (format!("c{i}"), 4 * i + 1))
        .collect();
    assert_eq!(got, want);
    let errors: Vec<usize> = l.errors.iter().map(|e| e.line).collect();
    assert_eq!(errors.len(), 2, "{:?}", l.errors);
    assert!((1001..=1003).contains(&errors[0]), "{:?}", l.errors);
    assert_eq!(errors[1], 1601, "{:?}", l.errors);
}

#[test]
fn list_kinds_are_flattened() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n";
    let l = load(text);
    let kinds: Vec<&str> = l.documents.iter().map(Document::kind).collect();
    assert_eq!(kinds, vec!["ConfigMap", "Secret"]);
    let l = load("apiVersion: v1\nkind: PodList\nitems: []\n");
    assert!(l.documents.is_empty() && l.errors.is_empty());
}

#[test]
fn malformed_document_is_reported_and_others_kept() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: [unclosed\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    let l = load(text);
    assert_eq!(l.documents.len(), 2);
    assert_eq!(l.errors.len(), 1);
    let e = &l.errors[0];
    assert!(e.line >= 6 && e.line <= 7, "line {}", e.line);
    assert!(e.column >= 1);
    assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
    assert!(e.to_string().starts_with("in.yaml:"));
}

#[test]
fn missing_api_version_or_kind_is_an_error_at_the_document() {
    let l = load("---\nmetadata:\n  name: x\n---\napiVersion: v1\n");
    assert_eq!(l.errors.len(), 2);
    assert_eq!(l.errors[0].line, 2);
    assert!(l.errors[0].message.contains("apiVersion and kind"));
    assert_eq!(l.errors[1].line, 5);
    assert!(l.errors[1].message.contains("no kind"));
    let l = load("- a\n- b\n");
    assert!(l.errors[0].message.contains("is a list"));
}

#[test]
fn non_utf8_reports_line_and_column() {
    let l = load_bytes("bad.yaml", b"apiVersion: v1\nkind: \xff\n", false);
    assert_eq!(l.errors.len(), 1);
    assert_eq!((l.errors[0].line, l.errors[0].column), (2, 7));
    assert!(l.errors[0].message.contains("UTF-8"));
}

#[test]
fn json_files_use_the_json_parser() {
    let l = load_bytes(
        "x.json",
        b"{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"n\"}}",
        true,
    );
    assert_eq!(l.documents[0].name(), "n");
    let l = load_bytes("x.json", b"{\n  \"apiVersion\": \"v1\",\n  oops\n}", true);
    assert_eq!(l.errors[0].line, 3);
    assert!(l.errors[0].message.starts_with("invalid JSON"));
}

#[test]
fn empty_documents_and_end_markers_are_skipped() {
    let l = load("---\n---\n# only a comment\n...\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n...\n");
    assert!(l.errors.is_empty());
    assert_eq!(l.documents.len(), 1);
    assert_eq!(l.documents[0].line, 6);
}

#[test]
fn directories_are_read_recursively_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
    std::fs::write(
        dir.path().join("b.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("sub/a.yml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not yaml: [").expect("write");
    let l = load_paths(&[dir.path().to_path_buf(), dir.path().join("missing.yaml")]);
    let names: Vec<&str> = l.documents.iter().map(Document::name).collect();
    assert_eq!(names, vec!["b", "a"]);
    assert_eq!(l.errors.len(), 1);
    assert!(l.errors[0].message.contains("no such file"));
}

#[test]
fn split_keeps_inline_content_after_marker() {
    let chunks = split_documents("--- {a: 1}\n---\nb: 2\n");
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0].line, 1);
    assert_eq!(chunks[1].line, 3);
}

proptest! {
    #[test]
    fn loader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let l = load_bytes("fuzz.yaml", &bytes, false);
        for e in &l.errors {
            prop_assert!(e.line >= 1 && e.column >= 1);
        }
        let _ = load_bytes("fuzz.json", &bytes, true);
    }

    #[test]
    fn loader_never_panics_on_yamlish_text(text in "([a-z:{}\\[\\]\\-#'\" \n]|---\n|apiVersion: v1\n|kind: X\n){0,40}") {
        let l = load(&text);
        for d in &l.documents {
            prop_assert!(d.line >= 1);
            prop_assert!(!d.kind().is_empty());
        }
    }

    #[test]
    fn split_chunks_are_in_order_and_within_text(text in "(a\n|---\n|\\.\\.\\.\n|--- b\n| c\n){0,30}") {
        let chunks = split_documents(&text);
        let mut last = 0;
        for c in &chunks {
            prop_assert!(c.line >= last);
            last = c.line;
            prop_assert!(text.contains(c.text));
        }
    }
}
