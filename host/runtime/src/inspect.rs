//! What a component is, read before anything compiles it: top-level imports
//! and exports, and which version of the Portcullis WIT it targets. Used to
//! refuse incompatible plugins with a clear message and by
//! `portcullis plugin inspect`.

use super::bindings::PLUGIN_INTERFACE;
use serde::Serialize;
use wasmparser::{Encoding, Parser, Payload};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ComponentInfo {
    /// Size of the component in bytes.
    pub size: usize,
    /// Version of `portcullis:authenticator/plugin` it exports, if any.
    pub plugin_version: Option<String>,
    /// Top-level import names (the capabilities it asks for).
    pub imports: Vec<String>,
    /// Top-level export names.
    pub exports: Vec<String>,
}

/// The first bytes of every WebAssembly binary, module or component.
const WASM_MAGIC: &[u8] = b"\0asm";

/// Read a component's top-level imports and exports.
pub fn inspect(bytes: &[u8]) -> Result<ComponentInfo, String> {
    let mut info = ComponentInfo {
        size: bytes.len(),
        plugin_version: None,
        imports: Vec::new(),
        exports: Vec::new(),
    };
    if !bytes.starts_with(WASM_MAGIC) {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(WASM_MAGIC.len())]);
        return Err(format!(
            "not a WebAssembly file: it starts with {start:?}, not \"\\0asm\""
        ));
    }
    // Nested modules and components report their own sections; only
    // depth 0 is the plugin's interface.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        // wasmparser's messages may span lines (a debug dump of bytes):
        // one line is what a log line and `check` can show.
        let payload = payload.map_err(|e| {
            let reason = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            format!("not a valid WebAssembly component: {reason}")
        })?;
        match payload {
            Payload::Version { encoding, .. } if depth == 0 && encoding == Encoding::Module => {
                return Err("this is a core WebAssembly module, not a component: build the plugin \
                            with `--target wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
                    .into());
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| e.to_string())?;
                    info.imports.push(import.name.0.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    info.exports.push(export.name.0.to_owned());
                }
            }
            _ => {}
        }
    }
    info.plugin_version = info.exports.iter().find_map(|name| {
        let (iface, version) = name.split_once('@')?;
        (iface == PLUGIN_INTERFACE).then(|| version.to_owned())
    });
    Ok(info)
}

/// Semver compatibility of a plugin's WIT version with the host's: same
/// major, and for 0.x the same minor.
pub fn compatible(plugin: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(plugin), parse(host)) {
        (Some((0, pm)), Some((0, hm))) => pm == hm,
        (Some((pmaj, _)), Some((hmaj, _))) => pmaj == hmaj,
        _ => false,
    }
}

/// The WIT version this host serves that a plugin built for `plugin`
/// loads as, if any: what `Runtime::prepare` picks the bindings by, and
/// what `plugin inspect` and `plugin push` check before a load would.
pub fn served(plugin: &str) -> Option<&'static str> {
    super::bindings::WIT_VERSIONS
        .into_iter()
        .find(|host| compatible(plugin, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_versions() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("garbage", "0.1.0"));
    }

    #[test]
    fn core_modules_and_garbage_are_not_components() {
        // The smallest core module: magic + version 1.
        let err = inspect(b"\0asm\x01\0\0\0").unwrap_err();
        assert!(err.contains("core WebAssembly module"), "{err}");
        let err = inspect(b"PK\x03\x04 zip file").unwrap_err();
        assert_eq!(
            err,
            r#"not a WebAssembly file: it starts with "PK\u{3}\u{4}", not "\0asm""#
        );
        let err = inspect(b"hello\n").unwrap_err();
        assert_eq!(
            err,
            r#"not a WebAssembly file: it starts with "hell", not "\0asm""#
        );
        // Truncated after the magic: wasmparser's reason, on one line.
        let err = inspect(b"\0asm\x0d\0").unwrap_err();
        assert!(
            err.starts_with("not a valid WebAssembly component: "),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
}
