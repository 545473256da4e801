//! The newest release each remote source delivered, remembered so that an
//! older one cannot come back unnoticed.
//!
//! A signature proves who released something, not that it is still the
//! release to run: whoever can move a tag or write a bucket can put back
//! an older release whose signature still holds (with its old
//! configuration, say a revoked password). Releases therefore carry a
//! signed sequence, and a host refuses a release of a source whose
//! sequence is below the newest it accepted from that source, naming both
//! and the way to bring an old release back on purpose: pin its digest, or
//! sign it anew (a rollback is a new release).
//!
//! What was accepted is kept per source (`nats-object://BUCKET/NAME`, or
//! `oci://REGISTRY/REPO:TAG`) in `releases.json` under the cache
//! directory, so a restart remembers it, and in memory without one. The
//! file is written and read as the caches' files are (see
//! [`portcullis_protocol::files`]): private to the host's user, and
//! refused when someone else could have written it. Unlike a corrupt
//! cache entry, which is dropped and fetched again, a file that cannot be
//! trusted or read is an error: forgetting it is exactly what an attacker
//! who wants an old release back would arrange. Remote plugins do not load
//! until it is fixed, nor while the cache directory itself may not be
//! trusted (the caches then go unused, but a host that runs remote
//! releases needs a trusted place to remember them).
//!
//! Hosts that share a cache directory share the file (a lock serialises
//! them): they should serve the same fleet, since a source is known by its
//! bucket and name or its reference, not by the NATS system or registry
//! behind it.

use portcullis_protocol::files::{Untrusted, open_trusted, private_dir, write_atomic};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The state file, under the cache directory.
pub const STATE_FILE: &str = "releases.json";
/// Held while the state file is read, checked and written.
const LOCK_FILE: &str = "releases.lock";
/// Version of the file's format.
const FORMAT: u32 = 1;
/// Far more than a host has sources; bounds what a planted file makes us
/// read.
const MAX_STATE_BYTES: u64 = 4 << 20;
/// Longest source name or content description taken from the file.
const MAX_FIELD: usize = 2048;

/// The newest release accepted from one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// Its signed sequence (0: signed by a version without sequences).
    pub sequence: u64,
    /// What it delivered (digests), to recognise the same release.
    pub content: String,
    /// When it was first accepted, Unix seconds.
    pub accepted_at: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    sources: BTreeMap<String, Accepted>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "{origin}: refused an older release: sequence {sequence} ({content}) is not newer than \
         sequence {newest} ({newest_content}), the newest accepted from it; whoever can write \
         where it is published can put an older signed release back. {way_out}"
    )]
    Older {
        origin: String,
        sequence: u64,
        content: String,
        newest: u64,
        newest_content: String,
        way_out: String,
    },
    #[error(
        "{}: {why}; it records the newest release accepted from each remote source, so none \
         is loaded until it is fixed (remove it only if you know how it got this way: an older \
         release would then be accepted once)",
        path.display()
    )]
    State { path: PathBuf, why: StateWhy },
}

/// What is wrong with the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateWhy {
    #[error("{0}")]
    Untrusted(#[source] Untrusted),
    #[error("cannot be read: {0}")]
    Read(#[source] io::Error),
    #[error("is over {MAX_STATE_BYTES} bytes")]
    TooLarge,
    #[error("is not a valid release record: {0}")]
    Invalid(String),
    #[error("cannot be written: {0}")]
    Write(#[source] io::Error),
    #[error("cannot be locked: {0}")]
    Lock(#[source] io::Error),
    #[error("is not used: {0}")]
    Directory(String),
}

/// The newest release accepted per source; clones share it.
#[derive(Debug, Clone, Default)]
pub struct ReleaseLog {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The state file; `None`: remembered for this process only.
    file: Option<PathBuf>,
    /// Why the cache directory may not hold the file: every remote
    /// release is refused while it is so.
    unusable: Option<String>,
    accepted: BTreeMap<String, Accepted>,
}

impl ReleaseLog {
    /// Remembered for the life of the process only.
    pub fn in_memory() -> ReleaseLog {
        ReleaseLog::default()
    }

    /// Remembered in `cache_dir`'s state file, created private if missing;
    /// refused if the directory may not be trusted.
    pub fn persisted(cache_dir: &Path) -> Result<ReleaseLog, Untrusted> {
        private_dir(cache_dir)?;
        Ok(ReleaseLog::with(Inner {
            file: Some(cache_dir.join(STATE_FILE)),
            ..Inner::default()
        }))
    }

    fn with(inner: Inner) -> ReleaseLog {
        ReleaseLog {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    /// [`ReleaseLog::persisted`] under `cache_dir` if there is one. If that
    /// directory may not be trusted, every remote release is refused
    /// (saying why) rather than remembered in memory only: a restart would
    /// forget, and the directory is where the operator said to remember.
    pub fn new(cache_dir: Option<&Path>) -> ReleaseLog {
        let Some(dir) = cache_dir else {
            return ReleaseLog::in_memory();
        };
        ReleaseLog::persisted(dir).unwrap_or_else(|why| {
            tracing::warn!(reason = %why, "remote plugins will not load: the newest release of each cannot be remembered in this cache directory");
            ReleaseLog::with(Inner {
                file: Some(dir.join(STATE_FILE)),
                unusable: Some(why.to_string()),
                ..Inner::default()
            })
        })
    }

    /// Accept release `sequence` of `origin`, delivering `content`, if it
    /// is not older than the newest accepted from `origin`, and remember
    /// it. The same release again is accepted whatever sequence it shows
    /// now (another trusted signer's signature may be the newest one left).
    /// Two releases without sequences are not ordered: both are accepted.
    /// `way_out` says how to run an older release on purpose.
    pub fn accept(
        &self,
        origin: &str,
        sequence: u64,
        content: &str,
        way_out: impl FnOnce() -> String,
    ) -> Result<(), ReleaseError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.usable()?;
        let file = inner.file.clone();
        let _lock = match &file {
            Some(path) => {
                let lock = lock(path)?;
                let on_disk = read(path)?;
                inner.merge(on_disk.sources);
                Some(lock)
            }
            None => None,
        };
        let newest = inner.accepted.get(origin);
        let record = match newest {
            None => true,
            Some(newest) if newest.content == content => sequence > newest.sequence,
            Some(newest) if sequence > newest.sequence => true,
            Some(newest) if sequence == 0 && newest.sequence == 0 => true,
            Some(newest) => {
                return Err(ReleaseError::Older {
                    origin: origin.to_owned(),
                    sequence,
                    content: content.to_owned(),
                    newest: newest.sequence,
                    newest_content: newest.content.clone(),
                    way_out: way_out(),
                });
            }
        };
        if !record {
            return Ok(());
        }
        inner.accepted.insert(
            origin.to_owned(),
            Accepted {
                sequence,
                content: content.to_owned(),
                accepted_at: portcullis_protocol::time::unix_now(),
            },
        );
        if let Some(path) = &file {
            let state = StateFile {
                format: FORMAT,
                sources: inner.accepted.clone(),
            };
            let text = serde_json::to_vec_pretty(&state).map_err(io::Error::other);
            text.and_then(|text| write_atomic(path, &text))
                .map_err(|e| state_error(path, StateWhy::Write(e)))?;
        }
        Ok(())
    }

    /// The newest release accepted from `origin` (read from the state file
    /// too, when there is one).
    pub fn newest(&self, origin: &str) -> Result<Option<Accepted>, ReleaseError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.usable()?;
        if let Some(path) = inner.file.clone() {
            let _lock = lock(&path)?;
            inner.merge(read(&path)?.sources);
        }
        Ok(inner.accepted.get(origin).cloned())
    }
}

impl Inner {
    fn usable(&self) -> Result<(), ReleaseError> {
        match (&self.unusable, &self.file) {
            (Some(why), Some(path)) => Err(state_error(path, StateWhy::Directory(why.clone()))),
            _ => Ok(()),
        }
    }

    /// Take what another host sharing the file accepted, where it is newer.
    fn merge(&mut self, other: BTreeMap<String, Accepted>) {
        for (origin, theirs) in other {
            match self.accepted.get(&origin) {
                Some(ours) if ours.sequence >= theirs.sequence => {}
                _ => {
                    self.accepted.insert(origin, theirs);
                }
            }
        }
    }
}

fn state_error(path: &Path, why: StateWhy) -> ReleaseError {
    ReleaseError::State {
        path: path.to_owned(),
        why,
    }
}

/// An exclusive lock on the lock file beside `state`, held until dropped.
fn lock(state: &Path) -> Result<std::fs::File, ReleaseError> {
    let path = state.with_file_name(LOCK_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&path)
        .map_err(|e| state_error(state, StateWhy::Lock(e)))?;
    file.lock()
        .map_err(|e| state_error(state, StateWhy::Lock(e)))?;
    Ok(file)
}

/// The state file, validated; empty if there is none yet.
fn read(path: &Path) -> Result<StateFile, ReleaseError> {
    let fail = |why| state_error(path, why);
    let Some(file) = open_trusted(path).map_err(|e| fail(StateWhy::Untrusted(e)))? else {
        return Ok(StateFile {
            format: FORMAT,
            sources: BTreeMap::new(),
        });
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(StateWhy::Read(e)))?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(fail(StateWhy::TooLarge));
    }
    let state: StateFile =
        serde_json::from_slice(&bytes).map_err(|e| fail(StateWhy::Invalid(e.to_string())))?;
    if state.format != FORMAT {
        return Err(fail(StateWhy::Invalid(format!(
            "format {}, this version reads {FORMAT}",
            state.format
        ))));
    }
    for (origin, accepted) in &state.sources {
        let known =
            origin.starts_with(crate::OBJECT_SCHEME) || origin.starts_with(crate::oci::OCI_SCHEME);
        if !known || origin.len() > MAX_FIELD || accepted.content.len() > MAX_FIELD {
            return Err(fail(StateWhy::Invalid(format!(
                "an entry is not a remote source's: {:?}",
                origin.chars().take(80).collect::<String>()
            ))));
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const FLEET: &str = "nats-object://portcullis_plugins/users";
    const TAG: &str = "oci://127.0.0.1:5000/auth/users:stable";

    fn way_out() -> String {
        "sign it anew".into()
    }

    #[test]
    fn an_older_release_is_refused_the_same_one_accepted_again() {
        let log = ReleaseLog::in_memory();
        log.accept(FLEET, 10, "sha256:aa", way_out).unwrap();
        log.accept(FLEET, 10, "sha256:aa", way_out).unwrap();
        log.accept(FLEET, 12, "sha256:bb", way_out).unwrap();
        let refused = log.accept(FLEET, 10, "sha256:aa", way_out).unwrap_err();
        assert!(matches!(
            refused,
            ReleaseError::Older {
                sequence: 10,
                newest: 12,
                ..
            }
        ));
        let message = refused.to_string();
        for expected in [FLEET, "10", "12", "sha256:aa", "sha256:bb", "sign it anew"] {
            assert!(message.contains(expected), "{expected}: {message}");
        }
        // Another release under the same sequence is not newer either.
        assert!(log.accept(FLEET, 12, "sha256:cc", way_out).is_err());
        // The same release, now vouched for with an older signature only
        // (a signer left trusted_signers): still the release running.
        log.accept(FLEET, 11, "sha256:bb", way_out).unwrap();
        assert_eq!(log.newest(FLEET).unwrap().unwrap().sequence, 12);
        // Other sources are their own.
        log.accept(TAG, 1, "sha256:aa", way_out).unwrap();
        // Releases signed before sequences existed are not ordered, until
        // one with a sequence is accepted.
        let legacy = "nats-object://b/legacy";
        log.accept(legacy, 0, "sha256:aa", way_out).unwrap();
        log.accept(legacy, 0, "sha256:bb", way_out).unwrap();
        log.accept(legacy, 5, "sha256:cc", way_out).unwrap();
        assert!(log.accept(legacy, 0, "sha256:aa", way_out).is_err());
    }

    #[test]
    fn the_newest_release_survives_a_restart_and_is_shared() {
        let dir = tempfile::tempdir().unwrap();
        let log = ReleaseLog::persisted(dir.path()).unwrap();
        log.accept(FLEET, 12, "sha256:bb", way_out).unwrap();
        let path = dir.path().join(STATE_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let restarted = ReleaseLog::persisted(dir.path()).unwrap();
        assert!(restarted.accept(FLEET, 10, "sha256:aa", way_out).is_err());
        // A second host on the same cache moves on; the first sees it.
        restarted.accept(FLEET, 14, "sha256:cc", way_out).unwrap();
        assert!(log.accept(FLEET, 12, "sha256:bb", way_out).is_err());
        // Without a cache directory: for this process.
        let memory = ReleaseLog::new(None);
        memory.accept(FLEET, 10, "sha256:aa", way_out).unwrap();
        assert!(
            memory
                .clone()
                .accept(FLEET, 9, "sha256:zz", way_out)
                .is_err()
        );
    }

    /// Someone who can write files as another user, or edit this one,
    /// wants the host to forget: every such file is an error, never a
    /// fresh start.
    #[test]
    fn a_state_file_others_could_write_or_that_does_not_parse_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = ReleaseLog::persisted(dir.path()).unwrap();
        log.accept(FLEET, 12, "sha256:bb", way_out).unwrap();
        let path = dir.path().join(STATE_FILE);
        let good = std::fs::read(&path).unwrap();
        let fresh = || ReleaseLog::persisted(dir.path()).unwrap();

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let refused = fresh().accept(FLEET, 10, "sha256:aa", way_out).unwrap_err();
        assert!(
            matches!(
                &refused,
                ReleaseError::State {
                    why: StateWhy::Untrusted(_),
                    ..
                }
            ),
            "{refused}"
        );
        assert!(refused.to_string().contains(STATE_FILE), "{refused}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

        for (what, text) in [
            ("truncated", good[..good.len() / 2].to_vec()),
            ("empty", Vec::new()),
            ("other format", br#"{"format": 2, "sources": {}}"#.to_vec()),
            (
                "unknown field",
                br#"{"format": 1, "sources": {}, "x": 1}"#.to_vec(),
            ),
            (
                "not a source",
                br#"{"format": 1, "sources": {"/etc/passwd": {"sequence": 1, "content": "", "accepted_at": 0}}}"#
                    .to_vec(),
            ),
        ] {
            std::fs::write(&path, &text).unwrap();
            let refused = fresh().accept(FLEET, 10, "sha256:aa", way_out);
            assert!(
                matches!(refused, Err(ReleaseError::State { why: StateWhy::Invalid(_), .. })),
                "{what}: {refused:?}"
            );
        }
        std::fs::write(&path, vec![b' '; MAX_STATE_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            fresh().accept(FLEET, 10, "sha256:aa", way_out),
            Err(ReleaseError::State {
                why: StateWhy::TooLarge,
                ..
            })
        ));

        // A directory others may write is not used, and not replaced by
        // memory: a restart would forget.
        std::fs::write(&path, &good).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ReleaseLog::persisted(dir.path()).is_err());
        let refused = ReleaseLog::new(Some(dir.path()))
            .accept(FLEET, 14, "sha256:cc", way_out)
            .unwrap_err();
        assert!(
            matches!(
                &refused,
                ReleaseError::State {
                    why: StateWhy::Directory(_),
                    ..
                }
            ),
            "{refused}"
        );
        assert!(
            refused
                .to_string()
                .contains("writable by its group or others"),
            "{refused}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}
