//! One line for an error and its causes, each said once.
//!
//! Error types here put their cause in their own message ("cannot read X:
//! No such file or directory") and also expose it as `source()`, so a
//! caller that walks the chain, as anyhow's `{:#}` does, prints every
//! cause again at each layer. [`Chain`] walks it and leaves out a cause
//! whose text the line already holds, so both kinds of layer (those that
//! say their cause and those that only add context) read once.

use std::error::Error;
use std::fmt;

/// Displays `error` and then each cause not already said, `: `-separated.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            cause = error.source();
        }
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Layer {
        #[error("cannot read x.wasm: {0}")]
        Says(#[source] std::io::Error),
        #[error("plugin users: fetch: {0}")]
        Wraps(#[source] Box<Layer>),
        #[error("plugin users")]
        Context(#[source] Box<Layer>),
    }

    fn missing() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
    }

    #[test]
    fn each_cause_is_said_once() {
        let error = Layer::Wraps(Box::new(Layer::Says(missing())));
        assert_eq!(
            Chain(&error).to_string(),
            "plugin users: fetch: cannot read x.wasm: No such file or directory"
        );
        // A layer that only adds context still shows what it wraps.
        let error = Layer::Context(Box::new(Layer::Says(missing())));
        assert_eq!(
            Chain(&error).to_string(),
            "plugin users: cannot read x.wasm: No such file or directory"
        );
    }
}
