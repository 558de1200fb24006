//! Arbitrary `ProcessRequest`s through a `TaskRunner`: each must end in a `ProcessReply` or a
//! `tonic::Status`, never a panic, a hang or unbounded memory.
#![no_main]

use std::path::{Component, Path};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use armonik_wasm::sandbox::components::{Components, LIBRARY_BLOB_ID};
use armonik_wasm::local::agent::LocalAgent;
use armonik_wasm::proto::v1::TaskOptions;
use armonik_wasm::proto::v1::worker::ProcessRequest;
use armonik_wasm::sandbox::{Sandbox, SandboxConfig};
use armonik_wasm::worker::task_runner::{RunnerConfig, TaskRunner};
use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};
use prost::Message;

/// Files the harness creates per request, like an agent would for the payload and
/// dependencies; a request may list many more ids.
const MAX_FILES: usize = 64;

struct Host {
    runtime: tokio::runtime::Runtime,
    runner: Arc<TaskRunner>,
    scratch: tempfile::TempDir,
    /// The default component's bytes, also given as the data of a task's library blob.
    library: Vec<u8>,
}

static HOST: LazyLock<Host> = LazyLock::new(|| {
    let component = std::env::var_os("ARMONIK_WASM_FUZZ_COMPONENT").unwrap_or_else(|| {
        // From the fuzz package, whatever the directory the fuzzer is started from.
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../guests/target/wasm32-wasip2/release/echo.wasm"
        )
        .into()
    });
    let library = std::fs::read(&component)
        .expect("default component (build the guests: see fuzz/README.md)");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let sandbox = Arc::new(
        Sandbox::new(SandboxConfig {
            max_concurrent_tasks: 1,
            memory_limit: 64 << 20,
            pooling: true,
        })
        .expect("sandbox"),
    );
    let components = runtime
        .block_on(Components::new(
            sandbox.clone(),
            Some(Path::new(&component)),
            None,
        ))
        .expect("default component (build the guests: see fuzz/README.md)");
    // Never deleted (libFuzzer exits without running destructors): named to be found.
    let scratch = tempfile::Builder::new()
        .prefix("armonik-wasm-fuzz-")
        .tempdir()
        .expect("scratch folder");
    // It knows no token, so every agent call fails with INVALID_ARGUMENT: enough to reach
    // the bridge and the outcome table.
    let agent = LocalAgent::new(&scratch.path().join("agent"), TaskOptions::default())
        .expect("local agent");
    let runner = Arc::new(TaskRunner::new(
        sandbox,
        components,
        Arc::new(agent),
        RunnerConfig {
            max_concurrent_tasks: 1,
            default_max_duration: Duration::from_secs(2),
        },
        None,
    ));
    Host {
        runtime,
        runner,
        scratch,
        library,
    }
});

fuzz_target!(|bytes: &[u8]| {
    let Ok(mut request) = ProcessRequest::decode(bytes) else {
        return;
    };
    let host = &*HOST;
    // The agent always hands over a folder it made, so the fuzzer never picks a host path;
    // every other field stays as decoded.
    let folder = tempfile::tempdir_in(host.scratch.path()).expect("data folder");
    request.data_folder = folder.path().to_str().expect("utf-8 temp path").to_owned();
    // Like the agent, put the payload and dependencies in the folder; only ids that are one
    // plain file name, so the harness itself never writes elsewhere. The library blob holds
    // a real component, so that the convention path can succeed too.
    let library = request
        .task_options
        .as_ref()
        .and_then(|o| o.options.get(LIBRARY_BLOB_ID));
    for id in std::iter::once(&request.payload_id)
        .chain(&request.data_dependencies)
        .filter(|id| is_file_name(id))
        .take(MAX_FILES)
    {
        let data = if Some(id) == library {
            &host.library
        } else {
            id.as_bytes()
        };
        let _ = std::fs::write(folder.path().join(id), data);
    }
    // The request's own max duration wins over the runner's default: clamp it below 2 s so
    // that no input can run for long. ARMONIK_WASM_FUZZ_UNCLAMPED keeps it as sent, to
    // reproduce repro/process_request/max-duration-overflow (and hang on a looping guest).
    if std::env::var_os("ARMONIK_WASM_FUZZ_UNCLAMPED").is_none()
        && let Some(d) = request
            .task_options
            .as_mut()
            .and_then(|o| o.max_duration.as_mut())
    {
        d.seconds = d.seconds.min(1);
        d.nanos = d.nanos.min(999_999_999);
    }
    let outcome = host.runtime.block_on(host.runner.process(request));
    // A compile thread that panicked comes back as a plain error reply: make it a crash.
    if let Ok(reply) = &outcome {
        let text = format!("{reply:?}");
        assert!(!text.contains("component compilation failed"), "{text}");
    }
});

// Most byte-level mutations break the protobuf framing (about 1% of them still decode): retry
// until one decodes, so that runs reach the task runner instead of prost's error paths.
fuzz_mutator!(
    |data: &mut [u8], size: usize, max_size: usize, _seed: u32| {
        let original = data[..size].to_vec();
        for _ in 0..64 {
            let new_size = fuzzer_mutate(data, size, max_size);
            if ProcessRequest::decode(&data[..new_size]).is_ok() {
                return new_size;
            }
            data[..size].copy_from_slice(&original);
        }
        fuzzer_mutate(data, size, max_size)
    }
);

fn is_file_name(id: &str) -> bool {
    let mut parts = Path::new(id).components();
    matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(_)), None)
    )
}
