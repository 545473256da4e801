//! Strings from clients, servers and plugins, made safe to write into a
//! log line or an audit event.
//!
//! A CONNECT user name, a client's host, a server name or a plugin's deny
//! reason is chosen by someone the operator does not trust. Written raw, a
//! newline in it starts a new, forged log line (`... INFO login allowed
//! user=root`), a carriage return overwrites the line on a terminal, an
//! ANSI escape recolours or hides what follows, and a bidi override makes
//! a reader see text in another order than it is stored. JSON encoding
//! alone does not help the reader: it escapes C0 controls but leaves DEL,
//! C1 controls (U+009B opens an escape sequence on some terminals), bidi
//! controls and U+2028/U+2029 raw, and `jq -r` or any viewer prints the
//! decoded string. So these fields are escaped before they reach any sink:
//! the human log, the JSON log, the `[audit] subject` events and the
//! reason sent back to nats-server (which logs it).
//!
//! The escapes are Rust's: `\n`, `\r`, `\t`, `\\`, and `\u{1b}` for the
//! rest. A backslash is escaped too, so the escaped text maps back to
//! exactly one original (a user literally named `a\nb` shows as `a\\nb`).
//! Everything else, including non-ASCII letters, is kept as it is.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether `c` is written as an escape rather than as itself.
fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || is_invisible_format(c)
}

/// Characters that change how the text around them is shown without
/// being visible themselves: bidi controls, line and paragraph
/// separators, zero-width characters, the byte order mark and the
/// interlinear annotation controls.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

fn write_escaped(out: &mut impl Write, s: &str) -> fmt::Result {
    let mut rest = s;
    while let Some(at) = rest.find(needs_escape) {
        out.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().unwrap_or_default();
        match c {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c => write!(out, "\\u{{{:x}}}", c as u32)?,
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// `text` escaped as [`escape`] does, trailing whitespace removed, and cut
/// at `max_chars` characters of the escaped form (never inside an escape):
/// for plugin text, which is bounded as well as escaped.
pub fn escape_within(text: &str, max_chars: usize) -> String {
    let text = text.trim_end();
    let mut out = String::with_capacity(text.len().min(max_chars));
    let mut chars = 0;
    let mut buf = String::new();
    for c in text.chars() {
        buf.clear();
        let mut one = [0u8; 4];
        // Writing into a String cannot fail.
        let _ = write_escaped(&mut buf, c.encode_utf8(&mut one));
        let width = buf.chars().count();
        if chars + width > max_chars {
            break;
        }
        chars += width;
        out.push_str(&buf);
    }
    out
}

/// `s` with every control, bidi and invisible format character escaped;
/// borrowed when there was nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    // Writing into a String cannot fail.
    let _ = write_escaped(&mut out, s);
    Cow::Owned(out)
}

/// Displays `T` escaped as [`escape`] does, without allocating: for log
/// fields whose value is an error or other `Display` that may quote a
/// client or plugin string (`error = %Escaped(&e)`).
pub struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl Write for Escaping<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                write_escaped(self.0, s)
            }
        }
        write!(Escaping(f), "{}", self.0)
    }
}

impl<T: fmt::Display> fmt::Debug for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::{Escaped, escape};
    use std::borrow::Cow;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "alice",
            "Jörg Müller",
            "my app 1.0",
            "user@example.com",
            "東京",
            "",
        ] {
            assert!(matches!(escape(s), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn a_forged_log_line_stays_on_one_line() {
        let forged = "x\n2026-01-01T00:00:00Z  INFO portcullis: login allowed user=root\r\n";
        let escaped = escape(forged);
        assert_eq!(
            escaped,
            "x\\n2026-01-01T00:00:00Z  INFO portcullis: login allowed user=root\\r\\n"
        );
        assert_eq!(escaped.lines().count(), 1);
    }

    #[test]
    fn terminal_escapes_and_other_controls_are_shown_not_sent() {
        assert_eq!(escape("\x1b[31mred\x1b[0m"), "\\u{1b}[31mred\\u{1b}[0m");
        assert_eq!(
            escape("a\tb\0c\x07\x08\x7f"),
            "a\\tb\\u{0}c\\u{7}\\u{8}\\u{7f}"
        );
        // C1 controls: CSI and NEL.
        assert_eq!(escape("\u{9b}2J\u{85}"), "\\u{9b}2J\\u{85}");
    }

    #[test]
    fn bidi_and_line_separators_cannot_reorder_or_split_what_is_read() {
        assert_eq!(
            escape("admin\u{202e}txt.exe\u{2066}\u{2069}"),
            "admin\\u{202e}txt.exe\\u{2066}\\u{2069}"
        );
        assert_eq!(escape("a\u{2028}b\u{2029}c"), "a\\u{2028}b\\u{2029}c");
        assert_eq!(escape("ro\u{200b}ot\u{feff}"), "ro\\u{200b}ot\\u{feff}");
    }

    #[test]
    fn backslashes_are_escaped_so_every_escaped_text_has_one_original() {
        assert_eq!(escape("a\\nb"), "a\\\\nb");
        assert_ne!(escape("a\\nb"), escape("a\nb"));
    }

    #[test]
    fn the_display_wrapper_escapes_what_it_wraps() {
        let e = format!("{}", Escaped(format_args!("unknown user {}", "m\nx\x1b")));
        assert_eq!(e, "unknown user m\\nx\\u{1b}");
        assert_eq!(format!("{:?}", Escaped("a\nb")), "a\\nb");
    }
}
