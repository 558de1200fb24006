//! Arbitrary bytes as a task's library blob: loading must give a component or a `LoadError`.
#![no_main]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use armonik_wasm::sandbox::components::{CONVENTION_VERSION, Components, LIBRARY_BLOB_ID, LoadError};
use armonik_wasm::sandbox::{Sandbox, SandboxConfig};
use libfuzzer_sys::fuzz_target;

struct Host {
    runtime: tokio::runtime::Runtime,
    components: Components,
    folder: tempfile::TempDir,
}

// One engine for the whole run, as in the worker: building it per input would measure
// start-up, not loading.
static HOST: LazyLock<Host> = LazyLock::new(|| {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let sandbox = Sandbox::new(SandboxConfig {
        max_concurrent_tasks: 1,
        memory_limit: 64 << 20,
        pooling: true,
    })
    .expect("sandbox");
    let components = runtime
        .block_on(Components::new(Arc::new(sandbox), None, None))
        .expect("components");
    // Never deleted (libFuzzer exits without running destructors): named to be found.
    let folder = tempfile::Builder::new()
        .prefix("armonik-wasm-fuzz-")
        .tempdir()
        .expect("data folder");
    Host {
        runtime,
        components,
        folder,
    }
});

static NEXT_BLOB: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|bytes: &[u8]| {
    let host = &*HOST;
    // A fresh id per input: the cache by blob id would answer every input after the first
    // valid one without looking at its bytes.
    let blob = format!("blob-{}", NEXT_BLOB.fetch_add(1, Ordering::Relaxed));
    let path = host.folder.path().join(&blob);
    std::fs::write(&path, bytes).expect("write the blob");
    let options = HashMap::from([
        (CONVENTION_VERSION.to_owned(), "v1".to_owned()),
        (LIBRARY_BLOB_ID.to_owned(), blob.clone()),
    ]);
    let loaded = host.runtime.block_on(host.components.for_task(
        &options,
        &[blob],
        host.folder.path(),
    ));
    std::fs::remove_file(&path).expect("remove the blob");
    // `Read` or `Selection` here would mean the harness never reached the loader, or that
    // compilation panicked (the host turns a panicked compile thread into `Selection`).
    if let Err(error @ (LoadError::Read { .. } | LoadError::Selection(_))) = loaded {
        panic!("unexpected load error: {error}");
    }
});
