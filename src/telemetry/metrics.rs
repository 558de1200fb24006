//! Prometheus metrics: what the host records, and the opt-in endpoint that serves them.
//!
//! The layers record through the `metrics` facade ([`task_finished`], [`agent_call`],
//! [`cache_lookup`], [`RunningTask`]); without [`serve`] no recorder is installed and each
//! record is a no-op. Names and units follow Prometheus's conventions: base units (seconds,
//! bytes), `_total` on counters, one `armonik_wasm_` prefix.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const TASKS: &str = "armonik_wasm_tasks_total";
const TASK_DURATION: &str = "armonik_wasm_task_duration_seconds";
const INSTANTIATION: &str = "armonik_wasm_task_instantiation_duration_seconds";
const MEMORY_PEAK: &str = "armonik_wasm_task_memory_peak_bytes";
const RUNNING: &str = "armonik_wasm_running_tasks";
const CACHE_HITS: &str = "armonik_wasm_compile_cache_hits_total";
const CACHE_MISSES: &str = "armonik_wasm_compile_cache_misses_total";
const AGENT_CALLS: &str = "armonik_wasm_agent_calls_total";
const AGENT_CALL_DURATION: &str = "armonik_wasm_agent_call_duration_seconds";

/// Task durations, from a no-op Rust task (about 100 µs) to hours.
const TASK_SECONDS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0,
];
/// Instantiation and agent calls: tens of microseconds (Rust) to a few milliseconds (Python),
/// a data call on a large result to seconds.
const SHORT_SECONDS: &[f64] = &[
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0,
];
/// Linear memory: 1 MiB to 16 GiB by powers of four.
const MEMORY_BYTES: &[f64] = &[
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
    4_294_967_296.0,
    17_179_869_184.0,
];

/// Where a component came from when a task asked for it.
#[derive(Debug, Clone, Copy)]
pub enum CacheLookup {
    /// Compiled and linked already, in this process.
    Memory,
    /// Compiled by an earlier process: read from the disk cache.
    Disk,
    /// Compiled for this task.
    Miss,
}

/// Records a component lookup.
pub fn cache_lookup(lookup: CacheLookup) {
    match lookup {
        CacheLookup::Memory => counter!(CACHE_HITS, "tier" => "memory").increment(1),
        CacheLookup::Disk => counter!(CACHE_HITS, "tier" => "disk").increment(1),
        CacheLookup::Miss => counter!(CACHE_MISSES).increment(1),
    }
}

/// Records one call to ArmoniK's agent: `operation` is the Agent service's method
/// (`NotifyResultData`...), `code` the gRPC status it ended with (`Ok` on success).
pub fn agent_call(operation: &str, code: tonic::Code, elapsed: Duration) {
    counter!(AGENT_CALLS, "operation" => operation.to_owned(), "code" => code_name(code))
        .increment(1);
    histogram!(AGENT_CALL_DURATION, "operation" => operation.to_owned())
        .record(elapsed.as_secs_f64());
}

/// Records a finished task: its `outcome` label, its wall time, and, when it got as far as
/// the sandbox, its instantiation time and peak linear memory in bytes.
pub fn task_finished(outcome: &'static str, wall: Duration, sandbox: Option<(Duration, usize)>) {
    counter!(TASKS, "outcome" => outcome).increment(1);
    histogram!(TASK_DURATION).record(wall.as_secs_f64());
    if let Some((instantiation, memory_peak)) = sandbox {
        histogram!(INSTANTIATION).record(instantiation.as_secs_f64());
        // Precision loss above 2^53 bytes does not matter to a histogram.
        #[allow(clippy::cast_precision_loss)]
        histogram!(MEMORY_PEAK).record(memory_peak as f64);
    }
}

/// Counts a running task for as long as it lives.
pub struct RunningTask(());

impl RunningTask {
    /// A task starts.
    pub fn start() -> Self {
        gauge!(RUNNING).increment(1.0);
        Self(())
    }
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        gauge!(RUNNING).decrement(1.0);
    }
}

/// Installs the Prometheus recorder and serves its exposition (text format 0.0.4) at
/// `http://ADDRESS/metrics` on the current runtime, for the life of the process. Returns the
/// bound address (an `ADDRESS` with port 0 gets a free one) once the listener is up.
///
/// # Errors
/// The address cannot be bound, or a recorder is already installed in this process.
pub async fn serve(address: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen for metrics on {address}: {error}"))?;
    let bound = listener.local_addr()?;
    let handle = install()?;
    let upkeep = handle.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        // Histograms keep their samples until upkeep folds them in; a scrape does it too, so
        // this only bounds memory when no one scrapes.
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticks.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}

fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(TASK_DURATION.into()), TASK_SECONDS)?
        .set_buckets_for_metric(Matcher::Full(INSTANTIATION.into()), SHORT_SECONDS)?
        .set_buckets_for_metric(Matcher::Full(AGENT_CALL_DURATION.into()), SHORT_SECONDS)?
        .set_buckets_for_metric(Matcher::Full(MEMORY_PEAK.into()), MEMORY_BYTES)?
        .install_recorder()?;
    describe_counter!(
        TASKS,
        "Tasks finished, by outcome (completed, error, timeout, trap, unavailable, other)."
    );
    describe_histogram!(
        TASK_DURATION,
        Unit::Seconds,
        "Wall time of a task, from its request to its reply."
    );
    describe_histogram!(
        INSTANTIATION,
        Unit::Seconds,
        "Time to instantiate a task's component (store and instance ready)."
    );
    describe_histogram!(
        MEMORY_PEAK,
        Unit::Bytes,
        "Peak linear memory of a task, all its memories together."
    );
    describe_gauge!(RUNNING, "Tasks running now.");
    describe_counter!(
        CACHE_HITS,
        "Components found compiled, by tier (memory: this process; disk: the compile cache)."
    );
    describe_counter!(CACHE_MISSES, "Components compiled for a task.");
    describe_counter!(
        AGENT_CALLS,
        "Calls to ArmoniK's agent, by operation and gRPC status code."
    );
    describe_histogram!(
        AGENT_CALL_DURATION,
        Unit::Seconds,
        "Duration of a call to ArmoniK's agent, by operation."
    );
    Ok(handle)
}

/// The gRPC code's name as ArmoniK's logs and gRPC's docs write it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
