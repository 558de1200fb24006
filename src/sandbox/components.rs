//! Which component runs a task, and the cache of components ready to instantiate.
//!
//! A task runs the component that ArmoniK's dynamic-worker convention names (task options
//! `ConventionVersion=v1` and `LibraryBlobId=<result id>`, the `.wasm` shipped as one of the
//! task's data dependencies), else the one its application name and version name in the
//! operator's components folder ([`applications`](crate::sandbox::applications)), else the
//! default component the host was started with. Each
//! component is compiled and linked once and kept by content hash; library blobs are also
//! kept by result id, since an ArmoniK result never changes once written.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt as _;
use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

use crate::bindings::WorkerPre;
use crate::host_files::Folder;
use crate::proto::v1::TaskOptions;
use crate::sandbox::applications::{Applications, FileIdentity};
use crate::sandbox::compile_cache::DiskCache;
use crate::sandbox::{Sandbox, TaskState};
use crate::telemetry::metrics::{self, CacheLookup};

/// Task option naming the dynamic-worker convention in use.
pub const CONVENTION_VERSION: &str = "ConventionVersion";
/// Task option naming the result that holds the component (convention v1).
pub const LIBRARY_BLOB_ID: &str = "LibraryBlobId";

/// Components kept compiled: enough for a worker that alternates between a few applications,
/// few enough that a stream of distinct libraries cannot exhaust host memory.
const CACHE_CAPACITY: usize = 32;

/// Where a component's bytes come from, which decides how far they are trusted.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A file named on the host's command line: trusted like the host binary itself, so it
    /// may be a precompiled artifact (`armonik-wasm compile`).
    File(PathBuf),
    /// A task's library blob: task data, never trusted with native code, so only a
    /// component is accepted.
    Blob(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Blob(id) => write!(f, "library blob {id}"),
        }
    }
}

/// Library result ids remembered, to skip reading and hashing a blob seen before.
const BLOB_IDS_CAPACITY: usize = 4096;

/// Why no component could be made ready for a task.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read the component {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The operator's folder of components by application could not be opened.
    #[error("cannot open the components folder {} (--components-dir, ArmonikWasm__ComponentsDir): {error}", path.display())]
    ComponentsDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Not WebAssembly at all.
    #[error("{origin} is not a WebAssembly component (it does not start with the `\\0asm` header)")]
    NotWasm {
        /// Where the bytes came from.
        origin: Origin,
    },
    /// A core module where a component is expected.
    #[error(
        "{origin} is a core WebAssembly module, not a component: build it for wasm32-wasip2, or wrap it with `wasm-tools component new`"
    )]
    CoreModule {
        /// Where the bytes came from.
        origin: Origin,
    },
    /// A component wasmtime rejects.
    #[error("{origin} is not a valid component: {reason}")]
    Invalid {
        /// Where the bytes came from.
        origin: Origin,
        /// wasmtime's reason.
        reason: String,
    },
    /// A component whose memory starts larger than this host lets one task have: refused by
    /// the pooling allocator, whose memory slots are that size.
    #[error(
        "{origin} needs more linear memory than this host lets a task have \
         (--memory-limit-mib, ArmonikWasm__MemoryLimitMiB): {reason}"
    )]
    MemoryLimit {
        /// Where the bytes came from.
        origin: Origin,
        /// wasmtime's reason, with both sizes in bytes.
        reason: String,
    },
    /// A precompiled artifact this host cannot use.
    #[error("{origin} is a precompiled artifact that this host cannot use: {reason}")]
    Precompiled {
        /// Where the bytes came from.
        origin: Origin,
        /// Why.
        reason: String,
    },
    /// A valid component of another world.
    #[error("{origin} does not fit the armonik:worker/worker world: {reason}")]
    WrongWorld {
        /// Where the bytes came from.
        origin: Origin,
        /// What is missing or mismatched.
        reason: String,
    },
    /// The task options select no usable component.
    #[error("{0}")]
    Selection(String),
}

/// A component ready to instantiate.
pub struct Prepared {
    /// Hex SHA-256 of the component's bytes.
    pub digest: String,
    /// Linked once; each task instantiates it.
    pub pre: WorkerPre<TaskState>,
}

#[derive(Default)]
struct Cache {
    by_digest: HashMap<String, Arc<Prepared>>,
    by_blob: HashMap<String, Arc<Prepared>>,
    /// Application name and version → the file last loaded for them, and its component.
    by_application: HashMap<(String, String), (FileIdentity, Arc<Prepared>)>,
    /// Digests in insertion order, to evict the oldest.
    order: VecDeque<String>,
}

impl Cache {
    /// Keeps a prepared component, evicting the oldest past [`CACHE_CAPACITY`].
    fn insert(&mut self, prepared: Prepared) -> Arc<Prepared> {
        let prepared = Arc::new(prepared);
        if self.order.len() >= CACHE_CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_digest.remove(&oldest);
            self.by_blob.retain(|_, p| p.digest != oldest);
            self.by_application.retain(|_, (_, p)| p.digest != oldest);
        }
        self.order.push_back(prepared.digest.clone());
        self.by_digest
            .insert(prepared.digest.clone(), prepared.clone());
        prepared
    }
}

/// Locks the cache, which holds no invariant a panic could break halfway.
fn lock(cache: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    cache.lock().unwrap_or_else(|e| e.into_inner())
}

/// The components of this host: the default one, and those loaded from task data.
pub struct Components {
    sandbox: Arc<Sandbox>,
    default: Option<Arc<Prepared>>,
    applications: Option<Applications>,
    cache: Arc<Mutex<Cache>>,
    disk: Option<DiskCache>,
    /// One compilation at a time: a Python component takes seconds of both cores and about a
    /// GiB. Tasks needing a component being compiled wait for it instead of compiling it
    /// again, and a compilation whose task gave up (its deadline, a cancel) still lands in the
    /// cache for the next task that needs it.
    compiling: Arc<Semaphore>,
}

impl Components {
    /// Loads the default component, if any, now, so a broken one stops the host at start.
    /// `applications` is the operator's folder of components by application; `disk` caches
    /// compilations across processes.
    ///
    /// # Errors
    /// The default component cannot be loaded, or the applications folder opened.
    pub async fn new(
        sandbox: Arc<Sandbox>,
        default: Option<&Path>,
        applications: Option<&Path>,
        disk: Option<DiskCache>,
    ) -> Result<Self, LoadError> {
        let components = Self {
            sandbox,
            default: None,
            applications: applications.map(Applications::open).transpose()?,
            cache: Arc::default(),
            compiling: Arc::new(Semaphore::new(1)),
            disk,
        };
        let default = match default {
            Some(path) => Some(components.load_file(path).await?),
            None => None,
        };
        Ok(Self {
            default,
            ..components
        })
    }

    /// Loads a component file named by the operator (a component or a precompiled artifact).
    pub async fn load_file(&self, path: &Path) -> Result<Arc<Prepared>, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|error| LoadError::Read {
                path: path.to_owned(),
                error,
            })?;
        self.load(bytes, Origin::File(path.to_owned())).await
    }

    /// Whether the component of library blob `id` is ready, so its data need not be fetched.
    pub fn has_blob(&self, id: &str) -> bool {
        self.lock().by_blob.contains_key(id)
    }

    /// The component for a task with these options: its library blob, else its application
    /// (when the host has a components folder and the options name one), else the default.
    /// `data_folder` holds the task's input files, its library blob among them unless
    /// [`has_blob`](Self::has_blob) says it is ready.
    ///
    /// # Errors
    /// No component is selected, or the selected one cannot be loaded.
    pub async fn for_task(
        &self,
        options: &TaskOptions,
        data_folder: &Folder,
    ) -> Result<Arc<Prepared>, LoadError> {
        let Some(blob) = library_blob(&options.options)? else {
            if let Some(applications) = &self.applications
                && !options.application_name.is_empty()
            {
                return self
                    .for_application(
                        applications,
                        &options.application_name,
                        &options.application_version,
                    )
                    .await;
            }
            return self.default.clone().ok_or_else(|| {
                LoadError::Selection(format!(
                    "no component for this task: the host has no default component and the task options do not set {CONVENTION_VERSION}=v1 with a {LIBRARY_BLOB_ID}{}",
                    if self.applications.is_some() {
                        " nor an application_name"
                    } else {
                        ""
                    }
                ))
            });
        };
        let blob = &blob.to_owned();
        if let Some(prepared) = self.lock().by_blob.get(blob) {
            metrics::cache_lookup(CacheLookup::Memory);
            return Ok(prepared.clone());
        }
        // A regular file of the folder, never a link a guest of an earlier attempt planted.
        let read = async {
            let file = data_folder.open_file(blob)?;
            let mut bytes = Vec::new();
            tokio::fs::File::from_std(file)
                .read_to_end(&mut bytes)
                .await?;
            Ok::<_, std::io::Error>(bytes)
        };
        let bytes = read.await.map_err(|error| LoadError::Read {
            path: data_folder.path().join(blob),
            error,
        })?;
        let prepared = self.load(bytes, Origin::Blob(blob.clone())).await?;
        let mut cache = self.lock();
        if cache.by_blob.len() >= BLOB_IDS_CAPACITY {
            // Each session may ship the same library under a new result id: forget the ids
            // (only pointers; the compiled components stay cached by digest).
            cache.by_blob.clear();
        }
        cache.by_blob.insert(blob.clone(), prepared.clone());
        drop(cache);
        Ok(prepared)
    }

    /// The component of application `name` at `version`: read again only when its file
    /// changed since it was last loaded.
    async fn for_application(
        &self,
        applications: &Applications,
        name: &str,
        version: &str,
    ) -> Result<Arc<Prepared>, LoadError> {
        let (file, path) = applications.open_component(name, version)?;
        let read_error = |error| LoadError::Read {
            path: path.clone(),
            error,
        };
        let identity = FileIdentity::of(&file).map_err(read_error)?;
        let key = (name.to_owned(), version.to_owned());
        if let Some((known, prepared)) = self.lock().by_application.get(&key)
            && *known == identity
        {
            metrics::cache_lookup(CacheLookup::Memory);
            return Ok(prepared.clone());
        }
        let mut bytes = Vec::new();
        tokio::fs::File::from_std(file)
            .read_to_end(&mut bytes)
            .await
            .map_err(read_error)?;
        // The operator's folder: trusted like a file on the command line.
        let prepared = self.load(bytes, Origin::File(path)).await?;
        let mut cache = self.lock();
        if cache.by_application.len() >= BLOB_IDS_CAPACITY {
            cache.by_application.clear();
        }
        cache
            .by_application
            .insert(key, (identity, prepared.clone()));
        Ok(prepared)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        lock(&self.cache)
    }

    /// Compiles (or deserializes) and links `bytes` unless a component with the same content
    /// is cached.
    async fn load(&self, bytes: Vec<u8>, origin: Origin) -> Result<Arc<Prepared>, LoadError> {
        // Hashing a 19 MB Python component takes tens of milliseconds: off the async threads,
        // and where a task's deadline can end the wait.
        let (bytes, digest) = tokio::task::spawn_blocking(move || {
            let digest = hex(&Sha256::digest(&bytes));
            (bytes, digest)
        })
        .await
        .map_err(|e| LoadError::Selection(format!("cannot hash the component: {e}")))?;
        if let Some(prepared) = self.lock().by_digest.get(&digest) {
            metrics::cache_lookup(CacheLookup::Memory);
            return Ok(prepared.clone());
        }
        let permit = self
            .compiling
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| LoadError::Selection(format!("component compilation failed: {e}")))?;
        // Another task may have compiled it while this one waited.
        if let Some(prepared) = self.lock().by_digest.get(&digest) {
            metrics::cache_lookup(CacheLookup::Memory);
            return Ok(prepared.clone());
        }
        // Compiling takes from milliseconds (Rust) to seconds (Python): keep it off the async
        // threads that serve HealthCheck.
        let span = tracing::info_span!("compile", %origin, %digest);
        let sandbox = self.sandbox.clone();
        let disk = self.disk.clone();
        let memory = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _span = span.enter();
            let task_digest = digest;
            let cache = disk.as_ref().map(|disk| (disk, task_digest.as_str()));
            let component = compile(&sandbox, &bytes, &origin, cache)?;
            let pre = sandbox
                .prepare(&component)
                .map_err(|e| LoadError::WrongWorld {
                    origin: origin.clone(),
                    reason: format!("{e:#}"),
                })?;
            Ok(lock(&memory).insert(Prepared {
                digest: task_digest,
                pre,
            }))
        })
        .await
        .map_err(|e| LoadError::Selection(format!("component compilation failed: {e}")))?
    }
}

/// The library blob (a result id) that a task's options name under ArmoniK's dynamic-worker
/// convention v1, or `None` when they name no convention (the default component runs it).
///
/// # Errors
/// [`LoadError::Selection`] for another convention version, or v1 without a blob id.
pub fn library_blob(options: &HashMap<String, String>) -> Result<Option<&str>, LoadError> {
    let Some(version) = options.get(CONVENTION_VERSION) else {
        return Ok(None);
    };
    if version != "v1" {
        return Err(LoadError::Selection(format!(
            "unsupported {CONVENTION_VERSION} `{version}` (this host knows v1)"
        )));
    }
    let blob = options.get(LIBRARY_BLOB_ID).ok_or_else(|| {
        LoadError::Selection(format!(
            "{CONVENTION_VERSION}=v1 needs the task option {LIBRARY_BLOB_ID}"
        ))
    })?;
    Ok(Some(blob))
}

/// A component from `bytes` that `sandbox` can run: deserialized if it is a precompiled
/// artifact `origin` may provide, else taken from the disk cache under its digest, else
/// compiled (and cached).
///
/// # Errors
/// Not a component, not one wasmtime accepts, or one whose memory starts above the
/// sandbox's memory limit ([`LoadError::MemoryLimit`], with either allocator: the pooling
/// one refuses it as it compiles, on-demand allocation only as each task instantiates it).
pub fn compile(
    sandbox: &Sandbox,
    bytes: &[u8],
    origin: &Origin,
    disk: Option<(&DiskCache, &str)>,
) -> Result<Component, LoadError> {
    let component = load(sandbox.engine(), bytes, origin, disk)?;
    let limit = sandbox.config().memory_limit as u64;
    let pages = component
        .resources_required()
        .and_then(|required| required.max_initial_memory_size)
        .unwrap_or(0);
    let initial = pages.saturating_mul(WASM_PAGE_BYTES);
    if initial > limit {
        return Err(LoadError::MemoryLimit {
            origin: origin.clone(),
            reason: format!(
                "a memory starts at {initial} bytes, which exceeds the limit of {limit} bytes"
            ),
        });
    }
    Ok(component)
}

/// Bytes in a page of wasm32 linear memory.
const WASM_PAGE_BYTES: u64 = 64 * 1024;

fn load(
    engine: &Engine,
    bytes: &[u8],
    origin: &Origin,
    disk: Option<(&DiskCache, &str)>,
) -> Result<Component, LoadError> {
    match Engine::detect_precompiled(bytes) {
        Some(Precompiled::Component) if matches!(origin, Origin::File(_)) => {
            // SAFETY: the operator named this file on the command line, trusting it as they
            // trust this binary (see `Origin::File`); wasmtime checks that it was made by a
            // compatible engine.
            return unsafe { Component::deserialize(engine, bytes) }.map_err(|e| {
                memory_limit(&e, origin).unwrap_or_else(|| LoadError::Precompiled {
                    origin: origin.clone(),
                    reason: format!(
                        "{e:#}; compile it again with this host's `armonik-wasm compile`"
                    ),
                })
            });
        }
        Some(kind) => {
            return Err(LoadError::Precompiled {
                origin: origin.clone(),
                reason: match kind {
                    Precompiled::Module => "it is a compiled core module, not a component".into(),
                    Precompiled::Component => "precompiled artifacts run native code, so they are accepted only from the host's command line, never from task data".into(),
                },
            });
        }
        None => check_header(bytes, origin)?,
    }
    match disk.map(|(disk, digest)| disk.load(engine, digest)) {
        Some(Ok(Some(component))) => {
            metrics::cache_lookup(CacheLookup::Disk);
            return Ok(component);
        }
        Some(Err(error)) => {
            // The source would be refused for the same reason: no compiling it to find out.
            if let Some(refused) = memory_limit(&error, origin) {
                return Err(refused);
            }
            tracing::warn!(%error, "ignoring a cache entry this engine cannot load");
        }
        Some(Ok(None)) | None => {}
    }
    metrics::cache_lookup(CacheLookup::Miss);
    let started = std::time::Instant::now();
    let component = Component::new(engine, bytes).map_err(|e| {
        memory_limit(&e, origin).unwrap_or_else(|| LoadError::Invalid {
            origin: origin.clone(),
            reason: format!("{e:#}"),
        })
    })?;
    tracing::info!(elapsed = ?started.elapsed(), "component compiled");
    if let Some((disk, digest)) = disk {
        disk.store(digest, &component);
    }
    Ok(component)
}

/// [`LoadError::MemoryLimit`] when wasmtime refused a component because a memory does not
/// fit the pooling allocator's slots (wasmtime 48's `MemoryPool::validate_memory`, matched by
/// its message: the error has no type of its own).
fn memory_limit(error: &wasmtime::Error, origin: &Origin) -> Option<LoadError> {
    let reason = format!("{error:#}");
    (reason.contains("memory has a minimum byte size of") && reason.contains("exceeds the limit"))
        .then(|| LoadError::MemoryLimit {
            origin: origin.clone(),
            reason,
        })
}

/// Tells a core module or random bytes from a component before wasmtime gives a less direct
/// message.
pub fn check_header(bytes: &[u8], origin: &Origin) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    // The layer field (bytes 6..8) is 0 for core modules and 1 for components.
    match bytes.get(..8) {
        Some(header) if header.starts_with(MAGIC) && header[6..8] == [1, 0] => Ok(()),
        Some(header) if header.starts_with(MAGIC) && header[6..8] == [0, 0] => {
            Err(LoadError::CoreModule {
                origin: origin.clone(),
            })
        }
        _ => Err(LoadError::NotWasm {
            origin: origin.clone(),
        }),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_told_apart() {
        let origin = Origin::Blob("b".into());
        let component = b"\0asm\x0d\x00\x01\x00rest";
        let core = b"\0asm\x01\x00\x00\x00rest";
        assert!(check_header(component, &origin).is_ok());
        assert!(matches!(
            check_header(core, &origin),
            Err(LoadError::CoreModule { .. })
        ));
        assert!(matches!(
            check_header(b"hello world", &origin),
            Err(LoadError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(b"", &origin),
            Err(LoadError::NotWasm { .. })
        ));
    }
}
