//! What a task or ArmoniK's agent may cost the host, and what the host never refuses: messages
//! of any size on both channels (as ArmoniK's own workers accept them), a deadline that bounds
//! the whole task.
//!
//! Issue 11, "bound everything a task or a client can cost the host", with the hostile guest
//! (`guests/hostile`) against the real binary: `run`, and `serve` with the official `armonik`
//! crate playing ArmoniK's agent. Grouped by guarantee: 1. the deadline bounds the whole task,
//! whatever the guest waits on; 2. HealthCheck never waits on a guest, and one write may be
//! as large as the task's memory; 3. loading a task's component counts against its deadline,
//! one compilation at a time, shared between tasks; 4. nothing a task leaves behind grows
//! without bound (the compile cache, `run`'s work folders); 5. parity at the edges (guest
//! logs, empty lists in agent calls). Timing bounds are generous: seconds, not a minute.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use armonik::Output;
use armonik::worker::process;
use common::polyglot::{Lang, component};
use common::*;
use sha2::{Digest, Sha256};
use tonic::Code;

/// Names for `create-results-metadata`: enough that the agent's reply is about 5 MB, past
/// gRPC's default 4 MiB receive limit.
const MANY_RESULTS: usize = 50_000;

/// The probe's script creating [`MANY_RESULTS`] results without data.
fn many_results_script() -> String {
    let names: Vec<String> = (0..MANY_RESULTS).map(|i| format!("r{i}")).collect();
    format!("metadata {}", names.join(" "))
}

/// The probe's report for that script: `ok r0=<id> r1=<id> ...`, one entry per result.
fn assert_every_result_created(report: &str) {
    let line = report.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("ok r0="),
        "{}",
        &line[..line.len().min(200)]
    );
    assert_eq!(line.split(' ').count(), MANY_RESULTS + 1);
}

#[tokio::test]
async fn an_agent_reply_of_any_size_reaches_the_guest() {
    let harness = Harness::start("probe").await;
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .payload(many_results_script())
        .build();
    let output = request.expected_output_keys[0].clone();
    match harness.run_task(request).await {
        Ok(Output::Ok) => {}
        other => panic!("expected Output.ok, got {other:?}"),
    }
    assert_every_result_created(&String::from_utf8_lossy(&folder.read(&output)));
    assert_eq!(harness.agent.created_results().len(), MANY_RESULTS);
}

#[tokio::test]
async fn a_process_request_of_any_size_is_accepted() {
    let harness = Harness::start("echo").await;
    let folder = TaskFolder::new();
    // One task option of 5 MiB: the request is past gRPC's default 4 MiB receive limit.
    let request = folder
        .process_request()
        .payload("small payload")
        .option("large", "x".repeat(5 << 20))
        .build();
    let output = request.expected_output_keys[0].clone();
    match harness.run_task(request).await {
        Ok(Output::Ok) => {}
        other => panic!("expected Output.ok, got {other:?}"),
    }
    assert_eq!(folder.read(&output), b"small payload");
}

#[test]
fn run_creates_as_many_results_as_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let payload = dir.path().join("payload");
    std::fs::write(&payload, many_results_script()).expect("payload");
    let out = dir.path().join("out");
    let ran = armonik_wasm(&[
        "run",
        path(&guest("probe")),
        "--payload",
        path(&payload),
        "--outputs",
        path(&out),
    ]);
    assert!(ran.success, "{}", ran.all());
    let report = std::fs::read_to_string(out.join("output")).expect("report");
    assert_every_result_created(&report);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Bytes in a MiB.
const MIB: u64 = 1 << 20;

/// Held by the tests that load the disk or both cores (gigabytes of writes, a Python
/// compilation, litter), so that they do not run at once: each measures or bounds time, and
/// the others would be its noise on a 2-core machine. Async tests take it with `lock().await`,
/// the others with `blocking_lock()`.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `armonik-wasm run <hostile> --payload-text <payload> <extra>... --outputs <dir>/out`, timed;
/// returns the folder holding `out`.
fn run_hostile(payload: &str, extra: &[&str]) -> (tempfile::TempDir, Ran, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let hostile = guest("hostile");
    let mut args = vec!["run", path(&hostile), "--payload-text", payload];
    args.extend_from_slice(extra);
    args.extend(["--outputs", path(&out)]);
    let started = Instant::now();
    let ran = armonik_wasm(&args);
    (dir, ran, started.elapsed())
}

/// The size of the file at `path`.
fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len()
}

/// Runs `request` under `serve` as Core does, but with the client's own deadline
/// `client_deadline` instead of the request's `max_duration`; returns the outcome and how
/// long the call took.
async fn process_timed(
    harness: &Harness,
    request: process::Request,
    client_deadline: Duration,
) -> (Result<Output, tonic::Status>, Duration) {
    harness.agent.bind_request(&request);
    let started = Instant::now();
    let result = harness
        .client
        .process_with_deadline(request, Some(client_deadline))
        .await;
    let elapsed = started.elapsed();
    harness.agent.unbind();
    (result, elapsed)
}

/// Runs a hostile task of payload `payload` under `serve`; asserts `Output.ok` and returns
/// what it wrote to its output.
async fn served_report(harness: &Harness, payload: &str) -> Vec<u8> {
    let folder = TaskFolder::new();
    let request = folder.process_request().payload(payload).build();
    let output = request.expected_output_keys[0].clone();
    let result = harness.run_task(request).await;
    assert!(
        matches!(result, Ok(Output::Ok)),
        "{payload}: {result:?}\n{}",
        harness.worker.log()
    );
    folder.read(&output)
}

// ---------------------------------------------------------------------------------------------
// 1. The deadline bounds the whole task, whatever the guest is doing
// ---------------------------------------------------------------------------------------------

/// Far past any deadline of these tests: ten minutes.
const FOREVER_MS: &str = "600000";

#[test]
fn run_stops_a_guest_sleeping_or_polling_the_clock_at_its_deadline() {
    for mode in ["sleep", "poll-clock"] {
        let payload = format!("{mode} {FOREVER_MS}");
        let (_dir, ran, elapsed) = run_hostile(&payload, &["--default-max-duration", "2"]);
        assert!(!ran.success, "{payload}: {}", ran.all());
        assert!(
            ran.stdout.contains("1 tasks run (1 timeout)"),
            "{payload}: {}",
            ran.all()
        );
        assert!(
            elapsed < Duration::from_secs(10),
            "{payload}: run took {elapsed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_stops_a_guest_waiting_on_the_clock_or_the_agent_at_its_deadline() {
    let harness = Harness::start("hostile").await;
    let cases = [
        format!("sleep {FOREVER_MS}"),
        format!("poll-clock {FOREVER_MS}"),
        // Its one agent call (the notification of its output) is answered in ten minutes.
        "write late".to_owned(),
    ];
    for payload in cases {
        if payload.starts_with("write") {
            let delay = Duration::from_millis(FOREVER_MS.parse().expect("ms"));
            harness
                .agent
                .inject_delay(methods::NOTIFY_RESULT_DATA, delay);
        }
        let folder = TaskFolder::new();
        let request = folder
            .process_request()
            .payload(payload.as_str())
            .max_duration(Duration::from_secs(2))
            .build();
        // ArmoniK would give up at the task's deadline; this client waits a minute, so only
        // the host's own deadline can end the call in seconds.
        let (result, elapsed) = process_timed(&harness, request, Duration::from_secs(60)).await;
        let status = result.expect_err("stopped at its deadline");
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{payload}: {status:?}"
        );
        assert!(
            status.message().contains("max duration"),
            "{payload}: not the host's deadline: {status:?}"
        );
        assert!(
            elapsed < Duration::from_secs(10),
            "{payload}: Process took {elapsed:?}"
        );
        harness.agent.clear_faults();
        // The next task runs normally.
        assert_eq!(
            served_report(&harness, "write next").await,
            b"next",
            "after {payload}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. HealthCheck never waits on a guest; one write may be as large as the task's memory
// ---------------------------------------------------------------------------------------------

/// HealthCheck latencies, sampled every 100 ms from a client of its own until stopped.
struct HealthProbe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Vec<Duration>, Vec<String>)>,
}

impl HealthProbe {
    async fn start(worker: &Worker) -> Self {
        let client = worker.client().await;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let (mut latencies, mut failures) = (Vec::new(), Vec::new());
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stopped.load(Ordering::Relaxed) {
                ticks.tick().await;
                let started = Instant::now();
                // ArmoniK's agent gives a HealthCheck 5 s.
                let health =
                    tokio::time::timeout(Duration::from_secs(5), client.health_check()).await;
                match health {
                    Ok(Ok(ServingStatus::Serving)) => latencies.push(started.elapsed()),
                    other => failures.push(format!("{other:?}")),
                }
            }
            (latencies, failures)
        });
        Self { stop, task }
    }

    /// Stops sampling; returns the latencies of the calls that answered SERVING and what the
    /// others returned.
    async fn finish(self) -> (Vec<Duration>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("health probe")
    }
}

/// The `p`-th quantile (0 to 1) of `values`, sorted in place.
fn quantile(values: &mut [Duration], p: f64) -> Duration {
    values.sort_unstable();
    let rank = (p * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_health_checks_stay_fast_while_a_guest_writes_gigabytes() {
    let _alone = HEAVY.lock().await;
    const TOTAL_MIB: u64 = 1536;
    let harness = Harness::start("hostile").await;
    let probe = HealthProbe::start(&harness.worker).await;
    let folder = TaskFolder::new();
    assert_room_for(folder.path(), TOTAL_MIB * MIB);
    let request = folder
        .process_request()
        .payload(format!("big-writes {TOTAL_MIB} 64"))
        .build();
    let output = folder.path().join(&request.expected_output_keys[0]);
    let started = Instant::now();
    let result = harness.run_task(request).await;
    let elapsed = started.elapsed();
    let (mut latencies, failures) = probe.finish().await;
    assert!(
        matches!(result, Ok(Output::Ok)),
        "{result:?}\n{}",
        harness.worker.log()
    );
    assert_eq!(file_size(&output), TOTAL_MIB * MIB);
    assert!(failures.is_empty(), "failed health checks: {failures:?}");
    assert!(latencies.len() >= 10, "{} health checks", latencies.len());
    let p50 = quantile(&mut latencies, 0.5);
    let p99 = quantile(&mut latencies, 0.99);
    let max = quantile(&mut latencies, 1.0);
    eprintln!(
        "{TOTAL_MIB} MiB in 64 MiB writes took {elapsed:?}; {} health checks: p50 {p50:?}, \
         p99 {p99:?}, max {max:?}",
        latencies.len()
    );
    assert!(p99 < Duration::from_millis(50), "HealthCheck p99 {p99:?}");
}

/// One write call of this many MiB: past wasmtime's default 128 MiB of hostcall fuel, and
/// past the 256 MiB at which a write used to trap.
const ONE_WRITE_MIB: u64 = 300;

#[tokio::test(flavor = "multi_thread")]
async fn serve_takes_a_single_write_of_300_mib() {
    let _alone = HEAVY.lock().await;
    let harness = Harness::start("hostile").await;
    let folder = TaskFolder::new();
    assert_room_for(folder.path(), ONE_WRITE_MIB * MIB);
    let request = folder
        .process_request()
        .payload(format!("one-write {ONE_WRITE_MIB}"))
        .build();
    let output = folder.path().join(&request.expected_output_keys[0]);
    let result = harness.run_task(request).await;
    assert!(
        matches!(result, Ok(Output::Ok)),
        "{result:?}\n{}",
        harness.worker.log()
    );
    assert_eq!(file_size(&output), ONE_WRITE_MIB * MIB);
}

#[test]
fn run_takes_a_single_write_of_300_mib() {
    let _alone = HEAVY.blocking_lock();
    assert_room_for(&std::env::temp_dir(), ONE_WRITE_MIB * MIB);
    let (dir, ran, _) = run_hostile(&format!("one-write {ONE_WRITE_MIB}"), &[]);
    assert!(ran.success, "{}", ran.all());
    assert_eq!(
        file_size(&dir.path().join("out/output")),
        ONE_WRITE_MIB * MIB
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Loading a task's component counts against its deadline, one compilation at a time
// ---------------------------------------------------------------------------------------------

/// The result id under which tasks ship the Python component.
const LIBRARY: &str = "python-echo-library";

/// A Python echo task shipping its component as its library blob (ArmoniK's dynamic-worker
/// convention), with `max_duration`.
fn library_task(folder: &TaskFolder, library: &[u8], max_duration: Duration) -> process::Request {
    folder
        .process_request()
        .payload("echoed by python")
        .dependency(LIBRARY, library)
        .option("ConventionVersion", "v1")
        .option("LibraryBlobId", LIBRARY)
        .max_duration(max_duration)
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_compiles_a_library_once_within_the_deadlines_of_the_tasks_waiting_for_it() {
    let _alone = HEAVY.lock().await;
    // Fails, saying to run `.ci/install-polyglot-tools`, when the Python tools are missing.
    let library = std::fs::read(component(Lang::Python, "echo")).expect("python-echo.wasm");
    // Nothing on disk: the library compiles in this process, for seconds (tens on a debug
    // host), while the tasks that need it keep arriving with a 1 s budget.
    let harness = Harness::start_with("echo", &["--no-cache"]).await;
    for attempt in 0..6 {
        let folder = TaskFolder::new();
        let request = library_task(&folder, &library, Duration::from_secs(1));
        let (result, elapsed) = process_timed(&harness, request, Duration::from_millis(1500)).await;
        let code = result.as_ref().err().map(tonic::Status::code);
        assert!(
            matches!(code, Some(Code::DeadlineExceeded | Code::Cancelled)),
            "attempt {attempt}: {result:?}"
        );
        assert!(
            elapsed < Duration::from_secs(3),
            "attempt {attempt}: Process took {elapsed:?}"
        );
    }
    let folder = TaskFolder::new();
    let request = library_task(&folder, &library, Duration::from_secs(120));
    let output = request.expected_output_keys[0].clone();
    let result = harness.run_task(request).await;
    assert!(
        matches!(result, Ok(Output::Ok)),
        "{result:?}\n{}",
        harness.worker.log()
    );
    assert_eq!(folder.read(&output), b"echoed by python");
    let log = harness.worker.log();
    let compiled = (log.lines())
        .filter(|l| l.contains("component compiled") && l.contains(LIBRARY))
        .count();
    assert_eq!(compiled, 1, "the library compiled {compiled} times\n{log}");
    // The host itself ended each of the six at its deadline, whatever the client did.
    let ended = common::task_wall_times(&log, |l| {
        l.contains("elapsed while its component was being loaded")
    });
    assert_eq!(ended.len(), 6, "{ended:?}\n{log}");
    assert!(
        ended.iter().all(|&d| d < Duration::from_secs(10)),
        "tasks of 1 s ended after {ended:?}"
    );

    let Harness {
        mut worker, agent, ..
    } = harness;
    worker.terminate();
    let started = Instant::now();
    let status = worker.wait_exit(Duration::from_secs(5)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?} after {:?}\n{}",
        started.elapsed(),
        worker.log()
    );
    drop(agent);
}

// ---------------------------------------------------------------------------------------------
// 4. Nothing a task leaves behind grows without bound
// ---------------------------------------------------------------------------------------------

/// `wasm` with a custom section named `armonik-wasm-test` holding `payload` appended: another
/// component (another digest) of the same code. A component's custom section is `0x00`, its
/// size, then the name's length, the name and the payload (sizes as unsigned LEB128).
fn with_custom_section(wasm: &[u8], payload: &[u8]) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"armonik-wasm-test";
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0);
    leb128(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

/// Five distinct components, all `echo`, in `dir`; their cache entry names
/// (`<sha256>.cwasm`) in the same order.
fn echo_variants(dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let echo = std::fs::read(guest("echo")).expect("echo.wasm");
    (0..5)
        .map(|i| {
            let bytes = with_custom_section(&echo, format!("variant {i}").as_bytes());
            let file = dir.join(format!("echo-{i}.wasm"));
            std::fs::write(&file, &bytes).expect("variant");
            let digest: String = (Sha256::digest(&bytes).iter())
                .map(|b| format!("{b:02x}"))
                .collect();
            (file, format!("{digest}.cwasm"))
        })
        .unzip()
}

/// A compile cache at `<dir>/cache`, filled by `run`s with a bound.
struct BoundedCache {
    dir: tempfile::TempDir,
    root: PathBuf,
    variants: Vec<PathBuf>,
    entries: Vec<String>,
    bound: [String; 2],
}

impl BoundedCache {
    /// An empty cache; `flag` `value` bounds it (`--cache-max-entries 3`...).
    fn new(flag: &str, value: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("cache");
        let (variants, entries) = echo_variants(dir.path());
        Self {
            dir,
            root,
            variants,
            entries,
            bound: [flag.to_owned(), value.to_owned()],
        }
    }

    /// Runs variant `i` with the cache and its bound.
    fn run(&self, i: usize) {
        let out = self.dir.path().join("out");
        let ran = armonik_wasm(&[
            "run",
            path(&self.variants[i]),
            "--payload-text",
            "cached",
            "--cache-dir",
            path(&self.root),
            &self.bound[0],
            &self.bound[1],
            "--outputs",
            path(&out),
        ]);
        assert!(ran.success, "variant {i}: {}", ran.all());
    }

    /// The engine folder.
    fn engine(&self) -> PathBuf {
        let engines: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .expect("cache root")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(engines.len(), 1, "one engine folder: {engines:?}");
        engines[0].clone()
    }

    /// Which variants have an entry, in variant order.
    fn cached(&self) -> Vec<usize> {
        let engine = self.engine();
        (0..self.entries.len())
            .filter(|&i| engine.join(&self.entries[i]).exists())
            .collect()
    }

    /// The entries' total size, and how many files the engine folder holds.
    fn usage(&self) -> (u64, usize) {
        let files: Vec<u64> = std::fs::read_dir(self.engine())
            .expect("engine folder")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .collect();
        (files.iter().sum(), files.len())
    }

    /// The inode of variant `i`'s entry: a load leaves it, a compilation writes a new file.
    fn inode(&self, i: usize) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        let entry = self.engine().join(&self.entries[i]);
        std::fs::metadata(&entry)
            .unwrap_or_else(|e| panic!("{}: {e}", entry.display()))
            .ino()
    }
}

#[test]
fn run_keeps_the_compile_cache_within_its_entry_limit_evicting_the_least_recently_used() {
    let cache = BoundedCache::new("--cache-max-entries", "3");
    for i in 0..5 {
        cache.run(i);
        assert!(
            cache.usage().1 <= 3,
            "after variant {i}: {:?}",
            cache.cached()
        );
    }
    assert_eq!(cache.cached(), [2, 3, 4]);
    // Variant 2 again: loaded from its entry, not compiled again (a compilation writes a new
    // file), and now the most recently used.
    let inode = cache.inode(2);
    cache.run(2);
    assert_eq!(cache.inode(2), inode, "variant 2 was compiled again");
    assert_eq!(cache.cached(), [2, 3, 4]);
    // A new one evicts the least recently used, variant 3, not the older but used variant 2.
    cache.run(0);
    assert_eq!(cache.cached(), [0, 2, 4]);
    assert_eq!(cache.inode(2), inode);
}

#[test]
fn run_keeps_the_compile_cache_within_its_size_limit() {
    let cache = BoundedCache::new("--cache-max-mib", "1");
    let mut largest = 0;
    for i in 0..5 {
        cache.run(i);
        let (bytes, files) = cache.usage();
        assert!(
            bytes <= MIB,
            "after variant {i}: {bytes} bytes in {files} entries"
        );
        largest = largest.max(bytes / files.max(1) as u64);
    }
    // Five entries would not fit: the most recent ones survive, the newest among them.
    assert!(
        5 * largest > MIB,
        "entries of {largest} bytes all fit in 1 MiB"
    );
    let cached = cache.cached();
    assert!(cached.contains(&4) && cached.len() < 5, "{cached:?}");
    assert_eq!(cached, (5 - cached.len()..5).collect::<Vec<_>>());
}

/// `armonik-wasm run <hostile> --payload-text <payload> --outputs <out>` with its temporary
/// files in `tmp`; not started yet.
fn run_in(tmp: &Path, out: &Path, payload: &str) -> Command {
    let hostile = guest("hostile");
    let args = ["run", path(&hostile), "--payload-text", payload];
    let mut command = armonik_wasm_command(&args);
    command.arg("--outputs").arg(out).env("TMPDIR", tmp);
    command
}

/// [`run_in`] started now, its outputs in `<tmp>/../out` and its stderr in `<tmp>/../stderr`.
fn spawn_run(tmp: &Path, payload: &str) -> Child {
    let parent = tmp.parent().expect("tmp has a parent");
    let stderr = std::fs::File::create(parent.join("stderr")).expect("stderr file");
    run_in(tmp, &parent.join("out"), payload)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("armonik-wasm starts")
}

/// A fresh, empty folder for a run's `TMPDIR`, in a folder of its own.
fn fresh_tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    (dir, tmp)
}

/// Whether a task of a run using `tmp` has its data folder: `<tmp>/<work>/tasks/<token>`.
fn task_running(tmp: &Path) -> bool {
    let folders = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    (folders(tmp).iter()).any(|work| !folders(&work.join("tasks")).is_empty())
}

/// Waits up to `timeout` for `child` to exit.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_removes_its_work_folder_at_the_end_and_when_interrupted() {
    let (dir, tmp) = fresh_tmp();
    let mut child = spawn_run(&tmp, "write done");
    let status = wait_exit(&mut child, Duration::from_secs(60)).expect("run ends");
    assert!(status.success(), "{status}");
    assert!(
        common::left_in_tmp(&tmp).is_empty(),
        "left behind: {:?}",
        common::left_in_tmp(&tmp)
    );

    for signal in ["INT", "TERM", "HUP"] {
        let mut child = spawn_run(&tmp, &format!("sleep {FOREVER_MS}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !task_running(&tmp) {
            assert!(
                Instant::now() < deadline,
                "SIG{signal}: the task never started"
            );
            assert!(
                child.try_wait().expect("wait").is_none(),
                "SIG{signal}: exited"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = wait_exit(&mut child, Duration::from_secs(5));
        let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
        let Some(status) = status else {
            let _ = child.kill();
            panic!("SIG{signal}: still running 5 s later\n{stderr}");
        };
        assert!(!status.success(), "SIG{signal}: {status}\n{stderr}");
        assert!(
            common::left_in_tmp(&tmp).is_empty(),
            "SIG{signal}: left behind: {:?}\n{stderr}",
            common::left_in_tmp(&tmp)
        );
    }
}

/// What the litter payload leaves: 5,000 files, a 2,000-deep tree, a sparse 1 TiB file.
const LITTER: &str = "litter 5000 2000 1024";

/// Runs [`LITTER`] with a fresh `TMPDIR`, at most `open_files` file descriptors open if
/// given; asserts that the graph succeeded, with the output produced, and that nothing is
/// left in `TMPDIR`.
fn run_litter(open_files: Option<u64>) {
    let (dir, tmp) = fresh_tmp();
    let out = dir.path().join("out");
    let mut command = run_in(&tmp, &out, LITTER);
    if let Some(limit) = open_files {
        use rustix::process::{Resource, Rlimit, setrlimit};
        use std::os::unix::process::CommandExt as _;
        let limit = Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        };
        // SAFETY: runs in the child between fork and exec, where only async-signal-safe calls
        // are allowed: `setrlimit` is one, and the closure allocates nothing.
        unsafe {
            command.pre_exec(move || Ok(setrlimit(Resource::Nofile, limit)?));
        }
    }
    let started = Instant::now();
    let output = command.output().expect("armonik-wasm starts");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "{LITTER} with {open_files:?} open files at most: {:?}",
        started.elapsed()
    );
    assert!(output.status.success(), "{said}");
    let report = std::fs::read_to_string(out.join("output")).expect("output");
    assert_eq!(
        report,
        format!("littered files=5000 depth=2000 sparse={}", 1u64 << 40)
    );
    assert!(
        common::left_in_tmp(&tmp).is_empty(),
        "left behind: {:?}\n{said}",
        common::left_in_tmp(&tmp)
    );
}

#[test]
fn run_removes_what_a_task_littered_its_folder_with() {
    let _alone = HEAVY.blocking_lock();
    run_litter(None);
}

/// The same under the open-file limit of ArmoniK's worker containers (1,024): removing a
/// tree must not take a file descriptor per level.
#[test]
fn run_removes_what_a_task_littered_its_folder_with_under_1024_open_files() {
    let _alone = HEAVY.blocking_lock();
    run_litter(Some(1024));
}

// ---------------------------------------------------------------------------------------------
// 5. Parity at the edges
// ---------------------------------------------------------------------------------------------

/// Where the quoted `line="..."` field that starts at `start` (its opening quote) ends: the
/// index just past its closing quote, escapes (`\"`, `\\`...) skipped.
fn quoted_end(record: &str, start: usize) -> Option<usize> {
    let mut chars = record[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return Some(start + 1 + i + 1),
            _ => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_guest_output_can_neither_pass_for_a_host_record_nor_carry_other_ids() {
    let harness = Harness::start("hostile").await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("forge-log").build();
    let (session, task) = (request.session_id.clone(), request.task_id.clone());
    let output = request.expected_output_keys[0].clone();
    let result = harness.run_task(request).await;
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
    assert_eq!(folder.read(&output), b"forged");
    // The last line has no newline: it is logged when the task's store is torn down.
    let last = "no newline at the end";
    harness
        .worker
        .expect_log(last, Duration::from_secs(5))
        .await;

    let raw = std::fs::read(harness.worker.dir().join("worker.log")).expect("worker log");
    for (byte, name) in [(0x1b, "ESC"), (b'\r', "CR"), (0, "NUL")] {
        assert!(!raw.contains(&byte), "a raw {name} in the log");
    }
    let log = String::from_utf8(raw).expect("a UTF-8 log");
    let mut forged = 0;
    for record in log.lines().filter(|l| l.contains("evil")) {
        forged += 1;
        let start = record.find("line=\"").map(|at| at + "line=".len());
        let Some(start) = start else {
            panic!("guest text outside a line field: {record}");
        };
        let head = &record[..start];
        assert!(
            !head.contains("evil"),
            "guest text before its field: {record}"
        );
        assert!(
            head.contains(" guest: guest output "),
            "not a guest record: {record}"
        );
        for id in [format!("session_id={session}"), format!("task_id={task}")] {
            assert!(
                head.contains(&id),
                "{id} missing before the guest text: {record}"
            );
        }
        assert_eq!(
            quoted_end(record, start),
            Some(record.len()),
            "the guest's text is not one quoted field ending the record: {record}"
        );
    }
    // Six lines on each stream and the unterminated one: each one record, none split.
    assert_eq!(forged, 13, "{log}");
}

/// The guest's report of `empty-lists`, as ArmoniK's agent answers through `serve`: an empty
/// list for every call but the legacy `create-tasks`, whose stream must hold a task (Core's
/// `GrpcAgentService.CreateTask` throws, a gRPC UNKNOWN: `internal` for the guest).
fn assert_empty_lists_report(report: &str) {
    let lines: Vec<&str> = report.lines().collect();
    let ok = [
        "create-results-metadata: ok 0",
        "create-results: ok 0",
        "notify-result-data: ok 0",
        "submit-tasks: ok 0",
    ];
    assert_eq!(lines.len(), ok.len() + 1, "{report}");
    assert_eq!(lines[..ok.len()], ok, "{report}");
    assert!(
        lines[ok.len()].starts_with("create-tasks: err agent call create-tasks failed: internal: "),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_agent_calls_with_empty_lists_answer_as_armonik() {
    let harness = Harness::start("hostile").await;
    let report = served_report(&harness, "empty-lists").await;
    assert_empty_lists_report(&String::from_utf8_lossy(&report));
}

#[test]
fn run_agent_calls_with_empty_lists_answer_as_serve() {
    let (dir, ran, _) = run_hostile("empty-lists", &[]);
    assert!(ran.success, "{}", ran.all());
    let report = std::fs::read_to_string(dir.path().join("out/output")).expect("report");
    assert_empty_lists_report(&report);
}
