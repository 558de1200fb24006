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

#[path = "../tests/common/mod.rs"]
mod common;

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
use armonik_wasm::sandbox::guest_log::TaskIds;
use armonik_wasm::sandbox::{Sandbox, SandboxConfig, TaskState, wasi_context};
use armonik_wasm::worker::task_runner::{RunnerConfig, TaskRunner};
use common::polyglot::Lang;
use common::python::find_python;
use common::*;
use hyper_util::rt::TokioIo;
use tokio_stream::wrappers::UnixListenerStream;
use wasmtime::Store;

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

/// Runs `tasks` echo tasks of `payload` bytes on each client through Process over a unix
/// socket, as the polling agent does, alternating between the clients so that both see the
/// same machine noise; returns, per client, the latencies of the Process calls and their sum.
/// With `settle`, the page cache is written back before each call (`sync`, not timed): a large
/// echo then measures the workers, not what the kernel still had to flush from the call before.
async fn drive(
    clients: &[&WorkerClient],
    agent: &FakeAgent,
    tasks: usize,
    payload: &[u8],
    settle: bool,
) -> Vec<(Vec<Duration>, Duration)> {
    let mut results = vec![(Vec::with_capacity(tasks), Duration::ZERO); clients.len()];
    for _ in 0..tasks {
        for (client, (latencies, total)) in clients.iter().zip(&mut results) {
            let (elapsed, result, _) = echo_task(client, agent, payload, settle).await;
            assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
            latencies.push(elapsed);
            *total += elapsed;
            agent.clear_records();
        }
    }
    results
}

/// One echo task of `payload` through `client`, as the polling agent runs it (folder written,
/// task bound to the agent, Process): the latency of the Process call, its result, and the
/// task's folder, whose output can then be read.
async fn echo_task(
    client: &WorkerClient,
    agent: &FakeAgent,
    payload: &[u8],
    settle: bool,
) -> (Duration, Result<Output, tonic::Status>, TaskFolder) {
    let folder = TaskFolder::new();
    let request = folder.process_request().payload(payload.to_vec()).build();
    agent.bind_request(&request);
    if settle {
        let synced = Command::new("sync").status();
        assert!(matches!(synced, Ok(s) if s.success()), "sync: {synced:?}");
    }
    let started = Instant::now();
    let result = client.process(request).await;
    (started.elapsed(), result, folder)
}

/// A baseline worker in a process of its own, serving the Worker contract on a unix socket in
/// its own folder, its output in a log there; killed on drop.
struct BaselineWorker {
    child: std::process::Child,
    client: WorkerClient,
    /// Holds the socket and the log as long as the worker runs.
    _dir: tempfile::TempDir,
}

impl BaselineWorker {
    /// Starts `command(socket)` and waits until it answers HealthCheck on `socket`; says
    /// what it logged if it exits or does not answer within 20 s.
    async fn start(name: &str, command: impl FnOnce(&Path) -> Command) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("worker.sock");
        let log = File::create(dir.path().join("worker.log"))?;
        let mut child = command(&socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(client) = WorkerClient::connect(&Address::Unix(socket.clone())).await
                && client.health_check().await.is_ok()
            {
                return Ok(Self {
                    child,
                    client,
                    _dir: dir,
                });
            }
            let log = || std::fs::read_to_string(dir.path().join("worker.log")).unwrap_or_default();
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("{name} exited with {status} before serving:\n{}", log());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("{name} did not serve within 20 s:\n{}", log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BaselineWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The two workers under the same driver: armonik-wasm serve with the echo guest, and a
/// native worker on the official `armonik` crate doing the same work.
struct Workers {
    agent: FakeAgent,
    wasm: Worker,
    native: BaselineWorker,
}

async fn start_workers() -> anyhow::Result<Workers> {
    let agent = FakeAgent::start();
    let agent_socket = unix_socket(&agent)?;
    // The worker logs at warn, not info: the baseline does not log per task either.
    let wasm = Worker::spawn_custom(
        &guest("echo"),
        &agent,
        Transport::Unix,
        &[],
        &[("RUST_LOG", "warn")],
    )
    .await;
    let exe = std::env::current_exe()?;
    let native = BaselineWorker::start("the native worker", |socket| {
        let mut command = Command::new(exe);
        command.args(["native-worker", path(socket), path(&agent_socket)]);
        command
    })
    .await?;
    Ok(Workers {
        agent,
        wasm,
        native,
    })
}

/// The fake agent's socket.
fn unix_socket(agent: &FakeAgent) -> anyhow::Result<PathBuf> {
    match agent.address() {
        Address::Unix(socket) => Ok(socket.clone()),
        Address::Tcp(_) => anyhow::bail!("the fake agent listens on TCP, not a unix socket"),
    }
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

async fn sandbox(pooling: bool) -> anyhow::Result<Arc<Sandbox>> {
    Ok(Arc::new(Sandbox::new(SandboxConfig {
        max_concurrent_tasks: 256,
        memory_limit: 2 << 30,
        pooling,
        instantiate_ahead: false,
    })?))
}

/// 2. Per-task instantiation: Store + WASI context with one preopen + instantiate, for the Rust
///    echo guest and, when its tools are installed, the Python one.
async fn instantiation(sizes: &Sizes) -> anyhow::Result<()> {
    println!("\n2. instantiation: Store + WasiCtx (one preopen) + instantiate, echo guest");
    let mut guests = vec![("Rust", guest("echo"))];
    match polyglot::try_component(polyglot::Lang::Python, "echo") {
        Ok(wasm) => guests.push(("Python", wasm)),
        Err(error) => println!(
            "  Python guest skipped: {}",
            error.lines().next().unwrap_or_default()
        ),
    }
    for (language, wasm) in guests {
        let mut p50s = Vec::new();
        for pooling in [false, true] {
            let (mut samples, elapsed) =
                task_starts(pooling, &wasm, sizes.instantiations, None).await?;
            let name = format!(
                "{language}, {}",
                if pooling { "pooling" } else { "on-demand" }
            );
            p50s.push(print_latencies(&name, &mut samples, elapsed)[0]);
        }
        println!(
            "  ratio pooling / on-demand ({language}): p50 {:.2}x",
            p50s[1].as_secs_f64() / p50s[0].as_secs_f64()
        );
    }
    Ok(())
}

/// `n` per-task starts of `wasm` (after 100 not counted), made as the task runner makes them:
/// Store + WASI context with the task's folder preopened + instantiate and, with `call`, the
/// guest's `process` called once with that context. The samples, and the time all took.
async fn task_starts(
    pooling: bool,
    wasm: &Path,
    n: usize,
    call: Option<&TaskContext>,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let sandbox = sandbox(pooling).await?;
    let folder = tempfile::tempdir()?;
    if let Some(context) = call {
        std::fs::write(folder.path().join(&context.payload_id), b"")?;
    }
    let work = tempfile::tempdir()?;
    let agent = Arc::new(LocalAgent::new(work.path())?);
    let ids = Arc::new(TaskIds {
        session_id: "session".into(),
        task_id: "task".into(),
    });
    let disk = DiskCache::open(&cache_dir(), sandbox.engine(), Default::default()).ok();
    let components = Components::new(sandbox.clone(), Some(wasm), None, disk).await?;
    let pre = components
        .for_task(&Default::default(), &Folder::open(folder.path())?)
        .await?;
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n + 100 {
        let t = Instant::now();
        // Dropped at the end of the iteration, outside the measured time.
        let (mut store, instance) =
            instantiate(&sandbox, &pre.pre, folder.path(), &ids, &agent).await?;
        if let Some(context) = call {
            // What the guest answers does not matter here (`fail` answers an error); a trap
            // would.
            let _answer = instance
                .armonik_worker_task()
                .call_process(&mut store, context)
                .await?;
        }
        if i >= 100 {
            samples.push(t.elapsed());
        }
    }
    Ok((samples, started.elapsed()))
}

/// One task's store and instance, made as the task runner makes them (the task is not run).
async fn instantiate(
    sandbox: &Sandbox,
    pre: &WorkerPre<TaskState>,
    folder: &Path,
    ids: &Arc<TaskIds>,
    agent: &Arc<LocalAgent>,
) -> anyhow::Result<(Store<TaskState>, Instance)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let bridge = AgentBridge::new(
        agent.clone(),
        TaskIdentity {
            token: String::new(),
            session_id: String::new(),
            expected_outputs: Vec::new(),
            library: None,
        },
        1 << 20,
        deadline,
        Arc::new(Folder::open(folder)?),
    );
    let mut store = sandbox.new_store(wasi_context(folder, ids)?, bridge, deadline);
    let instance = pre.instantiate_async(&mut store).await?;
    Ok((store, instance))
}

/// Runs `armonik-wasm <args>` `n` times; median wall time from process start to exit.
fn median_run(n: usize, args: &[&str], cache: &Path) -> anyhow::Result<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_armonik-wasm"))
            .args(args)
            .env("ARMONIK_WASM_CACHE_DIR", cache)
            .output()?;
        samples.push(started.elapsed());
        anyhow::ensure!(output.status.success(), "{args:?}: {output:?}");
    }
    Ok(percentiles(&mut samples)[0])
}

/// 3. Cold start of `armonik-wasm run`, process start to exit.
fn cold_start(sizes: &Sizes) -> anyhow::Result<()> {
    println!(
        "\n3. cold start: `armonik-wasm run` of the echo guest, process start to exit (median)"
    );
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("cache");
    let out = dir.path().join("out");
    let echo = guest("echo");
    let compiled = dir.path().join("echo.cwasm");
    median_run(1, &["compile", path(&echo), "-o", path(&compiled)], &cache)?;
    let run = |component: &Path, extra: &[&str]| -> anyhow::Result<Duration> {
        let mut args = vec!["run", path(component), "--outputs", path(&out)];
        args.extend_from_slice(extra);
        median_run(sizes.cold_starts, &args, &cache)
    };
    let aot = run(&compiled, &["--no-cache"])?;
    run(&echo, &[])?; // fills the cache
    let cached = run(&echo, &[])?;
    let uncached = run(&echo, &["--no-cache"])?;
    for (name, time) in [
        ("AOT .cwasm", aot),
        (".wasm, on-disk cache hit", cached),
        (".wasm, no cache (compiles)", uncached),
    ] {
        println!(
            "  {name:<28} {:>8.2} ms  ({:.2}x the AOT time)",
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() / aot.as_secs_f64()
        );
    }
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
    let agent = Arc::new(LocalAgent::new(work.path())?);
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

/// 8. Languages (issue 14, targets 1 to 3): the Python and JavaScript echo guests under
///    `armonik-wasm serve` against ArmoniK's official Python SDK worker doing the same echo
///    (`benches/python_sdk_worker.py`), all three under the same driver and fake agent,
///    alternating; then each guest's per-task start, in-process.
async fn languages(sizes: &Sizes, one_gib: bool) -> anyhow::Result<()> {
    println!(
        "\n8. languages: Python and JavaScript guests under `serve` against ArmoniK's Python SDK \
         worker, echo task"
    );
    let python = match find_python() {
        Ok(python) => python,
        Err(error) => {
            println!(
                "  skipped: no Python SDK worker to compare with: {}",
                error.lines().next().unwrap_or_default()
            );
            return Ok(());
        }
    };
    let agent = FakeAgent::start();
    let agent_socket = unix_socket(&agent)?;
    let script = repo_dir().join("benches").join("python_sdk_worker.py");
    // Configured as the polling agent configures a worker: ArmoniK's variables.
    let sdk = BaselineWorker::start("the Python SDK worker", |socket| {
        let mut command = Command::new(&python);
        command
            .arg(&script)
            .env("ComputePlane__WorkerChannel__Address", socket)
            .env(
                "ComputePlane__WorkerChannel__SocketType",
                "unixdomainsocket",
            )
            .env("ComputePlane__AgentChannel__Address", &agent_socket)
            .env("ComputePlane__AgentChannel__SocketType", "unixdomainsocket");
        command
    })
    .await?;
    let mut guests = Vec::new();
    for lang in [Lang::Python, Lang::Js] {
        match polyglot::try_component(lang, "echo") {
            Ok(wasm) => {
                // The shared cache holds the component compiled by `try_component`; warn
                // level, as in benchmark 1 (the SDK worker logs nothing per task either).
                let worker = Worker::spawn_custom(
                    &wasm,
                    &agent,
                    Transport::Unix,
                    &["--cache-dir", path(&cache_dir())],
                    &[("RUST_LOG", "warn")],
                )
                .await;
                let client = worker.client().await;
                guests.push((lang, worker, client));
            }
            Err(error) => println!(
                "  skipped: the {} guest: {}",
                lang.name(),
                error.lines().next().unwrap_or_default()
            ),
        }
    }
    let mut names = vec!["Python SDK worker".to_owned()];
    names.extend(
        guests
            .iter()
            .map(|(lang, ..)| format!("armonik-wasm ({} guest)", lang.name())),
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut clients = vec![&sdk.client];
    clients.extend(guests.iter().map(|(_, _, client)| client));
    for (name, client) in names.iter().zip(&clients) {
        check_echo(name, client, &agent).await?;
    }
    drive(&clients, &agent, 20, b"", false).await;

    println!(
        "  no-op task (empty payload; its output written and notified), {} tasks each:",
        sizes.language_tasks
    );
    let results = drive(&clients, &agent, sizes.language_tasks, b"", false).await;
    let latencies: Vec<[Duration; 3]> = names
        .iter()
        .zip(results)
        .map(|(name, (mut samples, total))| print_latencies(name, &mut samples, total))
        .collect();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    for (name, [p50, p90, _]) in names.iter().zip(&latencies).skip(1) {
        println!(
            "  ratio {name} / Python SDK worker: p50 {:.2}x  p90 {:.2}x  (issue 14: p50 <= 1.0x)",
            ratio(*p50, latencies[0][0]),
            ratio(*p90, latencies[0][1])
        );
    }

    let large = [(sizes.language_echo_bytes, sizes.language_echo_rounds)];
    let huge = one_gib.then_some((1 << 30, sizes.echo_rounds));
    for (bytes, rounds) in large.into_iter().chain(huge) {
        let mib = bytes as f64 / (1 << 20) as f64;
        println!("  echo of {mib:.0} MiB, each round from a written-back page cache:");
        let payload: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
        // A first round, not measured: it warms the workers up to buffers of this size, and
        // a worker that cannot echo this much (a guest past its memory limit) is said and
        // left out of the rounds.
        let mut able = Vec::new();
        for (name, client) in names.iter().zip(&clients) {
            let (_, result, _) = echo_task(client, &agent, &payload, false).await;
            agent.clear_records();
            match result {
                Ok(Output::Ok) => able.push((*name, *client)),
                Ok(Output::Error { details: why }) => println!("  skipped: {name}: {why}"),
                Err(status) => println!(
                    "  skipped: {name}: {}",
                    status.message().lines().next().unwrap_or_default()
                ),
            }
        }
        if able.first().map(|(name, _)| *name) != names.first().copied() {
            continue;
        }
        let (able_names, able_clients): (Vec<&str>, Vec<&WorkerClient>) = able.into_iter().unzip();
        let results = drive(&able_clients, &agent, rounds, &payload, true).await;
        let rates = print_rates(&able_names, results, mib);
        for (name, (best, median)) in able_names.iter().zip(&rates).skip(1) {
            println!(
                "  ratio {name} / Python SDK worker throughput: best {:.2}x  median {:.2}x  \
                 (issue 14: >= 1.0x)",
                best / rates[0].0,
                median / rates[0].1
            );
        }
    }
    // The workers are idle from here on; stopped so that they take nothing from what follows.
    drop((guests, sdk));

    println!(
        "  per-task start, in-process (pooling, p50 of {}): store + instance, then with the \
         first call into the guest (`fail`: reads its empty payload, returns an error, no \
         agent call); issue 14: <= 100 µs",
        sizes.language_tasks
    );
    let context = TaskContext {
        session_id: "session".into(),
        task_id: "task".into(),
        options: task_options_to_wit(&TaskOptions::default()),
        payload_id: "payload".into(),
        data_dependencies: Vec::new(),
        expected_output_ids: vec!["output".into()],
        data_folder: "/data".into(),
        data_chunk_max_size: 1 << 20,
    };
    for lang in [Lang::Python, Lang::Js] {
        let (Ok(echo), Ok(fail)) = (
            polyglot::try_component(lang, "echo"),
            polyglot::try_component(lang, "fail"),
        ) else {
            continue;
        };
        let n = sizes.language_tasks;
        let (mut samples, elapsed) = task_starts(true, &echo, n, None).await?;
        let name = format!("{}: store + instance", lang.name());
        print_latencies(&name, &mut samples, elapsed);
        let (mut samples, elapsed) = task_starts(true, &fail, n, Some(&context)).await?;
        let name = format!("{}: + first call", lang.name());
        print_latencies(&name, &mut samples, elapsed);
    }
    Ok(())
}

/// One small echo through `client`, checked: its output holds the payload and is the one
/// result notified, so that the figures are of workers doing the same work.
async fn check_echo(name: &str, client: &WorkerClient, agent: &FakeAgent) -> anyhow::Result<()> {
    let payload = b"echo check \x00\xff";
    let (_, result, folder) = echo_task(client, agent, payload, false).await;
    let notified = agent.notified_ids();
    agent.clear_records();
    anyhow::ensure!(matches!(result, Ok(Output::Ok)), "{name}: {result:?}");
    anyhow::ensure!(
        notified.len() == 1 && folder.try_read(&notified[0]).as_deref() == Some(&payload[..]),
        "{name} did not echo its payload (notified: {notified:?})"
    );
    Ok(())
}

/// Prints the best and the median throughput of each worker's echo rounds of `mib` MiB (as
/// [`drive`] returns them, in the order of `names`); returns them, in MiB/s.
fn print_rates(
    names: &[&str],
    results: Vec<(Vec<Duration>, Duration)>,
    mib: f64,
) -> Vec<(f64, f64)> {
    let mut rates = Vec::new();
    for (name, (mut times, _)) in names.iter().zip(results) {
        times.sort_unstable();
        let rate = |d: Duration| mib / d.as_secs_f64();
        let (best, median) = (rate(times[0]), rate(times[times.len() / 2]));
        println!(
            "  {name:<32} best {best:>6.0} MiB/s  median {median:>6.0} MiB/s  ({} rounds)",
            times.len()
        );
        rates.push((best, median));
    }
    rates
}

/// User + system CPU time a process has used (from /proc/<pid>/stat, in clock ticks of 10 ms:
/// meaningful over thousands of tasks).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
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
    let folder = tempfile::tempdir()?;
    let work = tempfile::tempdir()?;
    let agent = Arc::new(LocalAgent::new(work.path())?);
    let sandbox = sandbox(true).await?;
    let components = Components::new(sandbox.clone(), Some(&guest("echo")), None, None).await?;
    let pre = components
        .for_task(&Default::default(), &Folder::open(folder.path())?)
        .await?;
    let ids = Arc::new(TaskIds {
        session_id: "s".into(),
        task_id: "t".into(),
    });
    let before = proc_status_kib(std::process::id(), "VmRSS:");
    let mut stores = Vec::with_capacity(sizes.instances);
    for _ in 0..sizes.instances {
        stores.push(instantiate(&sandbox, &pre.pre, folder.path(), &ids, &agent).await?);
    }
    let after = proc_status_kib(std::process::id(), "VmRSS:");
    println!(
        "  per live instance (Rust echo guest, {} instances): {:.0} KiB",
        sizes.instances,
        (after.saturating_sub(before)) as f64 / sizes.instances as f64
    );
    Ok(())
}

/// The baseline worker: the official `armonik` crate's Worker service, doing what the echo
/// guest does (payload file → output file, then NotifyResultData), natively.
fn native_worker(socket: &Path, agent_socket: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let agent_socket = agent_socket.to_owned();
        let channel = tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector_lazy(tower::service_fn(move |_| {
                let path = agent_socket.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }));
        let agent = armonik::Client::with_channel(channel).into_agent();
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket)?;
        tonic::transport::Server::builder()
            .add_service(NativeWorker { agent }.worker_server())
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await?;
        Ok(())
    })
}

struct NativeWorker {
    agent: armonik::client::Agent<armonik::Client>,
}

impl armonik::server::WorkerService for NativeWorker {
    async fn health_check(
        self: Arc<Self>,
        _request: armonik::worker::health_check::Request,
        _cancellation: armonik::server::RequestContext,
    ) -> Result<armonik::worker::health_check::Response, tonic::Status> {
        Ok(armonik::worker::health_check::Response::Serving)
    }

    async fn process(
        self: Arc<Self>,
        request: armonik::worker::process::Request,
        _cancellation: armonik::server::RequestContext,
    ) -> Result<armonik::worker::process::Response, tonic::Status> {
        let folder = PathBuf::from(&request.data_folder);
        let io = |e: std::io::Error| tonic::Status::internal(e.to_string());
        let payload = std::fs::read(folder.join(&request.payload_id)).map_err(io)?;
        let output = &request.expected_output_keys[0];
        std::fs::write(folder.join(output), payload).map_err(io)?;
        self.agent
            .clone()
            .notify_result_data(
                &request.communication_token,
                &request.session_id,
                [output.clone()],
            )
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(armonik::worker::process::Response { output: Output::Ok })
    }
}
