//! Secrets other than seeds (`[nats] password` and `token`): written in
//! the file, or `env:NAME`, or `file:PATH`, resolved once at load like the
//! seeds' sources are, and never printed: `Debug` names where a secret came
//! from, errors name the variable or file, neither ever shows the value.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where a secret comes from, as the configuration spells it.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The value itself, written in the configuration file.
    Inline,
    /// `env:NAME`: an environment variable, read once at load.
    Env(String),
    /// `file:PATH`: a file (relative to the configuration file), read once
    /// at load; one trailing line ending is not part of the secret.
    File(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline => f.write_str("the configuration file"),
            SecretSource::Env(name) => write!(f, "environment variable {name}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A password or token. Its value is only reachable through
/// [`Secret::expose`]; `Debug` prints the source, never the value.
#[derive(Clone)]
pub struct Secret {
    source: SecretSource,
    /// Empty until [`Secret::resolve`] for `env:` and `file:` sources.
    value: Zeroizing<String>,
}

/// Why a secret could not be read. Names the source, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set (or not UTF-8)")]
    MissingEnv(String),
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{0} is empty")]
    Empty(SecretSource),
}

impl Secret {
    /// A secret given as its value (a command-line flag, a test).
    pub fn inline(value: impl Into<String>) -> Secret {
        Secret {
            source: SecretSource::Inline,
            value: Zeroizing::new(value.into()),
        }
    }

    /// A configuration value: `env:NAME`, `file:PATH` or the secret itself.
    /// Sources are read by [`Secret::resolve`].
    pub fn parse(text: &str) -> Secret {
        let source = if let Some(name) = text.strip_prefix("env:") {
            SecretSource::Env(name.to_owned())
        } else if let Some(path) = text.strip_prefix("file:") {
            SecretSource::File(PathBuf::from(path))
        } else {
            return Secret::inline(text);
        };
        Secret {
            source,
            value: Zeroizing::new(String::new()),
        }
    }

    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// The secret, for the one place that hands it to the NATS client.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Read an `env:` or `file:` secret (a relative path against `base`);
    /// `env` looks variables up (the process environment outside tests).
    pub(super) fn resolve(
        &mut self,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), SecretError> {
        let value = match &mut self.source {
            SecretSource::Inline => return Ok(()),
            SecretSource::Env(name) => {
                Zeroizing::new(env(name).ok_or_else(|| SecretError::MissingEnv(name.clone()))?)
            }
            SecretSource::File(path) => {
                *path = base.join(&*path);
                let mut text =
                    Zeroizing::new(std::fs::read_to_string(&*path).map_err(|error| {
                        SecretError::Read {
                            path: path.clone(),
                            error,
                        }
                    })?);
                // Editors and `echo` end files with a newline; the secret
                // does not include it.
                let end = text.trim_end_matches(['\n', '\r']).len();
                text.truncate(end);
                text
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty(self.source.clone()));
        }
        self.value = value;
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(from {}, redacted)", self.source)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        // The String serde hands over is dropped unzeroized: the value
        // also sits in the file's text, which the caller owns.
        Ok(Secret::parse(&String::deserialize(d)?))
    }
}
