//! Credentials in URLs (`https://user:password@prometheus/`) kept out of what the tools print,
//! log and record: gate results, progress notes and errors show `https://***@host/`.

/// `text` with the user information of every URL in it replaced by `***`.
pub fn credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = at + 3;
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '(' | ')' | '<' | '>' | ','
                ) || c.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(i) => {
                out.push_str("***");
                out.push_str(&authority[i..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::credentials;

    #[test]
    fn user_information_is_replaced_in_every_url() {
        assert_eq!(
            credentials("GET https://ops:s3cret@api.shop/healthz answered 503"),
            "GET https://***@api.shop/healthz answered 503"
        );
        assert_eq!(
            credentials(
                "cannot reach Prometheus at http://u:p@prom:9090: error sending request for url \
                 (http://u:p@prom:9090/api/v1/query?query=up)"
            ),
            "cannot reach Prometheus at http://***@prom:9090: error sending request for url \
             (http://***@prom:9090/api/v1/query?query=up)"
        );
        // A password holding `@` is hidden whole; a user alone is hidden too.
        assert_eq!(credentials("http://a:b@c@host"), "http://***@host");
        assert_eq!(credentials("http://token@host/x"), "http://***@host/x");
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        for text in [
            "",
            "no url here",
            "http://prom:9090/api/v1/query?query=a@b",
            "mail ops@shop, see https://shop/#a@b",
            "ends with ://",
        ] {
            assert_eq!(credentials(text), text);
        }
    }
}
