//! What a server sent, made safe to print. A terminal acts on control characters —
//! an `ESC ]52;` sequence writes the clipboard, `ESC ]0;` the title, `CSI` moves the
//! cursor or rewrites what was printed — so a job's log, its output, a repository
//! URL or a refusal's detail could drive the user's terminal. Every C0 control but
//! newline and tab, DEL and every C1 control is printed as a visible `\xNN`, always
//! (also into a pipe or a file: such text is read on a terminal later). JSON is
//! escaped the lossless way: a control a serializer leaves raw becomes a `\u00NN`
//! escape of the same string, so `-o json` still parses to exactly what the server
//! sent. `gitfaas logs --raw` is the one way to get a log's bytes unchanged.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether a terminal may act on `c`: C0 (newline and tab unless `lines_too`),
/// DEL, C1.
fn is_control(c: char, lines_too: bool) -> bool {
    match c {
        '\n' | '\t' => lines_too,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        _ => false,
    }
}

fn replace(text: &str, lines_too: bool, escape: fn(&mut String, char)) -> Cow<'_, str> {
    if !text.chars().any(|c| is_control(c, lines_too)) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c, lines_too) {
            escape(&mut escaped, c);
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

fn hex(out: &mut String, c: char) {
    let _ = write!(out, "\\x{:02x}", u32::from(c));
}

fn json_escape(out: &mut String, c: char) {
    let _ = write!(out, "\\u{:04x}", u32::from(c));
}

/// Free text (a log, a reason, an error): controls shown, lines and tabs kept.
pub fn text(text: &str) -> Cow<'_, str> {
    replace(text, false, hex)
}

/// One line (a table cell, a `key: value`): newlines and tabs shown as well.
pub fn line(text: &str) -> Cow<'_, str> {
    replace(text, true, hex)
}

/// JSON text as serde_json writes it (controls inside strings escaped, DEL and C1
/// not): those left as `\u00NN`. Newlines stay — outside strings they are the
/// pretty printer's, inside one they never occur raw.
pub fn json(json: &str) -> Cow<'_, str> {
    replace(json, false, json_escape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_of_every_kind_are_shown_not_sent() {
        let hostile = "a\u{1b}]52;c;cHduZWQ=\u{7}b\u{1b}[2Jc\u{9b}31md\u{7f}e\r\n\tf";
        assert_eq!(text(hostile), "a\\x1b]52;c;cHduZWQ=\\x07b\\x1b[2Jc\\x9b31md\\x7fe\\x0d\n\tf");
        assert_eq!(line(hostile), "a\\x1b]52;c;cHduZWQ=\\x07b\\x1b[2Jc\\x9b31md\\x7fe\\x0d\\x0a\\x09f");
        assert!(matches!(text("plain ü → ok\n"), Cow::Borrowed(_)));
        assert_eq!(text("\u{0}\u{1f}\u{80}\u{9f}\u{a0}"), "\\x00\\x1f\\x80\\x9f\u{a0}");
    }

    #[test]
    fn escaped_json_is_the_same_value_with_no_raw_control() {
        let value = serde_json::json!({"out\u{9b}": ["\u{1b}[31mred\u{7f}", "\u{85}next"], "n": 1});
        for printed in [value.to_string(), serde_json::to_string_pretty(&value).unwrap()] {
            let escaped = json(&printed);
            assert!(!escaped.chars().any(|c| is_control(c, false)), "{escaped}");
            assert_eq!(serde_json::from_str::<serde_json::Value>(&escaped).unwrap(), value);
        }
    }
}
