//! The log's writer: standard error, one system call per poll of a batch.
//!
//! Every login writes its audit line, and a `write` on standard error was
//! one of the three system calls a login cost. The requests of one batch
//! are usually answered within one poll of their task, so
//! [`one_write_per_poll`] collects the lines that poll writes and sends
//! them in one `write` when the poll returns. Nothing is held across an
//! `await`: a line is on its way before the task next waits, as the
//! answers it goes with are, and lines written outside such a task (start
//! up, reloads, warnings) go straight to standard error.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// The lines of the poll running on this thread, when that poll
    /// collects them.
    static PENDING: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The writer to give the log subscriber (`with_writer(logline::stderr)`).
pub fn stderr() -> Stderr {
    Stderr
}

/// Standard error, or the current poll's lines inside [`one_write_per_poll`].
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let collected = PENDING.with(|p| match p.borrow_mut().as_mut() {
            Some(lines) => {
                lines.extend_from_slice(buf);
                true
            }
            None => false,
        });
        if collected { Ok(()) } else { write_out(buf) }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// One `write` of `lines` to standard error (in unit tests, to a list of
/// writes the test can read).
fn write_out(lines: &[u8]) -> io::Result<()> {
    #[cfg(test)]
    {
        tests::WRITES.with(|w| w.borrow_mut().push(lines.to_vec()));
        Ok(())
    }
    #[cfg(not(test))]
    io::stderr().write_all(lines)
}

/// `future`, with the log lines each of its polls writes sent in one
/// `write` as that poll returns (or unwinds).
pub fn one_write_per_poll<F: Future>(future: F) -> OneWritePerPoll<F> {
    OneWritePerPoll {
        future: Box::pin(future),
    }
}

/// See [`one_write_per_poll`].
pub struct OneWritePerPoll<F> {
    future: Pin<Box<F>>,
}

impl<F: Future> Future for OneWritePerPoll<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _collecting = Collecting::start();
        self.future.as_mut().poll(cx)
    }
}

/// Collects this thread's log lines while alive, writes them when dropped.
/// Inside another collecting poll it does nothing: the outer one writes.
struct Collecting {
    outermost: bool,
}

impl Collecting {
    fn start() -> Collecting {
        let outermost = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let outermost = p.is_none();
            if outermost {
                *p = Some(Vec::new());
            }
            outermost
        });
        Collecting { outermost }
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        let lines = PENDING.with(|p| p.borrow_mut().take()).unwrap_or_default();
        if !lines.is_empty() {
            // Where the log itself cannot be written there is nobody to
            // tell; the subscriber ignores its writer's errors the same way.
            let _ = write_out(&lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        pub(super) static WRITES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    fn collected() -> Option<Vec<u8>> {
        PENDING.with(|p| p.borrow().clone())
    }

    /// The writes made so far on this thread, as text; forgets them.
    fn writes() -> Vec<String> {
        WRITES.with(|w| {
            w.take()
                .into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect()
        })
    }

    #[test]
    fn outside_a_collecting_poll_each_line_is_its_own_write() {
        stderr().write_all(b"start-up\n").unwrap();
        stderr().write_all(b"reload\n").unwrap();
        assert_eq!(writes(), ["start-up\n", "reload\n"]);
    }

    #[test]
    fn lines_of_one_poll_are_collected_and_none_are_left_after_it() {
        let mut seen = None;
        let future = one_write_per_poll(async {
            stderr().write_all(b"one\n").unwrap();
            stderr().write_all(b"two\n").unwrap();
            seen = collected();
        });
        futures::executor::block_on(future);
        assert_eq!(seen.as_deref(), Some(&b"one\ntwo\n"[..]));
        assert_eq!(writes(), ["one\ntwo\n"], "one write for the poll");
        assert_eq!(collected(), None, "outside a poll, lines go straight out");
    }

    #[test]
    fn a_nested_poll_leaves_the_lines_to_the_outer_one() {
        let mut inner_saw = None;
        let mut outer_saw = None;
        let future = one_write_per_poll(async {
            stderr().write_all(b"outer\n").unwrap();
            one_write_per_poll(async {
                stderr().write_all(b"inner\n").unwrap();
                inner_saw = collected();
            })
            .await;
            outer_saw = collected();
        });
        futures::executor::block_on(future);
        assert_eq!(inner_saw.as_deref(), Some(&b"outer\ninner\n"[..]));
        assert_eq!(outer_saw.as_deref(), Some(&b"outer\ninner\n"[..]));
        assert_eq!(writes(), ["outer\ninner\n"]);
        assert_eq!(collected(), None);
    }

    #[test]
    fn a_poll_that_panics_still_lets_go_of_its_lines() {
        let result = std::panic::catch_unwind(|| {
            futures::executor::block_on(one_write_per_poll(async {
                stderr().write_all(b"before the panic\n").unwrap();
                panic!("plugin host bug");
            }))
        });
        assert!(result.is_err());
        assert_eq!(writes(), ["before the panic\n"], "written on unwind");
        assert_eq!(collected(), None);
    }

    #[test]
    fn lines_are_not_held_across_an_await() {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let mut future = std::pin::pin!(one_write_per_poll(async {
            stderr().write_all(b"first poll\n").unwrap();
            rx.await.unwrap();
            collected()
        }));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(future.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            collected(),
            None,
            "the first poll's line went out as it returned"
        );
        tx.send(()).unwrap();
        let Poll::Ready(second) = future.as_mut().poll(&mut cx) else {
            panic!("second poll should finish");
        };
        assert_eq!(
            second.as_deref(),
            Some(&b""[..]),
            "the second poll starts empty"
        );
    }
}
