//! Compiling components once (a core module converted to one first: [`componentize`](crate::componentize)):
//! each `.wasm` is precompiled to a `.cwasm` named by the SHA-256 of its bytes
//! and of the engine's compatibility hash, so a restart of the host (or the next test) loads machine code
//! instead of compiling again.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Distinguishes temporary files of concurrent compilations within this process.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

/// Loads `wasm`, from the cache in `cache_dir` when present, compiling and caching otherwise.
pub fn load(engine: &Engine, wasm: &Path, cache_dir: &Path) -> Result<Component> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading component {}", wasm.display()))?;
    let cached = cache_path(engine, &bytes, cache_dir);
    if cached.exists() {
        // SAFETY: the file was written by `Engine::precompile_component` of an engine with the same
        // compatibility hash (it is part of the file name) into a directory only this host writes, and
        // it is named by the hash of its source, so it is exactly what we would compile now.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize_file(engine, &cached) };
        match component {
            Ok(component) => return Ok(component),
            Err(_) => {
                let _ = std::fs::remove_file(&cached); // stale or truncated: recompile below
            }
        }
    }
    // A core module becomes a component first, as Spin converts it (the cache is named by the bytes on
    // disk, so a converted module is converted once).
    let component = crate::componentize::if_necessary(&bytes).with_context(|| format!("loading {}", wasm.display()))?;
    let compiled = engine
        .precompile_component(&component)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling {}", wasm.display()))?;
    std::fs::create_dir_all(cache_dir).with_context(|| format!("creating {}", cache_dir.display()))?;
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = temp_path(&cached);
    std::fs::write(&tmp, &compiled).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &cached).with_context(|| format!("renaming to {}", cached.display()))?;
    // SAFETY: `compiled` was produced just now by this engine.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, &compiled) }?;
    Ok(component)
}

/// A temporary name next to `cached`, unique per call: threads of one process may compile the same
/// component at once, and sharing a temporary file lets one rename the other's away.
fn temp_path(cached: &Path) -> PathBuf {
    cached.with_extension(format!("tmp{}-{}", std::process::id(), NEXT_TMP.fetch_add(1, Ordering::Relaxed)))
}

fn cache_path(engine: &Engine, wasm: &[u8], dir: &Path) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    let mut digest = Sha256::new();
    digest.update(wasm);
    digest.update(engine_hash.finish().to_be_bytes());
    let name: String = digest.finalize().iter().take(20).map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}.cwasm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_unique_per_call() {
        let cached = Path::new("/cache/abc.cwasm");
        let (a, b) = (temp_path(cached), temp_path(cached));
        assert_ne!(a, b);
        assert_eq!(a.parent(), cached.parent());
    }

    #[test]
    fn concurrent_loads_into_an_empty_cache_all_succeed() {
        let dir = std::env::temp_dir().join(format!("edgeshell-compile-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let wasm = dir.join("small.wasm");
        std::fs::write(&wasm, wat::parse_str("(component (core module (func (export \"f\"))))").unwrap()).unwrap();
        let engine = Engine::default();
        let cache = dir.join("cache");
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        load(&engine, &wasm, &cache).map(|_| ())
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap().expect("every concurrent load succeeds");
            }
        });
        let files: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 1, "one cached file, no leftovers: {files:?}");
        load(&engine, &wasm, &cache).expect("loads from the cache");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
