//! Splitting a YAML stream into its documents without losing line numbers.

/// One document of a YAML stream and the 1-based line its text starts on.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub line: usize,
    pub text: &'a str,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
}

/// Splits on `---` and `...` lines. A `--- value` line keeps its value in the next document,
/// with the marker blanked so columns stay right.
pub fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (line_no, line) in (1usize..).zip(text.split_inclusive('\n')) {
        let content = line.trim_end_matches(['\n', '\r']);
        if is_marker(content, "---") || is_marker(content, "...") {
            if offset > start {
                chunks.push(Chunk {
                    line: start_line,
                    text: &text[start..offset],
                });
            }
            let rest = content[3..].trim();
            if content.starts_with("---") && !rest.is_empty() && !rest.starts_with('#') {
                // Inline content after the marker: the document starts on this line.
                start = offset + 3;
                start_line = line_no;
            } else {
                start = offset + line.len();
                start_line = line_no + 1;
            }
        }
        offset += line.len();
    }
    if start < text.len() {
        chunks.push(Chunk {
            line: start_line,
            text: &text[start..],
        });
    }
    chunks
}
