//! What the runner reads from /proc: CPU time and resident memory of the
//! processes it started, and how busy the whole machine was (other
//! engineers' builds share the cores, and a number taken under foreign load
//! should say so).

use std::time::Duration;

/// Clock ticks per second of the `utime`/`stime` fields.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// User + system CPU time of process `pid` (all its threads, live or
/// exited), or `None` when it is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    stat_cpu_time(&format!("/proc/{pid}/stat"))
}

/// User + system CPU time of thread `tid` of this process (the oidc
/// targets' identity provider runs on one thread of the runner).
pub fn thread_cpu_time(tid: u32) -> Option<Duration> {
    stat_cpu_time(&format!("/proc/self/task/{tid}/stat"))
}

/// The calling thread's id, for [`thread_cpu_time`].
pub fn current_tid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

fn stat_cpu_time(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    let per_s = ticks_per_second();
    Some(
        Duration::from_secs(ticks / per_s)
            + Duration::from_nanos((ticks % per_s) * 1_000_000_000 / per_s),
    )
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// CPU time of `pid` and of its live children (PostgreSQL's backends are
/// the postmaster's children, one per pooled connection).
pub fn tree_cpu_time(pid: u32) -> Option<Duration> {
    let mut total = cpu_time(pid)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            total += cpu_time(child).unwrap_or_default();
        }
    }
    Some(total)
}

/// Resident memory now, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// Aggregate jiffies of /proc/stat: user nice system idle iowait irq softirq steal.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineTicks([u64; 8]);

impl MachineTicks {
    pub fn now() -> MachineTicks {
        let mut out = [0; 8];
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().next()
        {
            for (slot, v) in out.iter_mut().zip(line.split_whitespace().skip(1)) {
                *slot = v.parse().unwrap_or(0);
            }
        }
        MachineTicks(out)
    }

    /// Share of all CPUs busy between `self` and `later`, in percent.
    pub fn busy_pct(&self, later: &MachineTicks) -> f64 {
        let d: Vec<u64> = self
            .0
            .iter()
            .zip(later.0.iter())
            .map(|(a, b)| b.saturating_sub(*a))
            .collect();
        let total: u64 = d.iter().sum();
        if total == 0 {
            return 0.0;
        }
        100.0 * (total - d[3] - d[4]) as f64 / total as f64
    }
}

/// The CPU model and count, the kernel, for the report.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
        })
        .map(|kib| kib as f64 / (1024.0 * 1024.0))
        .unwrap_or(0.0);
    format!("{cpus} x {model}, {mem_gib:.0} GiB, Linux {kernel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_cpu_and_memory() {
        let me = std::process::id();
        // Burn CPU until the kernel has accounted at least one tick (10 ms
        // by default), bounded in wall time for a busy machine.
        let spin = std::time::Instant::now();
        while cpu_time(me).is_some_and(|t| t.is_zero()) && spin.elapsed() < Duration::from_secs(10)
        {
            for i in 0..100_000u64 {
                std::hint::black_box(i);
            }
        }
        assert!(cpu_time(me).is_some_and(|t| !t.is_zero()));
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
        assert!(status_kib(me, "VmHWM").is_some_and(|kib| kib > 0));
        assert!(cpu_time(u32::MAX).is_none());
        let a = MachineTicks::now();
        let b = MachineTicks::now();
        assert!((0.0..=100.0).contains(&a.busy_pct(&b)));
        assert!(machine().contains("Linux"));
    }

    /// A thread's CPU is its own: a thread that spins is charged, one that
    /// only waits is not.
    #[test]
    fn reads_one_threads_cpu() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let idle = std::thread::spawn(move || {
            tx.send(current_tid()).unwrap();
            let _ = done_rx.recv_timeout(Duration::from_secs(30));
        });
        let idle_tid = rx.recv().unwrap();
        let me = current_tid();
        assert_ne!(me, idle_tid);
        let spin = std::time::Instant::now();
        while thread_cpu_time(me).is_some_and(|t| t < Duration::from_millis(50))
            && spin.elapsed() < Duration::from_secs(10)
        {
            for i in 0..100_000u64 {
                std::hint::black_box(i);
            }
        }
        assert!(thread_cpu_time(me).is_some_and(|t| t >= Duration::from_millis(50)));
        assert!(thread_cpu_time(idle_tid).is_some_and(|t| t < Duration::from_millis(50)));
        done_tx.send(()).unwrap();
        idle.join().unwrap();
        assert!(
            thread_cpu_time(idle_tid).is_none(),
            "an ended thread is gone"
        );
    }
}
