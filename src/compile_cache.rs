//! The on-disk cache of compiled components, so a restarted host (or each `run`) skips
//! compilation: Rust guests compile in ~0.1 s, Python and JavaScript ones in ~10 s.
//!
//! Entries live in `<root>/<engine fingerprint>/<sha256 of the component>.cwasm`. The
//! fingerprint covers everything wasmtime requires to match (its version, the compiler
//! settings, the enabled features), so a host built or configured differently never reads an
//! artifact it cannot run.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Environment variable that moves the cache.
pub const CACHE_DIR_ENV: &str = "ARMONIK_WASM_CACHE_DIR";

/// The compiled-component cache of one engine configuration.
#[derive(Clone)]
pub struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// Opens (creating it if needed) the cache under `root` for `engine`.
    pub fn open(root: &Path, engine: &Engine) -> std::io::Result<Self> {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let dir = root.join(format!("{:016x}", hasher.finish()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The default root: `$ARMONIK_WASM_CACHE_DIR`, else `$XDG_CACHE_HOME/armonik-wasm`, else
    /// `~/.cache/armonik-wasm`.
    pub fn default_root() -> Option<PathBuf> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var(CACHE_DIR_ENV)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("armonik-wasm")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("armonik-wasm")))
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    /// The cached compilation of the component with this content digest, if any. A damaged
    /// entry is removed, so it gets recompiled.
    pub fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path(digest);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store` below, from wasmtime's own serialization of
        // a component this host compiled, in a directory keyed by the engine's compatibility
        // hash; wasmtime checks its header and version again on load.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "dropping an unusable cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Saves a compiled component. Failing to write is only logged: the cache is an
    /// optimisation.
    pub fn store(&self, digest: &str, component: &Component) {
        let written = component
            .serialize()
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                // Write then rename, so a concurrent reader never sees half a file.
                let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
                std::io::Write::write_all(&mut file, &bytes)?;
                file.persist(self.path(digest))?;
                Ok(())
            });
        if let Err(error) = written {
            tracing::warn!(%error, "cannot write to the compilation cache");
        }
    }
}
