//! The numbers of BENCHMARKS.md: each benchmark measures a baseline and armonik-wasm in the
//! same run and prints the ratio (these machines are noisy; ratios hold, absolute times
//! drift).
//!
//! ```sh
//! cargo bench --bench bench             # full run (a few minutes)
//! cargo bench --bench bench -- --quick  # smoke run, as in CI
//! cargo bench --bench bench -- overhead # only the benchmarks whose name contains a filter
//! cargo bench --bench bench -- isolation # `serve --isolation process` against in-process
//! cargo bench --bench bench -- languages # Python and JavaScript guests against ArmoniK's
//!                                        # Python SDK worker (`languages-1g`: and a 1 GiB echo)
//! ```

#[path = "../../tests/common/mod.rs"]
mod common;
mod languages;
mod starts;
mod workers;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use armonik::Output;
use armonik::server::WorkerServiceExt as _;
use armonik_wasm::agent::bridge::{AgentBridge, TaskIdentity};
use armonik_wasm::agent::convert::task_options_to_wit;
use armonik_wasm::bindings::types::TaskContext;
use armonik_wasm::bindings::{Worker as Instance, WorkerPre};
use armonik_wasm::host_files::Folder;
use armonik_wasm::local::agent::LocalAgent;
use armonik_wasm::local::client::TaskCreation;
use armonik_wasm::local::scheduler::{Until, run_graph};
use armonik_wasm::proto::v1::TaskOptions;
use armonik_wasm::sandbox::compile_cache::DiskCache;
use armonik_wasm::sandbox::components::Components;
use armonik_wasm::sandbox::data_folder::DataFolder;
use armonik_wasm::sandbox::guest_log::TaskIds;
use armonik_wasm::sandbox::{
    DEFAULT_KEEP_RESIDENT, Sandbox, SandboxConfig, TaskRun, TaskState, wasi_context,
};
use armonik_wasm::worker::task_runner::{GuestThread, RunnerConfig, TaskRunner};
use common::polyglot::Lang;
use common::python::find_python;
use common::*;
use hyper_util::rt::TokioIo;
use languages::languages;
use starts::*;
use tokio_stream::wrappers::UnixListenerStream;
use wasmtime::Store;
use workers::*;

/// Sizes of a full run and of the CI smoke run.
struct Sizes {
    tasks: usize,
    instantiations: usize,
    cold_starts: usize,
    paths: u64,
    echo_bytes: usize,
    echo_rounds: usize,
    instances: usize,
    /// No-op tasks per worker of the languages benchmark.
    language_tasks: usize,
    /// The large echo of the languages benchmark, and its rounds.
    language_echo_bytes: usize,
    language_echo_rounds: usize,
}

const FULL: Sizes = Sizes {
    tasks: 5_000,
    instantiations: 10_000,
    cold_starts: 30,
    paths: 4_000_000,
    echo_bytes: 1 << 30,
    echo_rounds: 5,
    instances: 200,
    language_tasks: 2_000,
    language_echo_bytes: 64 << 20,
    language_echo_rounds: 10,
};

const QUICK: Sizes = Sizes {
    tasks: 100,
    instantiations: 200,
    cold_starts: 3,
    paths: 100_000,
    echo_bytes: 8 << 20,
    echo_rounds: 3,
    instances: 10,
    language_tasks: 100,
    language_echo_bytes: 4 << 20,
    language_echo_rounds: 3,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // Re-executed as the baseline worker of benchmarks 1 and 5.
    if let [_, mode, worker, agent] = &args[..]
        && mode == "native-worker"
    {
        return native_worker(Path::new(worker), Path::new(agent));
    }
    let sizes = if args.iter().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    // Filters are the plain arguments (cargo bench passes `--bench` too).
    let filters: Vec<&str> = args[1..]
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let selected = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    println!("machine: {} CPUs; {}", cpus(), memory_line());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        if selected("overhead") {
            per_task_overhead(&sizes).await?;
        }
        if selected("instantiation") {
            instantiation(&sizes).await?;
        }
        if selected("cold-start") {
            cold_start(&sizes)?;
        }
        if selected("compute") {
            compute(&sizes).await?;
        }
        if selected("data") {
            data(&sizes).await?;
        }
        if selected("memory") {
            memory(&sizes).await?;
        }
        if selected("isolation") {
            isolation(&sizes).await?;
        }
        // `languages-1g` adds the 1 GiB echo, too slow for every run; `selected` alone would
        // not see it (the name `languages` does not hold that filter).
        let one_gib = filters.contains(&"languages-1g");
        if selected("languages") || one_gib {
            languages(&sizes, one_gib).await?;
        }
        Ok(())
    })
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn memory_line() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_owned))
        .unwrap_or_default()
}

/// p50, p90, p99 of `samples`.
fn percentiles(samples: &mut [Duration]) -> [Duration; 3] {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    [at(0.50), at(0.90), at(0.99)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Prints p50, p90, p99 and the rate of `samples` taken in `elapsed`; returns the percentiles.
fn print_latencies(name: &str, samples: &mut [Duration], elapsed: Duration) -> [Duration; 3] {
    let n = samples.len();
    let [p50, p90, p99] = percentiles(samples);
    println!(
        "  {name:<32} p50 {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  {:>8.0} tasks/s",
        micros(p50),
        micros(p90),
        micros(p99),
        n as f64 / elapsed.as_secs_f64()
    );
    [p50, p90, p99]
}

/// 1. A no-op task (reads its empty payload, writes and notifies one empty output) through
///    the real Worker gRPC path over unix sockets.
async fn per_task_overhead(sizes: &Sizes) -> anyhow::Result<()> {
    println!("\n1. per-task overhead: no-op task through Process over UDS, incl. NotifyResultData");
    let workers = start_workers().await?;
    let wasm_client = workers.wasm.client().await;
    let clients = [&workers.native.client, &wasm_client];
    drive(&clients, &workers.agent, sizes.tasks / 10 + 10, b"", false).await;
    let pids = [workers.native.pid(), workers.wasm.pid()];
    let cpu_before = pids.map(cpu_time);
    let mut results = drive(&clients, &workers.agent, sizes.tasks, b"", false).await;
    let cpu = [0, 1].map(|i| cpu_time(pids[i]).saturating_sub(cpu_before[i]) / sizes.tasks as u32);
    let (mut wasm, wasm_total) = results.pop().unwrap_or_default();
    let (mut native, native_total) = results.pop().unwrap_or_default();
    let [native_p50, ..] = print_latencies("native Rust worker", &mut native, native_total);
    let [wasm_p50, ..] = print_latencies("armonik-wasm (Rust guest)", &mut wasm, wasm_total);
    // The yardstick of the issue's title: the gRPC call that delivers a task, here a bare
    // HealthCheck round trip to the same worker over the same socket.
    let mut calls = Vec::with_capacity(sizes.tasks);
    let started = Instant::now();
    for _ in 0..sizes.tasks {
        let t = Instant::now();
        wasm_client.health_check().await?;
        calls.push(t.elapsed());
    }
    let [call_p50, ..] = print_latencies("bare gRPC call", &mut calls, started.elapsed());
    let added = wasm_p50.saturating_sub(native_p50);
    println!(
        "  armonik-wasm adds {:.1} µs per task (p50 against native): {:.2}x a bare gRPC call",
        micros(added),
        added.as_secs_f64() / call_p50.as_secs_f64()
    );
    println!(
        "  worker CPU time per task: native {:.1} µs, armonik-wasm {:.1} µs",
        micros(cpu[0]),
        micros(cpu[1])
    );
    println!(
        "  ratio armonik-wasm / native: p50 {:.2}x  throughput {:.2}x  CPU per task {:.2}x",
        wasm_p50.as_secs_f64() / native_p50.as_secs_f64(),
        native_total.as_secs_f64() / wasm_total.as_secs_f64(),
        cpu[1].as_secs_f64() / cpu[0].as_secs_f64()
    );
    Ok(())
}

/// 7. `serve --isolation process` beside the default: the same no-op task through the same
///    driver, each task in a fresh child process of the worker.
async fn isolation(sizes: &Sizes) -> anyhow::Result<()> {
    println!(
        "\n7. process isolation: no-op task through Process over UDS, a child process per task"
    );
    let agent = FakeAgent::start();
    let quiet = [("RUST_LOG", "warn")];
    let echo = guest("echo");
    let in_process = Worker::spawn_custom(&echo, &agent, Transport::Unix, &[], &quiet).await;
    let isolated = Worker::spawn_custom(
        &echo,
        &agent,
        Transport::Unix,
        &["--isolation", "process"],
        &quiet,
    )
    .await;
    let (in_process_client, isolated_client) = (in_process.client().await, isolated.client().await);
    let clients = [&in_process_client, &isolated_client];
    let tasks = (sizes.tasks / 10).max(20);
    drive(&clients, &agent, 5, b"", false).await;
    let mut results = drive(&clients, &agent, tasks, b"", false).await;
    let (mut isolated, isolated_total) = results.pop().unwrap_or_default();
    let (mut in_process, in_process_total) = results.pop().unwrap_or_default();
    let [base, ..] = print_latencies("in-process (default)", &mut in_process, in_process_total);
    let [child, ..] = print_latencies("--isolation process", &mut isolated, isolated_total);
    println!(
        "  a process per task adds {:.2} ms per task (p50; target <= 5 ms), ratio {:.2}x",
        child.saturating_sub(base).as_secs_f64() * 1e3,
        child.as_secs_f64() / base.as_secs_f64()
    );
    Ok(())
}

/// A runner over the embedded agent, for in-process benchmarks, and a session without
/// retries.
async fn local_runner(
    component: &Path,
) -> anyhow::Result<(Arc<LocalAgent>, String, Arc<TaskRunner>, tempfile::TempDir)> {
    let sandbox = sandbox(true).await?;
    let components = Components::new(sandbox.clone(), Some(component), None, None).await?;
    let work = tempfile::tempdir()?;
    let agent = Arc::new(LocalAgent::new(work.path(), None)?);
    let session = agent.create_session(
        TaskOptions {
            max_retries: 0,
            ..TaskOptions::default()
        },
        Vec::new(),
    );
    let runner = Arc::new(TaskRunner::new(
        sandbox,
        components,
        agent.clone(),
        RunnerConfig {
            max_concurrent_tasks: 1,
            default_max_duration: Duration::from_secs(600),
        },
        None,
    ));
    Ok((agent, session, runner, work))
}

/// 4. The Monte Carlo kernel of the demo: one slice in a wasm task vs the same code natively.
async fn compute(sizes: &Sizes) -> anyhow::Result<()> {
    println!(
        "\n4. compute: Monte Carlo slice of {} paths (assets=8), wasm task vs native",
        sizes.paths
    );
    let params_text = format!("assets=8 corr=0.3 paths={} slices=1 seed=1", sizes.paths);
    let params: montecarlo::Params = params_text.parse().map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let native = montecarlo::simulate_slice(&params, 0);
    let native_time = started.elapsed();

    let (agent, session, runner, _work) = local_runner(&guest("pricer")).await?;
    let payload = agent.create_result(
        &session,
        "payload",
        format!("slice 0 {params_text}").as_bytes(),
    )?;
    let output = agent.create_result_metadata(&session, "summary")?;
    let task = TaskCreation {
        payload_id: payload,
        expected_outputs: vec![output.clone()],
        ..Default::default()
    };
    agent.submit_tasks(&session, None, vec![task])?;
    let started = Instant::now();
    let report = run_graph(
        agent.clone(),
        runner,
        1,
        Until::Idle,
        None,
        std::future::pending(),
    )
    .await?;
    let wasm_time = started.elapsed();
    anyhow::ensure!(
        report.summary().contains("(1 completed)"),
        "{}",
        report.summary()
    );
    let wasm = std::io::read_to_string(agent.open_data(&output)?)?;
    anyhow::ensure!(
        wasm == native.to_text(),
        "wasm {wasm} != native {}",
        native.to_text()
    );
    println!(
        "  native                       {:>8.1} ms",
        native_time.as_secs_f64() * 1e3
    );
    println!(
        "  wasm task (whole task)       {:>8.1} ms",
        wasm_time.as_secs_f64() * 1e3
    );
    println!(
        "  ratio wasm / native: {:.2}x (same bits: {})",
        wasm_time.as_secs_f64() / native_time.as_secs_f64(),
        wasm == native.to_text()
    );
    Ok(())
}

/// 5. An echo of a large payload through the data folder, as in benchmark 1.
async fn data(sizes: &Sizes) -> anyhow::Result<()> {
    let mib = sizes.echo_bytes as f64 / (1 << 20) as f64;
    println!(
        "\n5. data: echo of {mib:.0} MiB through the data folder (read payload, write output)"
    );
    let workers = start_workers().await?;
    let wasm_client = workers.wasm.client().await;
    let payload: Vec<u8> = (0..sizes.echo_bytes).map(|i| (i % 251) as u8).collect();
    // Alternating rounds, each from a written-back page cache. Large fresh buffers cost very
    // different amounts from one round to the next on a VM (the host backs guest memory
    // lazily), so both the best round and the median round are given.
    let results = drive(
        &[&workers.native.client, &wasm_client],
        &workers.agent,
        sizes.echo_rounds,
        &payload,
        true,
    )
    .await;
    let rates = print_rates(&["native Rust worker", "armonik-wasm"], results, mib);
    println!(
        "  ratio armonik-wasm / native throughput: best {:.2}x  median {:.2}x",
        rates[1].0 / rates[0].0,
        rates[1].1 / rates[0].1
    );
    Ok(())
}

/// 6. Memory: the serve process idle and after tasks; the cost of one live instance.
async fn memory(sizes: &Sizes) -> anyhow::Result<()> {
    println!("\n6. memory");
    let workers = start_workers().await?;
    let (wasm_pid, native_pid) = (workers.wasm.pid(), workers.native.pid());
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "  idle RSS: armonik-wasm serve {:.1} MiB, native worker {:.1} MiB ({:.2}x)",
        mib(proc_status_kib(wasm_pid, "VmRSS:")),
        mib(proc_status_kib(native_pid, "VmRSS:")),
        proc_status_kib(wasm_pid, "VmRSS:") as f64
            / proc_status_kib(native_pid, "VmRSS:").max(1) as f64
    );
    let wasm_client = workers.wasm.client().await;
    drive(
        &[&workers.native.client, &wasm_client],
        &workers.agent,
        sizes.tasks / 5 + 10,
        b"",
        false,
    )
    .await;
    println!(
        "  after tasks: RSS {:.1} MiB (peak {:.1} MiB), native {:.1} MiB (peak {:.1} MiB)",
        mib(proc_status_kib(wasm_pid, "VmRSS:")),
        mib(proc_status_kib(wasm_pid, "VmHWM:")),
        mib(proc_status_kib(native_pid, "VmRSS:")),
        mib(proc_status_kib(native_pid, "VmHWM:"))
    );

    // Live instances kept in this process: what each costs in resident memory.
    let sandbox = sandbox(true).await?;
    let setup = Setup::new(&sandbox, &guest("echo"), None).await?;
    let before = proc_status_kib(std::process::id(), "VmRSS:");
    let mut stores = Vec::with_capacity(sizes.instances);
    for _ in 0..sizes.instances {
        stores.push(instantiate(&sandbox, &setup).await?);
    }
    let after = proc_status_kib(std::process::id(), "VmRSS:");
    println!(
        "  per live instance (Rust echo guest, {} instances): {:.0} KiB",
        sizes.instances,
        (after.saturating_sub(before)) as f64 / sizes.instances as f64
    );
    Ok(())
}
