//! Core modules converted to components on load, as Spin converts them (`spin-componentize`), so a
//! `.wasm` Spin runs is a `.wasm` this host runs:
//!
//! - a component is used as it is;
//! - a core module built by wit-bindgen 0.5 or newer (its `component-type` sections say so: every
//!   current Spin SDK on `wasm32-wasip1`) is wrapped with the WASI 0.1 → 0.2 reactor adapter;
//! - a core module with `_start` and no sign of wit-bindgen (a WASI 0.1 command) is wrapped with the
//!   command adapter, after Spin's check for the wasi-sdk < 19 allocator bug;
//! - anything else is refused with the reason: a module from wit-bindgen 0.2 (Spin 1's SDKs) needs
//!   Spin's own adapter, which is built from Spin's sources and not published, and a wit-bindgen version
//!   Spin cannot adapt is refused by Spin too.
//!
//! The adapters are the ones wasmtime publishes for its WASI version
//! (`wasi-preview1-component-adapter-provider`), the same modules Spin builds from wasmtime's sources.
//! Conversion runs before compiling, so a converted module is cached as machine code like any component.

use anyhow::{anyhow, bail, Context, Result};
use std::borrow::Cow;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME as ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER as COMMAND_ADAPTER,
    WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER as REACTOR_ADAPTER,
};
use wasmparser::{Encoding, ExternalKind, Parser, Payload};

/// Exports by which wit-bindgen (old and new) lets the host allocate in the guest.
const REALLOC_EXPORTS: [&str; 2] = ["cabi_realloc", "canonical_abi_realloc"];

/// The clang release from wasi-sdk 19, the first without the allocator bug of wasi-libc #377.
const FIRST_SAFE_CLANG: (u16, u16, u16) = (15, 0, 7);

/// `bytes` as a component: itself when it is one, else the module converted as Spin converts it.
pub fn if_necessary(bytes: &[u8]) -> Result<Cow<'_, [u8]>> {
    match encoding(bytes)? {
        Encoding::Component => Ok(Cow::Borrowed(bytes)),
        Encoding::Module => convert(bytes).map(Cow::Owned),
    }
}

fn encoding(bytes: &[u8]) -> Result<Encoding> {
    match Parser::new(0).parse_all(bytes).next() {
        Some(Ok(Payload::Version { encoding, .. })) => Ok(encoding),
        Some(Err(e)) => Err(anyhow!(e).context("not a WebAssembly binary")),
        _ => bail!("not a WebAssembly binary"),
    }
}

/// What converting a module needs to know about it.
#[derive(Debug, Default)]
struct ModuleInfo {
    /// The wit-bindgen that wrote its `component-type` sections, and its version, when they name one.
    bindgen: Option<(String, String)>,
    /// It has `component-type` sections at all.
    has_bindgen_metadata: bool,
    /// Why they do not decode, when they do not.
    bindgen_error: Option<String>,
    /// It exports a canonical ABI `realloc`.
    has_realloc: bool,
    /// It exports `_start`: a command.
    has_start: bool,
    /// The clang that compiled it (its `producers` section), when named.
    clang: Option<String>,
}

impl ModuleInfo {
    fn of(module: &[u8]) -> Result<ModuleInfo> {
        let mut info = ModuleInfo::default();
        for payload in Parser::new(0).parse_all(module) {
            match payload.context("reading the module")? {
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.context("reading the module's exports")?;
                        if export.kind == ExternalKind::Func {
                            info.has_realloc |= REALLOC_EXPORTS.contains(&export.name);
                            info.has_start |= export.name == "_start";
                        }
                    }
                }
                Payload::CustomSection(section) if section.name() == "producers" => {
                    let producers = wasm_metadata::Producers::from_bytes(section.data(), section.data_offset())
                        .context("reading the module's producers section")?;
                    info.clang = producers.get("processed-by").and_then(|f| f.get("clang").cloned());
                }
                Payload::CustomSection(section) if section.name().starts_with("component-type") => {
                    info.has_bindgen_metadata = true;
                }
                _ => {}
            }
        }
        if info.has_bindgen_metadata {
            // As Spin: metadata it cannot read counts as none (the module may still be an old one).
            match wit_component::metadata::decode(module) {
                Ok((_, bindgen)) => {
                    info.bindgen = bindgen.producers.as_ref().and_then(|p| p.get("processed-by")).and_then(|field| {
                        field
                            .iter()
                            .find(|(name, _)| name.starts_with("wit-bindgen"))
                            .map(|(name, version)| (name.clone(), version.clone()))
                    });
                }
                Err(e) => info.bindgen_error = Some(format!("{e:#}")),
            }
        }
        Ok(info)
    }

    fn probably_wit_bindgen(&self) -> bool {
        self.has_bindgen_metadata || self.has_realloc
    }
}

/// Whether Spin adapts modules of wit-bindgen `version`: 0.5 and later 0.x releases, written
/// `major.minor` or `major.minor.patch`.
fn adaptable_bindgen(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    let number = |i: usize| parts.get(i).and_then(|p| p.parse::<u8>().ok());
    match (number(0), number(1)) {
        (Some(0), Some(minor)) => minor >= 5 && parts.len() <= 3,
        _ => false,
    }
}

fn convert(module: &[u8]) -> Result<Vec<u8>> {
    let info = ModuleInfo::of(module)?;
    if let Some((tool, version)) = &info.bindgen {
        if !adaptable_bindgen(version) {
            bail!("cannot adapt a core module made with {tool} {version} (Spin adapts wit-bindgen 0.5 to 0.x)");
        }
        return encode(module, REACTOR_ADAPTER).context("converting a wit-bindgen core module to a component");
    }
    if info.has_start && !info.probably_wit_bindgen() {
        check_clang(info.clang.as_deref())?;
        return encode(module, COMMAND_ADAPTER).context("converting a WASI 0.1 command module to a component");
    }
    let unread = info.bindgen_error.map(|e| format!(" (its component-type sections do not decode: {e})"));
    bail!(
        "a core module from wit-bindgen 0.2 (Spin 1's SDKs) or of unknown make{}: Spin converts those with an \
         adapter of its own, which this host does not carry; rebuild it with a current Spin SDK",
        unread.unwrap_or_default()
    )
}

fn encode(module: &[u8], adapter: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default().validate(true).module(module)?.adapter(ADAPTER_NAME, adapter)?.encode()
}

/// Spin's refusal of modules from wasi-sdk before 19 (clang before 15.0.7): their allocator corrupts
/// memory under the adapter (wasi-libc #377).
fn check_clang(clang: Option<&str>) -> Result<()> {
    let Some(version) = clang else { return Ok(()) };
    let plain = version.split(' ').next().unwrap_or(version);
    let plain = plain.strip_suffix("-wasi-sdk").unwrap_or(plain);
    let parts: Vec<Option<u16>> = plain.split('.').map(|p| p.parse().ok()).collect();
    match parts[..] {
        [Some(major), Some(minor), Some(patch)] if (major, minor, patch) < FIRST_SAFE_CLANG => bail!(
            "this module was compiled with wasi-sdk before 19 (clang {version}), whose allocator has a memory \
             safety bug (wasi-libc #377); Spin refuses it too: rebuild it with a newer wasi-sdk"
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
