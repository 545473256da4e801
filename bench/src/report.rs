//! The runner's markdown: the headline table at the reference concurrency,
//! the concurrency sweep, and where the numbers come from (date, machine,
//! versions, the exact command). It is written between two marker lines
//! of docs/benchmarks.md, so the rest of that file (the peers run, the
//! microbenchmarks) stays as it is.

use crate::deploy::Target;
use crate::runner::{Spread, Summary};
use std::fmt::Write as _;

pub const BEGIN: &str = "<!-- portcullis-bench:begin: written by bench/run, edits between these markers are overwritten -->";
pub const END: &str = "<!-- portcullis-bench:end -->";

/// Where the numbers come from.
pub struct Context {
    pub date: String,
    pub machine: String,
    pub versions: String,
    pub command: String,
    pub runs: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// The concurrency of the headline table.
    pub reference_clients: usize,
    pub notes: Vec<String>,
    /// File name of the plot, relative to the markdown file.
    pub svg: Option<String>,
}

fn spread(s: Option<Spread>, digits: usize) -> String {
    match s {
        None => "-".into(),
        Some(s) => {
            let f = |v: f64| format!("{v:.digits$}");
            if f(s.min) == f(s.max) {
                f(s.median)
            } else {
                format!("{} ({}–{})", f(s.median), f(s.min), f(s.max))
            }
        }
    }
}

fn label<'a>(targets: &'a [Target], id: &str) -> &'a str {
    targets.iter().find(|t| t.id == id).map_or("?", |t| t.label)
}

/// The section, markers included.
pub fn section(ctx: &Context, targets: &[Target], summaries: &[Summary]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(s, "## Side by side: `bench/run`\n");
    let _ = writeln!(
        s,
        "{}, {}. {}. Each client loops connect -> flush -> close for {} s after {} s of warm-up, \
         users alice and bob in turn; {} interleaved runs per target and concurrency, each on a \
         fresh nats-server (ephemeral loopback port) and a fresh service. Figures are the median \
         with the range over the runs in brackets. CPU per login and RSS are read from /proc over \
         the measured window only.\n",
        ctx.date, ctx.machine, ctx.versions, ctx.duration_s, ctx.warmup_s, ctx.runs
    );
    let _ = writeln!(s, "```\n{}\n```\n", ctx.command);

    let ceiling = summaries
        .iter()
        .find(|x| x.target == "ceiling" && x.clients == ctx.reference_clients)
        .and_then(|x| x.conn_per_s)
        .map(|c| c.median);
    let _ = writeln!(s, "### {} clients\n", ctx.reference_clients);
    let _ = writeln!(
        s,
        "| target | conn/s | of ceiling | connect p50 (ms) | connect p99 (ms) | failed | service RSS peak (MiB) | service CPU (ms/login) | nats-server CPU (ms/login) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for x in summaries
        .iter()
        .filter(|x| x.clients == ctx.reference_clients)
    {
        row(&mut s, targets, x, ceiling, true);
    }
    let _ = writeln!(s, "\n### Concurrency sweep\n");
    let _ = writeln!(
        s,
        "| target | clients | conn/s | connect p50 (ms) | connect p99 (ms) | failed | service RSS peak (MiB) | service CPU (ms/login) | nats-server CPU (ms/login) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for x in summaries {
        row(&mut s, targets, x, None, false);
    }
    if let Some(svg) = &ctx.svg {
        let _ = writeln!(
            s,
            "\n![Connects per second and p99 connect latency against concurrency]({svg})"
        );
    }
    let busy: Vec<f64> = summaries
        .iter()
        .filter_map(|x| x.other_busy_pct.map(|b| b.max))
        .collect();
    if let Some(max) = busy.iter().copied().reduce(f64::max) {
        let _ = writeln!(
            s,
            "\nCPU used by other processes during the measured windows: at most {max:.0}% of the machine."
        );
    }
    if !ctx.notes.is_empty() {
        let _ = writeln!(s);
        for note in &ctx.notes {
            let _ = writeln!(s, "- {note}");
        }
    }
    let _ = writeln!(s, "{END}");
    s
}

fn row(s: &mut String, targets: &[Target], x: &Summary, ceiling: Option<f64>, headline: bool) {
    if x.runs == 0 {
        let why = x.errors.first().map_or("no run", String::as_str);
        let why: String = why
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(120)
            .collect();
        if headline {
            let _ = writeln!(
                s,
                "| {} | error: {why} | | | | | | | |",
                label(targets, &x.target)
            );
        } else {
            let _ = writeln!(
                s,
                "| {} | {} | error: {why} | | | | | | |",
                x.target, x.clients
            );
        }
        return;
    }
    let rest = format!(
        "{} | {} | {} | {} | {} | {} |",
        spread(x.p50_ms, 2),
        spread(x.p99_ms, 2),
        x.failed_logins,
        spread(x.svc_rss_mib, 1),
        spread(x.svc_cpu_ms, 3),
        spread(x.server_cpu_ms, 3),
    );
    if headline {
        let of = match (ceiling, x.conn_per_s) {
            (Some(c), Some(v)) if c > 0.0 => format!("{:.2}x", v.median / c),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {of} | {rest}",
            label(targets, &x.target),
            spread(x.conn_per_s, 0)
        );
    } else {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {rest}",
            x.target,
            x.clients,
            spread(x.conn_per_s, 0)
        );
    }
}

/// `doc` with `section` in place of the old one, or inserted before the
/// first second-level heading when there is none yet.
pub fn splice(doc: &str, section: &str) -> String {
    if let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END))
        && b < e
    {
        let after = &doc[e + END.len()..];
        let after = after.strip_prefix('\n').unwrap_or(after);
        return format!("{}{section}{after}", &doc[..b]);
    }
    match doc.find("\n## ") {
        Some(i) => format!("{}{section}\n{}", &doc[..i + 1], &doc[i + 1..]),
        None => format!("{doc}\n{section}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_inserts_once_then_replaces_keeping_the_rest() {
        let doc = "# Benchmarks\n\nintro\n\n## Against the peers\n\npeers table\n";
        let first = splice(doc, &format!("{BEGIN}\nA\n{END}\n"));
        assert!(first.contains("intro\n\n<!--"), "{first}");
        assert!(
            first.ends_with("## Against the peers\n\npeers table\n"),
            "{first}"
        );
        let second = splice(&first, &format!("{BEGIN}\nB\n{END}\n"));
        assert!(
            second.contains("\nB\n") && !second.contains("\nA\n"),
            "{second}"
        );
        assert!(second.contains("peers table"));
        assert_eq!(second.matches(BEGIN).count(), 1);
    }

    #[test]
    fn spreads_show_median_and_range() {
        let s = Spread {
            median: 2.0,
            min: 1.0,
            max: 3.0,
        };
        assert_eq!(spread(Some(s), 1), "2.0 (1.0–3.0)");
        let same = Spread {
            median: 2.0,
            min: 2.0,
            max: 2.0,
        };
        assert_eq!(spread(Some(same), 0), "2");
        assert_eq!(spread(None, 0), "-");
    }
}
