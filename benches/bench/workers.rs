//! The workers under test and the driver that plays ArmoniK's polling agent to them.

use super::*;

/// Runs `tasks` echo tasks of `payload` bytes on each client through Process over a unix
/// socket, as the polling agent does, alternating between the clients so that both see the
/// same machine noise; returns, per client, the latencies of the Process calls and their sum.
/// With `settle`, the page cache is written back before each call (`sync`, not timed): a large
/// echo then measures the workers, not what the kernel still had to flush from the call before.
pub(super) async fn drive(
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
pub(super) async fn echo_task(
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
pub(super) struct BaselineWorker {
    pub(super) child: std::process::Child,
    pub(super) client: WorkerClient,
    /// Holds the socket and the log as long as the worker runs.
    _dir: tempfile::TempDir,
}

impl BaselineWorker {
    /// Starts `command(socket)` and waits until it answers HealthCheck on `socket`; says
    /// what it logged if it exits or does not answer within 20 s.
    pub(super) async fn start(
        name: &str,
        command: impl FnOnce(&Path) -> Command,
    ) -> anyhow::Result<Self> {
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

    pub(super) fn pid(&self) -> u32 {
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
pub(super) struct Workers {
    pub(super) agent: FakeAgent,
    pub(super) wasm: Worker,
    pub(super) native: BaselineWorker,
}

pub(super) async fn start_workers() -> anyhow::Result<Workers> {
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
pub(super) fn unix_socket(agent: &FakeAgent) -> anyhow::Result<PathBuf> {
    match agent.address() {
        Address::Unix(socket) => Ok(socket.clone()),
        Address::Tcp(_) => anyhow::bail!("the fake agent listens on TCP, not a unix socket"),
    }
}

/// One small echo through `client`, checked: its output holds the payload and is the one
/// result notified, so that the figures are of workers doing the same work.
pub(super) async fn check_echo(
    name: &str,
    client: &WorkerClient,
    agent: &FakeAgent,
) -> anyhow::Result<()> {
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
pub(super) fn print_rates(
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

/// User + system CPU time a process has used (in clock ticks of 10 ms: meaningful over
/// thousands of tasks).
pub(super) fn cpu_time(pid: u32) -> Duration {
    let fields = proc_stat_fields(pid);
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)).sum();
    Duration::from_millis(ticks * 10)
}

/// The baseline worker: the official `armonik` crate's Worker service, doing what the echo
/// guest does (payload file → output file, then NotifyResultData), natively.
pub(super) fn native_worker(socket: &Path, agent_socket: &Path) -> anyhow::Result<()> {
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
