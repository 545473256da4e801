//! Compiling in a child process, so what a compile costs is not the
//! serving host's to pay.
//!
//! Cranelift's memory grows with the component: a JavaScript or Python
//! one (12-19 MB) peaks at about 340 MiB, and a hostile one within the
//! sources' 64 MiB limit can be made to need gigabytes. Compiled in the
//! host, that peak counts against the host's memory limit, and the kernel
//! kills the host when it is reached, taking every login with it. In a
//! child process the peak is the child's: it asks the kernel to kill it
//! first when memory runs out (`oom_score_adj` 1000), the host refuses
//! that one plugin version with the reason and keeps serving what it
//! served, and the compiler's memory goes back to the system when the
//! child exits. A compile that has not finished within [`COMPILE_TIMEOUT`]
//! is killed.
//!
//! The child is the host's own executable (`portcullis compile-worker`):
//! the same wasmtime with the same settings, so its artifacts load into
//! the host's engine. It reads the component on stdin and writes the
//! artifact on stdout; a failure is its exit status and one line on
//! stderr. The host turns on child compiles with
//! [`compile_in_child_processes`]; a process that does not (tests,
//! benchmarks, other embedders) compiles in-process.

use crate::RuntimeError;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The longest a compile may take before its process is killed. The
/// largest plugins we know (JavaScript, Python) compile in 5-25 s on two
/// cores.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);

/// The largest component the worker reads: the plugin sources' limit
/// (64 MiB) with room to spare.
const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// The largest artifact the host reads back: a 19 MB Python component
/// compiles to 55 MB.
const MAX_ARTIFACT_BYTES: u64 = 2 << 30;

/// The most of the worker's stderr kept for the error message.
const MAX_REASON_BYTES: u64 = 4096;

/// The subcommand of the host's executable that runs [`serve_worker`].
pub const WORKER_COMMAND: &str = "compile-worker";

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Compile every component of this process in a child process running
/// `program compile-worker` (the process's own executable, whose
/// `compile-worker` calls [`serve_worker`]). Call once, at start.
pub fn compile_in_child_processes(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

/// The program set by [`compile_in_child_processes`].
pub(crate) fn program() -> Option<&'static PathBuf> {
    PROGRAM.get()
}

/// Why a child compile gave no artifact.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChildError {
    /// The child could not be started: the caller may compile in-process.
    #[error("cannot start the compiler process {program}: {error}")]
    Spawn {
        program: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl From<ChildError> for RuntimeError {
    fn from(e: ChildError) -> Self {
        RuntimeError::Compile(e.to_string())
    }
}

/// Compile `component` in a child process running `program
/// compile-worker`, within `timeout`; the artifact.
pub(crate) fn compile(
    program: &std::path::Path,
    component: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ChildError> {
    let mut child = Command::new(program)
        .arg(WORKER_COMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| ChildError::Spawn {
            program: program.display().to_string(),
            error,
        })?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(ChildError::Failed("compiler process without pipes".into()));
    };
    // Feeding, draining and waiting each on their own thread: a child that
    // stops reading or writing must not block the others past the timeout.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            // A child that exits early closes the pipe; its status says why.
            let _ = stdin.write_all(component);
        });
        let reason = scope.spawn(move || {
            let mut reason = Vec::new();
            let _ = stderr.take(MAX_REASON_BYTES).read_to_end(&mut reason);
            reason
        });
        let child = &mut child;
        scope.spawn(move || {
            let mut artifact = Vec::new();
            let read = stdout
                .take(MAX_ARTIFACT_BYTES + 1)
                .read_to_end(&mut artifact);
            let _ = done_tx.send(read.map(|_| artifact));
        });
        let read = match done_rx.recv_timeout(timeout) {
            Ok(read) => read,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ChildError::Failed(format!(
                    "the compile did not finish within {}s; the compiler process was killed",
                    timeout.as_secs()
                )));
            }
        };
        let status = child
            .wait()
            .map_err(|e| ChildError::Failed(e.to_string()))?;
        let reason = reason.join().unwrap_or_default();
        let artifact =
            read.map_err(|e| ChildError::Failed(format!("reading the artifact: {e}")))?;
        if !status.success() {
            return Err(ChildError::Failed(failure(status, &reason)));
        }
        if artifact.len() as u64 > MAX_ARTIFACT_BYTES {
            return Err(ChildError::Failed(format!(
                "the artifact is over {MAX_ARTIFACT_BYTES} bytes"
            )));
        }
        Ok(artifact)
    })
}

/// What a failed child's status and stderr say, as one line.
fn failure(status: ExitStatus, stderr: &[u8]) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    let said = String::from_utf8_lossy(stderr);
    let said = said.trim();
    let said = portcullis_protocol::logsafe::escape(said);
    match status.signal() {
        Some(libc::SIGKILL) => {
            "the compiler process was killed (SIGKILL: most likely out of memory)".to_owned()
        }
        Some(signal) => format!("the compiler process ended by signal {signal}"),
        None if said.is_empty() => format!("the compiler process failed ({status})"),
        None => said.into_owned(),
    }
}

/// The child's side: read a component on stdin, compile it for the
/// engine `config` describes, write the artifact on stdout. The exit code
/// says whether it did; a failure is one line on stderr.
pub fn serve_worker(config: &wasmtime::Config) -> std::process::ExitCode {
    // Under memory pressure the kernel kills the compile, not the host.
    // Best effort: without /proc the child is an ordinary process.
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    match work(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("{reason}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn work(config: &wasmtime::Config) -> Result<(), String> {
    let mut component = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut component)
        .map_err(|e| format!("reading the component: {e}"))?;
    if component.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(format!("the component is over {MAX_COMPONENT_BYTES} bytes"));
    }
    let engine = wasmtime::Engine::new(config).map_err(|e| format!("{e:#}"))?;
    let artifact = engine
        .precompile_component(&component)
        .map_err(|e| format!("{e:#}"))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&artifact)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("writing the artifact: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A stand-in compiler: a shell script with `body`.
    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        let path = dir.join("compiler");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        path
    }

    fn failed(result: Result<Vec<u8>, ChildError>) -> String {
        match result {
            Err(ChildError::Failed(reason)) => reason,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn the_artifact_is_what_the_child_writes_after_reading_the_component() {
        let dir = tempfile::tempdir().unwrap();
        // Echo stdin back, with the argument first: the worker command.
        let echo = script(dir.path(), "printf '%s:' \"$1\"; cat");
        let artifact = compile(&echo, b"component", Duration::from_secs(20)).unwrap();
        assert_eq!(artifact, b"compile-worker:component");
    }

    #[test]
    fn a_failing_child_gives_its_reason_on_one_escaped_line() {
        let dir = tempfile::tempdir().unwrap();
        let fails = script(
            dir.path(),
            "cat >/dev/null; echo 'bad\nfunction' >&2; exit 1",
        );
        let reason = failed(compile(&fails, b"x", Duration::from_secs(20)));
        assert_eq!(reason, "bad\\nfunction");
        let silent = script(dir.path(), "exit 3");
        let reason = failed(compile(&silent, b"x", Duration::from_secs(20)));
        assert!(reason.contains("exit status: 3"), "{reason}");
    }

    #[test]
    fn a_child_that_floods_its_stderr_gives_a_bounded_reason() {
        let dir = tempfile::tempdir().unwrap();
        let floods = script(
            dir.path(),
            "cat >/dev/null; head -c 1000000 /dev/zero | tr '\\0' a >&2; exit 1",
        );
        let reason = failed(compile(&floods, b"x", Duration::from_secs(20)));
        assert!(reason.starts_with("aaaa"), "{reason}");
        assert_eq!(reason.len() as u64, MAX_REASON_BYTES);
    }

    #[test]
    fn a_child_killed_for_memory_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let killed = script(dir.path(), "kill -9 $$");
        let reason = failed(compile(&killed, b"x", Duration::from_secs(20)));
        assert!(reason.contains("out of memory"), "{reason}");
        let aborted = script(dir.path(), "kill -6 $$");
        let reason = failed(compile(&aborted, b"x", Duration::from_secs(20)));
        assert!(reason.contains("signal 6"), "{reason}");
    }

    #[test]
    fn a_compile_past_the_timeout_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        // Holds stdout open and never ends on its own.
        let stuck = script(dir.path(), "exec sleep 60");
        let started = std::time::Instant::now();
        let reason = failed(compile(&stuck, b"x", Duration::from_millis(300)));
        assert!(reason.contains("did not finish within"), "{reason}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "waited for the child"
        );
    }

    #[test]
    fn a_program_that_cannot_start_is_a_spawn_error() {
        let missing = std::path::Path::new("/nonexistent/portcullis");
        assert!(matches!(
            compile(missing, b"x", Duration::from_secs(1)),
            Err(ChildError::Spawn { .. })
        ));
    }
}
