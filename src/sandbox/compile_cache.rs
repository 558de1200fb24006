//! The on-disk cache of compiled components, so a restarted host (or each `run`) skips
//! compilation: Rust guests compile in ~0.1 s, Python and JavaScript ones in ~10 s.
//!
//! Entries live in `<root>/<engine fingerprint>/<sha256 of the component>.cwasm`. The
//! fingerprint covers everything wasmtime requires to match (its version, the compiler
//! settings, the enabled features), so a host built or configured differently never reads an
//! artifact it cannot run.
//!
//! An entry is native code the host runs, so it is trusted only if it is the host's own: the
//! engine folder and each entry must be owned by this user and writable by no one else
//! (folders the host creates are mode 0700, entries 0600); a link is never followed. Anything
//! else (a shared cache folder, an entry another user planted) is ignored with a warning and
//! the component compiled in memory.
//!
//! The cache is bounded by total size and number of entries: after each write, the least
//! recently used entries (by modification time, which a load refreshes) are evicted until it
//! fits, as wasmtime's own cache does.

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::host_files::Folder;

/// Environment variable that moves the cache.
pub const CACHE_DIR_ENV: &str = "ARMONIK_WASM_CACHE_DIR";

/// How large the cache may grow.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Total size of the entries, in bytes.
    pub max_bytes: u64,
    /// Number of entries.
    pub max_entries: usize,
}

/// Default size limit, in MiB: about 30 Python components (35 MB each), or the versions of
/// a handful of applications a worker alternates between; hundreds of Rust ones.
pub const DEFAULT_MAX_MIB: u64 = 1024;
/// Default entry limit.
pub const DEFAULT_MAX_ENTRIES: usize = 100;

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_MIB << 20,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// The compiled-component cache of one engine configuration.
#[derive(Clone)]
pub struct DiskCache {
    folder: Arc<Folder>,
    limits: CacheLimits,
}

impl DiskCache {
    /// Opens (creating it, private, if needed) the cache under `root` for `engine`.
    ///
    /// # Errors
    /// The folder cannot be made or opened, or it does not belong to this user alone
    /// (`PermissionDenied`): the caller then runs without the cache.
    pub fn open(
        root: &std::path::Path,
        engine: &Engine,
        limits: CacheLimits,
    ) -> std::io::Result<Self> {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        // The root is checked too: whoever can write there can swap the engine folder.
        let root = Folder::create(root, true)?;
        root.check_private()?;
        let folder = root.subfolder(&format!("{:016x}", hasher.finish()))?;
        folder.check_private()?;
        Ok(Self {
            folder: Arc::new(folder),
            limits,
        })
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

    fn entry(digest: &str) -> String {
        format!("{digest}.cwasm")
    }

    /// The cached compilation of the component with this content digest, if there is one the
    /// host wrote (one that is not the host's own is ignored, with a warning).
    ///
    /// # Errors
    /// wasmtime's reason when this engine cannot load the entry. The entry is left in place:
    /// a damaged one is replaced by the next compilation's [`store`](Self::store), and one
    /// this engine refuses for its own settings (a memory limit below the component's memory,
    /// as the source would be refused too) stays for the hosts whose settings fit.
    pub fn load(&self, engine: &Engine, digest: &str) -> wasmtime::Result<Option<Component>> {
        let name = Self::entry(digest);
        let bytes = match self.folder.open_own_file(&name).and_then(|mut file| {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            // Used now: the last entry the eviction takes.
            file.set_modified(std::time::SystemTime::now())?;
            Ok(bytes)
        }) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                tracing::warn!(%error, "ignoring a compile cache entry that is not the host's own");
                return Ok(None);
            }
        };
        // SAFETY: the bytes come from a regular file of a folder only this user can write,
        // owned by this user and writable by no one else: one `store` below wrote, from
        // wasmtime's own serialization of a component this host compiled, in a folder keyed
        // by the engine's compatibility hash. wasmtime checks its header and version again.
        unsafe { Component::deserialize(engine, &bytes) }
            .map(Some)
            .map_err(|error| error.context(format!("cache entry {name}")))
    }

    /// Saves a compiled component, atomically (written aside, then renamed into place).
    /// Failing to write is only logged: the cache is an optimisation.
    pub fn store(&self, digest: &str, component: &Component) {
        let written = component
            .serialize()
            .map_err(anyhow::Error::from)
            .and_then(|bytes| Ok(self.folder.write(&Self::entry(digest), &bytes)?));
        if let Err(error) = written {
            tracing::warn!(%error, "cannot write to the compilation cache");
        }
        if let Err(error) = self.evict() {
            tracing::warn!(%error, "cannot trim the compilation cache");
        }
    }

    /// Removes the least recently used entries until the cache fits its limits.
    fn evict(&self) -> std::io::Result<()> {
        // Only entries: a stray file or another host's write in progress is not ours to count.
        let mut entries = self.folder.files()?;
        entries.retain(|(name, _, _)| name.ends_with(".cwasm"));
        let mut bytes: u64 = entries.iter().map(|(_, size, _)| size).sum();
        let mut count = entries.len();
        // Oldest first; the name breaks ties so the order is stable.
        entries.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        for (name, size, _) in entries {
            if bytes <= self.limits.max_bytes && count <= self.limits.max_entries {
                break;
            }
            self.folder.remove_file(&name)?;
            tracing::info!(entry = %name, size, "evicted from the compilation cache");
            bytes -= size;
            count -= 1;
        }
        Ok(())
    }
}
