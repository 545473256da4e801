//! What a plugin may write to the host log through `host.log`.
//!
//! A plugin's lines land in the operator's log beside the host's own, so
//! the host bounds two things a plugin controls. Volume: a loop of `log`
//! calls costs the plugin nothing but would fill disks and bury the host's
//! lines, so each call (`configure` or `authenticate`) gets a budget of
//! lines and bytes; past it, lines are dropped and counted, and the call
//! ends with one summary line and a report to the embedder (the server's
//! Prometheus counter). Shape: a line break, carriage return or terminal
//! escape in a message would start what reads as a host line, so every
//! such character is written out as a visible escape (`\n`, `\u{1b}`) and
//! a message stays on its own line, reading as what it is.

use std::sync::Arc;

/// Lines one call may write by default: enough for a plugin that reports
/// what it did, small enough that a plugin looping over `log` cannot flood
/// the service log (each login may call it again).
pub const DEFAULT_LOG_LINES: u32 = 100;
/// Bytes one call may write by default (messages as written, escapes
/// included): bounds a few long lines the way the line budget bounds many
/// short ones.
pub const DEFAULT_LOG_BYTES: usize = 16 * 1024;
/// Longest message a plugin may write, in characters after escaping;
/// longer ones are cut. Keeps one line readable and one call's cost to the
/// log independent of how large a string the plugin hands over.
pub const MAX_LOG_LINE: usize = 1024;

/// What one call may write to the host log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub lines: u32,
    pub bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            lines: DEFAULT_LOG_LINES,
            bytes: DEFAULT_LOG_BYTES,
        }
    }
}

/// What one call dropped: lines, and their bytes as the plugin sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogDropped {
    pub lines: u64,
    pub bytes: u64,
}

/// Told the plugin's name and what a call dropped, after every call that
/// dropped any line.
pub type LogDropHook = Arc<dyn Fn(&str, LogDropped) + Send + Sync>;

/// One call's log budget: what it wrote and what it dropped.
#[derive(Debug)]
pub(crate) struct LogBudget {
    limits: LogLimits,
    lines: u32,
    bytes: usize,
    /// Set by the first line that did not fit: every later line of the
    /// call is dropped too, so what reaches the log is a prefix of what
    /// the plugin wrote, never a selection.
    closed: bool,
    dropped: LogDropped,
}

impl LogBudget {
    pub(crate) fn new(limits: LogLimits) -> LogBudget {
        LogBudget {
            limits,
            lines: 0,
            bytes: 0,
            closed: false,
            dropped: LogDropped::default(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether a line of `len` bytes may be written; counts it if so.
    pub(crate) fn admit(&mut self, len: usize) -> bool {
        if self.closed
            || self.lines >= self.limits.lines
            || self.bytes.saturating_add(len) > self.limits.bytes
        {
            self.closed = true;
            return false;
        }
        self.lines += 1;
        self.bytes += len;
        true
    }

    /// Count a line that was not written; `len` is its size as sent.
    pub(crate) fn drop_line(&mut self, len: usize) {
        self.dropped.lines += 1;
        self.dropped.bytes = self.dropped.bytes.saturating_add(len as u64);
    }

    /// What the call dropped; the budget starts over for the next call.
    pub(crate) fn take(&mut self) -> LogDropped {
        let dropped = self.dropped;
        *self = LogBudget::new(self.limits);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_protocol::logsafe::escape_within as escape;

    #[test]
    fn line_breaks_and_terminal_escapes_are_shown_not_obeyed() {
        let forged = "\n2026-12-05T00:00:00Z  INFO portcullis: login allowed user=root";
        assert_eq!(
            escape(forged, MAX_LOG_LINE),
            "\\n2026-12-05T00:00:00Z  INFO portcullis: login allowed user=root"
        );
        assert_eq!(
            escape("\u{1b}[2K\rok\tdone\0", 100),
            "\\u{1b}[2K\\rok\\tdone\\u{0}"
        );
        assert_eq!(
            escape("a\u{2028}b\u{202e}c\u{85}d", 100),
            "a\\u{2028}b\\u{202e}c\\u{85}d"
        );
        // A literal backslash-n is not a newline escape.
        assert_eq!(escape("a\\nb", 100), "a\\\\nb");
        assert_eq!(escape("trailing newline\n", 100), "trailing newline");
        assert_eq!(escape("grüße, 世界", 100), "grüße, 世界");
    }

    #[test]
    fn long_messages_are_cut_between_escapes() {
        assert_eq!(escape(&"x".repeat(5000), MAX_LOG_LINE).len(), MAX_LOG_LINE);
        assert_eq!(escape(&"é".repeat(5000), 10).chars().count(), 10);
        // "ab" + "\u{1b}" is 8 characters: the escape goes whole or not at all.
        assert_eq!(escape("ab\u{1b}", 7), "ab");
        assert_eq!(escape("ab\u{1b}", 8), "ab\\u{1b}");
    }

    #[test]
    fn the_budget_closes_at_the_first_line_that_does_not_fit() {
        let mut budget = LogBudget::new(LogLimits {
            lines: 3,
            bytes: 10,
        });
        assert!(budget.admit(4));
        assert!(budget.admit(4));
        // 4 + 4 + 3 > 10: this one and every later one are dropped, even
        // one that would still fit.
        assert!(!budget.admit(3));
        budget.drop_line(3);
        assert!(budget.is_closed());
        assert!(!budget.admit(1));
        budget.drop_line(1);
        assert_eq!(budget.take(), LogDropped { lines: 2, bytes: 4 });
        // The next call starts over.
        assert!(!budget.is_closed());
        assert!(budget.admit(4) && budget.admit(4) && budget.admit(1));
        assert!(!budget.admit(0), "three lines at most");
        assert_eq!(budget.take(), LogDropped::default());
    }
}
