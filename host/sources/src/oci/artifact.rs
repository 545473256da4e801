//! The CNCF Wasm OCI artifact a component is pushed as: one
//! `application/wasm` layer and a `application/vnd.wasm.config.v0+json`
//! config naming the component's WIT imports and exports, as `wkg oci push`
//! writes it, so that other Wasm tooling reads what Portcullis pushes.
//!
//! Written here rather than taken from a wrapper crate because the config
//! is a few fields, and the wrappers pin their own wasm-tools versions
//! beside the ones wasmtime brings: every one of those is another copy of
//! the WIT parser in every build.

use portcullis_protocol::digest::Digest;
use serde::Serialize;
use std::time::SystemTime;
use wit_parser::decoding::{DecodedWasm, decode};

/// The media type of a component's one layer.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The media type of the artifact's config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// The artifact config (field names as the Wasm OCI format spells them;
/// `author` and `target` are written as null, as `wkg` writes them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Config<'a> {
    created: String,
    author: Option<&'a str>,
    architecture: &'static str,
    os: &'static str,
    layer_digests: [&'a str; 1],
    component: Component,
}

#[derive(Serialize)]
struct Component {
    exports: Vec<String>,
    imports: Vec<String>,
    target: Option<String>,
}

/// The config blob of `component`, whose layer digest is `layer`: the WIT
/// names of its imports and exports. Refused, with the decoder's reason,
/// unless `component` is a component (a core module or a WIT package is
/// not a plugin).
pub fn component_config(
    component: &[u8],
    layer: &Digest,
    created: SystemTime,
) -> Result<Vec<u8>, String> {
    if !is_component(component) {
        return Err("not a component (a core module, or not WebAssembly)".into());
    }
    let (resolve, world) = match decode(component).map_err(|e| format!("{e:#}"))? {
        DecodedWasm::Component(resolve, world) => (resolve, world),
        DecodedWasm::WitPackage(..) => return Err("a WIT package, not a component".into()),
    };
    let world = &resolve.worlds[world];
    let names = |items: &wit_parser::IndexMap<wit_parser::WorldKey, _>| {
        items.keys().map(|k| resolve.name_world_key(k)).collect()
    };
    let config = Config {
        created: humantime::format_rfc3339_seconds(created).to_string(),
        author: None,
        architecture: "wasm",
        os: "wasip2",
        layer_digests: [layer.as_str()],
        component: Component {
            exports: names(&world.exports),
            imports: names(&world.imports),
            target: None,
        },
    };
    Ok(serde_json::to_vec(&config).expect("the config serializes"))
}

/// The preamble is `\0asm`, a 16-bit version and a 16-bit layer: layer 1
/// is a component, 0 a core module (which the decoder would also accept,
/// as a component of no WIT).
fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm") && bytes.get(6..8) == Some(&[1, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: no imports, no exports.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";
    /// The smallest core module.
    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn a_component_config_names_its_layer_and_platform() {
        let layer = Digest::of(EMPTY_COMPONENT);
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_764_950_400);
        let raw = component_config(EMPTY_COMPONENT, &layer, at).expect("a component");
        let config: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            config,
            serde_json::json!({
                "created": "2025-12-05T16:00:00Z",
                "author": null,
                "architecture": "wasm",
                "os": "wasip2",
                "layerDigests": [layer.as_str()],
                "component": { "exports": [], "imports": [], "target": null },
            })
        );
    }

    #[test]
    fn what_is_not_a_component_is_refused() {
        let layer = Digest::of(EMPTY_MODULE);
        for bytes in [EMPTY_MODULE, b"not wasm".as_slice(), b"".as_slice()] {
            assert!(
                component_config(bytes, &layer, SystemTime::now()).is_err(),
                "{bytes:?}"
            );
        }
    }
}
