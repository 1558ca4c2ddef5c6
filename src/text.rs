//! Text from torrents, magnet links and trackers on its way to a terminal, a log or a
//! tab-separated line: control characters are shown escaped, never passed through, so a
//! name or URL cannot forge a second output row or drive the terminal (ANSI escapes).

/// `s` with every control character (C0, DEL, C1) written as `\n`, `\r`, `\t` or
/// `\u{..}`, and backslashes doubled so the escaping is unambiguous.
pub(crate) fn escape_control(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Why a tracker URL is refused: it holds a control character or white space (which a
/// real URL never does, percent-encoded or not).
pub(crate) fn url_problem(url: &str) -> Option<&'static str> {
    if url.chars().any(char::is_control) {
        Some("contains control characters")
    } else if url.chars().any(char::is_whitespace) {
        Some("contains white space")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_text_kept() {
        assert_eq!(escape_control("plain Ünïcode 名前"), "plain Ünïcode 名前");
        assert_eq!(
            escape_control("a\tb\nc\rd\x1b[31me\\f\u{85}"),
            "a\\tb\\nc\\rd\\u{1b}[31me\\\\f\\u{85}"
        );
        assert!(!escape_control("x\n\t\r\x07").chars().any(char::is_control));
    }

    #[test]
    fn urls_with_control_characters_or_spaces_are_refused() {
        assert_eq!(url_problem("http://t.example/announce?a=b%0A"), None);
        assert!(url_problem("http://t.example/announce\n\tforged").is_some());
        assert!(url_problem("udp://t.example:1 x").is_some());
    }
}
