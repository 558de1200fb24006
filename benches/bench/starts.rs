//! Benchmarks 2 and 3: a task's start in the sandbox, and a cold start of the binary.

use super::*;

pub(super) async fn sandbox(pooling: bool) -> anyhow::Result<Arc<Sandbox>> {
    Ok(Arc::new(Sandbox::new(SandboxConfig {
        max_concurrent_tasks: 256,
        memory_limit: 2 << 30,
        pooling,
        instantiate_ahead: false,
        keep_resident: DEFAULT_KEEP_RESIDENT,
    })?))
}

/// 2. Per-task instantiation: Store + WASI context with one preopen + instantiate, for the Rust
///    echo guest and, when its tools are installed, the Python one.
pub(super) async fn instantiation(sizes: &Sizes) -> anyhow::Result<()> {
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
                task_starts(pooling, &wasm, sizes.instantiations, None, Duration::ZERO).await?;
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
/// guest's `process` called once with that context; `pause` (not counted) between two. The
/// samples, and the time all took (without pauses: the sum of the samples).
pub(super) async fn task_starts(
    pooling: bool,
    wasm: &Path,
    n: usize,
    call: Option<&TaskContext>,
    pause: Duration,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let sandbox = sandbox(pooling).await?;
    let setup = Setup::new(&sandbox, wasm, call.map(|c| c.payload_id.as_str())).await?;
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n + 100 {
        let t = Instant::now();
        // Dropped at the end of the iteration, outside the measured time.
        let (mut store, instance) = instantiate(&sandbox, &setup).await?;
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
        if !pause.is_zero() {
            // Torn down first, as the worker tears a task down after its reply.
            drop((store, instance));
            tokio::time::sleep(pause).await;
        }
    }
    // With pauses, the rate is that of the starts alone.
    let total = if pause.is_zero() {
        started.elapsed()
    } else {
        samples.iter().sum()
    };
    Ok((samples, total))
}

/// The pause the driver leaves between two tasks of [`made_ahead_starts`]: the worker makes
/// the next instance then. ArmoniK's polling agent leaves at least as much between two tasks of
/// a worker (it records the outcome in its database, acknowledges the queue message and
/// fetches the next task's data: network round trips each).
pub(super) const BETWEEN_TASKS: Duration = Duration::from_millis(5);

/// `n` tasks (after 100 not counted) calling `wasm`'s `process` with `context`, one at a time
/// through [`Sandbox::run`] as `serve` runs them: on a [`GuestThread`] (a current-thread
/// runtime, where the finished store's teardown and the next instance's making are queued
/// behind the task rather than woken on another thread), with the instance made ahead in the
/// pause between tasks: the time of each run (binding the instance made ahead to the task, the call,
/// the checks after it), their sum, the minor page faults per task during the runs, and this
/// process's CPU time per task over the whole loop: the runs, and in the pauses the reset of
/// the finished task's memory and the making of the next instance, which the runs' times
/// leave out. Fails if a counted task did not get an instance made ahead.
pub(super) async fn made_ahead_starts(
    wasm: &Path,
    n: usize,
    context: &TaskContext,
) -> anyhow::Result<(Vec<Duration>, Duration, u64, Duration)> {
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        max_concurrent_tasks: 1,
        memory_limit: 2 << 30,
        pooling: true,
        instantiate_ahead: true,
        keep_resident: DEFAULT_KEEP_RESIDENT,
    })?);
    let setup = Setup::new(&sandbox, wasm, Some(&context.payload_id)).await?;
    let guest_thread = GuestThread::start()?;
    let looped = {
        let _guest = guest_thread.enter();
        tokio::spawn(starts_loop(
            sandbox,
            setup,
            wasm.to_owned(),
            n,
            context.clone(),
        ))
    };
    looped.await?
}

/// The loop of [`made_ahead_starts`], on the runtime it is spawned on.
async fn starts_loop(
    sandbox: Arc<Sandbox>,
    setup: Setup,
    wasm: PathBuf,
    n: usize,
    context: TaskContext,
) -> anyhow::Result<(Vec<Duration>, Duration, u64, Duration)> {
    let (mut samples, mut busy, mut faults) = (Vec::with_capacity(n), Duration::ZERO, 0);
    let mut cpu_before = Duration::ZERO;
    for i in 0..n + 100 {
        if i == 100 {
            cpu_before = cpu_time(std::process::id());
        }
        let max_duration = Duration::from_secs(60);
        let deadline = tokio::time::Instant::now() + max_duration;
        let bridge = bridge(&setup.agent, &setup.data, deadline);
        let task = TaskRun {
            context: context.clone(),
            data_folder: setup.data.clone(),
            bridge,
            ids: setup.ids.clone(),
            max_duration,
            deadline,
        };
        let faults_before = minor_page_faults();
        let started = Instant::now();
        let finished = sandbox.run(&setup.pre, task).await;
        let elapsed = started.elapsed();
        let faulted = minor_page_faults() - faults_before;
        // What the guest answers does not matter here (`fail` answers an error); a trap would.
        if let Err(error) = finished.outcome {
            anyhow::bail!("{}: {error}", wasm.display());
        }
        if i >= 100 {
            anyhow::ensure!(
                finished.stats.made_ahead,
                "task {i} of {} found no instance made ahead",
                wasm.display()
            );
            samples.push(elapsed);
            busy += elapsed;
            faults += faulted;
        }
        tokio::time::sleep(BETWEEN_TASKS).await;
    }
    let cpu = cpu_time(std::process::id()).saturating_sub(cpu_before);
    Ok((samples, busy, faults / n as u64, cpu / n as u32))
}

/// What the task starts of one component share: the task's data folder (with an empty payload
/// named `payload_id`, when given), an embedded agent, the task's ids, and the component
/// prepared as the task runner prepares it.
pub(super) struct Setup {
    _folder: tempfile::TempDir,
    data: Arc<Folder>,
    _work: tempfile::TempDir,
    agent: Arc<LocalAgent>,
    ids: Arc<TaskIds>,
    pre: WorkerPre<TaskState>,
}

impl Setup {
    pub(super) async fn new(
        sandbox: &Arc<Sandbox>,
        wasm: &Path,
        payload_id: Option<&str>,
    ) -> anyhow::Result<Self> {
        let folder = tempfile::tempdir()?;
        if let Some(payload_id) = payload_id {
            std::fs::write(folder.path().join(payload_id), b"")?;
        }
        let work = tempfile::tempdir()?;
        let agent = Arc::new(LocalAgent::new(work.path(), None)?);
        let ids = Arc::new(TaskIds {
            session_id: "session".into(),
            task_id: "task".into(),
        });
        let disk = DiskCache::open(&cache_dir(), sandbox.engine(), Default::default()).ok();
        let components = Components::new(sandbox.clone(), Some(wasm), None, disk).await?;
        let data = Arc::new(Folder::open_shared(folder.path())?);
        let pre = components
            .for_task(&Default::default(), &data)
            .await?
            .pre
            .clone();
        Ok(Self {
            _folder: folder,
            data,
            _work: work,
            agent,
            ids,
            pre,
        })
    }
}

/// A task's agent bridge on `agent`, for guests that make no agent call (the identity is
/// empty).
fn bridge(
    agent: &Arc<LocalAgent>,
    data: &Arc<Folder>,
    deadline: tokio::time::Instant,
) -> AgentBridge {
    AgentBridge::new(
        agent.clone(),
        TaskIdentity {
            token: String::new(),
            session_id: String::new(),
            expected_outputs: Vec::new(),
            library: None,
        },
        1 << 20,
        deadline,
        data.clone(),
    )
}

/// One task's store and instance for `setup`, made as the task runner makes them (the task is
/// not run).
pub(super) async fn instantiate(
    sandbox: &Sandbox,
    setup: &Setup,
) -> anyhow::Result<(Store<TaskState>, Instance)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut store = sandbox.new_store(
        wasi_context(setup.data.path(), &setup.ids)?,
        bridge(&setup.agent, &setup.data, deadline),
        DataFolder::new(setup.data.clone(), sandbox.config().memory_limit),
        deadline,
    );
    let instance = setup.pre.instantiate_async(&mut store).await?;
    Ok((store, instance))
}

/// Runs `armonik-wasm <args>` `n` times; median wall time from process start to exit.
pub(super) fn median_run(n: usize, args: &[&str], cache: &Path) -> anyhow::Result<Duration> {
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
pub(super) fn cold_start(sizes: &Sizes) -> anyhow::Result<()> {
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
