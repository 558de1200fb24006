//! The commands of the `armonik-wasm` binary.

pub mod console;
pub mod dev;
pub mod progress;
pub mod run_outputs;
pub mod submit;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::agent::grpc::GrpcAgent;
use crate::local::agent::LocalAgent;
use crate::local::client::TaskCreation;
use crate::local::scheduler::{self, Until};
use crate::proto::v1::TaskOptions;
use crate::sandbox::compile_cache::{self, CacheLimits, DiskCache};
use crate::sandbox::components::{self, Components, Origin, check_header};
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::worker::config::ChannelAddress;
use crate::worker::task_runner::{GuestThread, RunnerConfig, TaskRunner};
use crate::worker::transport::{self, WorkerService};
use crate::{errln, outln};
use console::PrintError;
use progress::Progress;
use submit::SubmitArgs;

/// Runs ArmoniK tasks as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "armonik-wasm", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The binary's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve ArmoniK's Worker gRPC service: the polling agent sends tasks, each runs in a
    /// fresh instance of a component.
    Serve(ServeArgs),
    /// Run a component locally: the root task, then every task it submits, with an agent
    /// embedded in this process. No ArmoniK cluster needed.
    Run(RunArgs),
    /// Compile a component ahead of time, for fast starts of `run` and `serve`.
    Compile(CompileArgs),
    /// Say whether a file is a component of the armonik:worker world, and what it imports and
    /// exports.
    Inspect(InspectArgs),
    /// Serve ArmoniK's control-plane API (Sessions, Results, Tasks, Events, ...) locally:
    /// ArmoniK's own clients submit tasks, each runs as a component on this machine.
    Dev(crate::cli::dev::DevArgs),
    /// Send a component and its inputs to ArmoniK's control plane (a cluster, or `armonik-wasm
    /// dev`) as a session and a root task, follow the session until the root task's outputs
    /// are done, and download them.
    Submit(SubmitArgs),
}

/// Sandbox settings shared by the commands that run tasks.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Linear memory one task may use, in MiB: half of what wasm32 can address, so a task
    /// still being stopped and the next one fit in a 4 GiB worker.
    #[arg(long, env = "ArmonikWasm__MemoryLimitMiB", default_value_t = 2048)]
    pub memory_limit_mib: usize,

    /// Time budget, in seconds, of a task whose options set no max_duration.
    #[arg(
        long,
        env = "ArmonikWasm__DefaultMaxDurationSeconds",
        default_value_t = 3600.0
    )]
    pub default_max_duration: f64,

    /// Where compiled components are cached [default: $ARMONIK_WASM_CACHE_DIR, else
    /// $XDG_CACHE_HOME/armonik-wasm, else ~/.cache/armonik-wasm].
    #[arg(long, env = "ArmonikWasm__CacheDir")]
    pub cache_dir: Option<PathBuf>,

    /// Compile components in memory only, without the on-disk cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Size of the on-disk cache, in MiB, past which the least recently used entries are
    /// evicted: about 30 Python components.
    #[arg(long, env = "ArmonikWasm__CacheMaxMiB", default_value_t = compile_cache::DEFAULT_MAX_MIB)]
    pub cache_max_mib: u64,

    /// Entries of the on-disk cache past which the least recently used are evicted.
    #[arg(long, env = "ArmonikWasm__CacheMaxEntries", default_value_t = compile_cache::DEFAULT_MAX_ENTRIES)]
    pub cache_max_entries: usize,

    /// Allocate instances on demand instead of from the pooling allocator (which reserves
    /// address space up front, and is faster to instantiate from).
    #[arg(long, env = "ArmonikWasm__NoPooling")]
    pub no_pooling: bool,
}

impl SandboxArgs {
    /// The sandbox, and the on-disk cache unless disabled.
    pub(crate) fn build(
        &self,
        max_concurrent_tasks: u32,
    ) -> anyhow::Result<(Arc<Sandbox>, Option<DiskCache>)> {
        let sandbox = Arc::new(Sandbox::new(SandboxConfig {
            max_concurrent_tasks,
            memory_limit: self.memory_limit_mib.saturating_mul(1024 * 1024),
            pooling: !self.no_pooling,
        })?);
        let root = if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(DiskCache::default_root)
        };
        let limits = CacheLimits {
            max_bytes: self.cache_max_mib.saturating_mul(1024 * 1024),
            max_entries: self.cache_max_entries,
        };
        let disk = root.and_then(
            |root| match DiskCache::open(&root, sandbox.engine(), limits) {
                Ok(cache) => Some(cache),
                Err(error) => {
                    tracing::warn!(root = %root.display(), %error, "compilation cache disabled");
                    None
                }
            },
        );
        Ok((sandbox, disk))
    }

    pub(crate) fn default_max_duration(&self) -> anyhow::Result<Duration> {
        seconds(self.default_max_duration, "--default-max-duration")
    }
}

/// Settings of `serve`; each flag can also be set by the environment variable shown.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The component that runs tasks which do not ship their own (ConventionVersion=v1).
    #[arg(long, env = "ArmonikWasm__Component")]
    pub component: Option<PathBuf>,

    /// Where the Worker service listens: a unix socket path, or http://host:port for TCP.
    #[arg(
        long,
        env = "ComputePlane__WorkerChannel__Address",
        default_value = "/cache/armonik_worker.sock"
    )]
    pub worker_address: String,

    /// UnixDomainSocket or Tcp (any case).
    #[arg(
        long,
        env = "ComputePlane__WorkerChannel__SocketType",
        default_value = "UnixDomainSocket"
    )]
    pub worker_socket_type: String,

    /// Where the agent listens: a unix socket path, or http://host:port for TCP. Connected on
    /// first use, so the worker may start before the agent.
    #[arg(
        long,
        env = "ComputePlane__AgentChannel__Address",
        default_value = "/cache/armonik_agent.sock"
    )]
    pub agent_address: String,

    /// UnixDomainSocket or Tcp (any case).
    #[arg(
        long,
        env = "ComputePlane__AgentChannel__SocketType",
        default_value = "UnixDomainSocket"
    )]
    pub agent_socket_type: String,

    /// Tasks that may run at once; one more is refused with UNAVAILABLE. ArmoniK sends one at
    /// a time; the spare slots cover a guest still being stopped after a timeout.
    #[arg(long, env = "ArmonikWasm__MaxConcurrentTasks", default_value_t = 4)]
    pub max_concurrent_tasks: u32,

    /// Sandbox settings.
    #[command(flatten)]
    pub sandbox: SandboxArgs,

    /// Seconds running tasks get to finish after SIGTERM or SIGINT (ArmoniK.Infra gives the
    /// agent 15 s of grace).
    #[arg(
        long,
        env = "ArmonikWasm__ShutdownGraceSeconds",
        default_value_t = 15.0
    )]
    pub shutdown_grace: f64,
}

/// `serve`: the production worker.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let worker_address = ChannelAddress::parse(&args.worker_address, &args.worker_socket_type)
        .context("invalid worker channel")?;
    let agent_address = ChannelAddress::parse(&args.agent_address, &args.agent_socket_type)
        .context("invalid agent channel")?;
    let default_max_duration = args.sandbox.default_max_duration()?;
    let grace = seconds(args.shutdown_grace, "--shutdown-grace")?;

    let (sandbox, disk) = args.sandbox.build(args.max_concurrent_tasks)?;
    let components = Components::new(sandbox.clone(), args.component.as_deref(), disk).await?;
    let guest_thread = GuestThread::start().context("cannot start the guest thread")?;
    // The agent's channel runs on the guest thread, where the calls come from.
    let agent = {
        let _guest = guest_thread.enter();
        GrpcAgent::connect_lazy(&agent_address).context("invalid agent channel")?
    };
    let runner = Arc::new(TaskRunner::new(
        sandbox,
        components,
        Arc::new(agent),
        RunnerConfig {
            max_concurrent_tasks: usize::try_from(args.max_concurrent_tasks)?,
            default_max_duration,
        },
        Some(guest_thread),
    ));
    let serving = Arc::new(AtomicBool::new(true));
    let service = WorkerService::new(runner.clone(), serving.clone());
    tracing::info!(%agent_address, "agent channel (connected on first use)");

    // On SIGTERM/SIGINT: HealthCheck turns NOT_SERVING (so ArmoniK sends no new task), running
    // tasks get the grace period to finish, then the server stops.
    let drained = Arc::new(tokio::sync::Notify::new());
    let stop = shutdown_signal();
    let drain = {
        let drained = drained.clone();
        async move {
            stop.await;
            serving.store(false, Ordering::Relaxed);
            tracing::info!(?grace, "shutting down, waiting for running tasks");
            if tokio::time::timeout(grace, runner.idle()).await.is_err() {
                tracing::warn!("grace period over, stopping with tasks still running");
            }
            drained.notify_one();
        }
    };
    let server = transport::serve(&worker_address, service, drain);
    tokio::select! {
        served = server => served?,
        // A task still running past the grace period must not hold the exit.
        () = async {
            drained.notified().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        } => {}
    }
    tracing::info!("stopped");
    Ok(())
}

/// A duration given in seconds on the command line.
pub(crate) fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{flag} must be a positive number of seconds"))
}

/// Listens for SIGTERM, SIGINT and SIGHUP from this call on (not from the first poll: a
/// signal during set-up must still lead to the clean-up); the future resolves at the first.
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let kinds = [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ];
    let signals: std::io::Result<Vec<_>> = kinds.into_iter().map(signal).collect();
    async move {
        match signals {
            Ok(mut signals) => {
                let received = signals.iter_mut().map(|s| Box::pin(s.recv()));
                futures::future::select_all(received).await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for signals; stop the process with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// What runs the embedded agent's tasks (`run`, `dev`): a sandbox sized for `parallelism`
/// tasks at once, and the components, the default one loaded first so that a broken one stops
/// the command before anything else is made.
pub(crate) struct LocalRunner {
    sandbox: Arc<Sandbox>,
    components: Components,
    /// Tasks run at once.
    pub(crate) parallelism: usize,
    /// The time budget of a task whose options set none.
    pub(crate) default_max_duration: Duration,
}

impl LocalRunner {
    /// Builds the sandbox and loads `component`; `parallelism` defaults to the number of CPUs.
    ///
    /// # Errors
    /// A setting is invalid, or the component cannot be loaded.
    pub(crate) async fn new(
        args: &SandboxArgs,
        component: Option<&std::path::Path>,
        parallelism: Option<usize>,
    ) -> anyhow::Result<Self> {
        let parallelism = parallelism
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let default_max_duration = args.default_max_duration()?;
        let (sandbox, disk) = args.build(u32::try_from(parallelism)?)?;
        let components = Components::new(sandbox.clone(), component, disk).await?;
        Ok(Self {
            sandbox,
            components,
            parallelism,
            default_max_duration,
        })
    }

    /// The task runner, its agent the embedded one.
    pub(crate) fn runner(self, agent: Arc<LocalAgent>) -> Arc<TaskRunner> {
        Arc::new(TaskRunner::new(
            self.sandbox,
            self.components,
            agent,
            RunnerConfig {
                max_concurrent_tasks: self.parallelism,
                default_max_duration: self.default_max_duration,
            },
            None,
        ))
    }
}

/// Settings of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component (.wasm), or a file made by `armonik-wasm compile`.
    pub component: PathBuf,

    /// File holding the root task's payload.
    #[arg(long, conflicts_with = "payload_text")]
    pub payload: Option<PathBuf>,

    /// The root task's payload, as text.
    #[arg(long)]
    pub payload_text: Option<String>,

    /// A data dependency of the root task: a result named NAME holding the bytes of FILE.
    /// Repeat it for more; the task sees them in this order.
    #[arg(long = "dep", value_name = "NAME=FILE")]
    pub deps: Vec<String>,

    /// A task option (`TaskOptions.options`) of the session, inherited by every task.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,

    /// Name of an expected output of the root task; repeat it for more.
    #[arg(long = "output-name", value_name = "NAME", default_value = "output")]
    pub output_names: Vec<String>,

    /// Folder where the root task's outputs are written, one file per output name.
    #[arg(long, value_name = "DIR", default_value = "outputs")]
    pub outputs: PathBuf,

    /// Also write every completed result of the graph, as `<outputs>/results/<name>.<id>`.
    #[arg(long)]
    pub all_results: bool,

    /// Retries of a task that traps (the session's `max_retries`).
    #[arg(long, default_value_t = 2)]
    pub max_retries: i32,

    /// Tasks run at once [default: the number of CPUs].
    #[arg(long)]
    pub parallelism: Option<usize>,

    /// Sandbox settings.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// `run`: the whole task graph of a component, on this machine. Returns whether every output
/// of the root task was produced.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    // Before the work folder exists, so that a signal at any time leads to its removal.
    let stop = shutdown_signal();
    let payload = match (&args.payload, &args.payload_text) {
        (Some(path), _) => std::fs::read(path)
            .with_context(|| format!("cannot read the payload file {}", path.display()))?,
        (None, Some(text)) => text.clone().into_bytes(),
        (None, None) => Vec::new(),
    };
    let mut deps: Vec<(String, Vec<u8>)> = Vec::new();
    for dep in &args.deps {
        let (name, path) = split_pair(dep, "--dep", "NAME=FILE")?;
        if deps.iter().any(|(n, _)| n == name) {
            anyhow::bail!("--dep {name} is given twice");
        }
        let data = std::fs::read(path)
            .with_context(|| format!("cannot read the file of --dep {name}: {path}"))?;
        deps.push((name.to_owned(), data));
    }
    for (n, name) in args.output_names.iter().enumerate() {
        if name.is_empty() || args.output_names[..n].contains(name) {
            anyhow::bail!("--output-name needs distinct, non-empty names, got `{name}`");
        }
    }
    let mut options = std::collections::HashMap::new();
    for option in &args.options {
        let (key, value) = split_pair(option, "--option", "KEY=VALUE")?;
        options.insert(key.to_owned(), value.to_owned());
    }
    let local = LocalRunner::new(&args.sandbox, Some(&args.component), args.parallelism).await?;
    let parallelism = local.parallelism;
    // Private to this user: it holds every result of the graph.
    let work = tempfile::Builder::new()
        .prefix("armonik-wasm-run")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()?;
    let session_options = TaskOptions {
        options,
        max_duration: Some(prost_types::Duration::try_from(local.default_max_duration)?),
        max_retries: args.max_retries,
        priority: 1,
        ..TaskOptions::default()
    };
    let agent = Arc::new(LocalAgent::new(work.path())?);
    let session = agent.create_session(session_options, Vec::new());
    let payload_id = agent.create_result(&session, "payload", &payload)?;
    let dep_ids = deps
        .iter()
        .map(|(name, data)| agent.create_result(&session, name, data))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs: Vec<(String, String)> = args
        .output_names
        .iter()
        .map(|name| Ok((name.clone(), agent.create_result_metadata(&session, name)?)))
        .collect::<Result<_, tonic::Status>>()?;
    agent.submit_tasks(
        &session,
        None,
        vec![TaskCreation {
            payload_id,
            data_dependencies: dep_ids,
            expected_outputs: outputs.iter().map(|(_, id)| id.clone()).collect(),
            options: None,
        }],
    )?;

    let runner = local.runner(agent.clone());
    let progress = Progress::new();
    let report = match scheduler::run_graph(
        agent.clone(),
        runner,
        parallelism,
        Until::Idle,
        Some(&progress),
        stop,
    )
    .await
    {
        Ok(report) => report,
        Err(error) => {
            drop(agent);
            run_outputs::remove_work_folder(work);
            return Err(error);
        }
    };

    // Printing never stops the writing (see `console`): a line that cannot be printed (stdout
    // or stderr closed) is reported once the outputs are written and the work folder removed.
    let mut printed: Result<(), PrintError> = Ok(());
    for task in &report.tasks {
        if let (Some(message), true) = (&task.message, printed.is_ok()) {
            printed = errln!("task {} {}: {message}", task.id, task.state);
        }
    }
    let written = run_outputs::write_outputs(&args.outputs, args.all_results, &agent, &outputs);
    if printed.is_ok() {
        printed = outln!("{}", report.summary());
    }
    drop(agent);
    match written {
        Ok(complete) => {
            run_outputs::remove_work_folder(work);
            printed?;
            Ok(complete)
        }
        // Every output was written; only the lines saying so were lost.
        Err(error) if console::is_closed_output(&error) => {
            run_outputs::remove_work_folder(work);
            Err(error)
        }
        Err(error) => {
            // Nothing computed is lost: the results stay where they are.
            let kept = work.keep();
            let _ = errln!(
                "the results are kept in {}, one file per result id",
                kept.join("results").display()
            );
            Err(error)
        }
    }
}

/// Splits `KEY=VALUE` (the key not empty; the value may be, and may hold `=`).
///
/// # Errors
/// No `=`, or nothing before it: the message names `flag` and the expected `form`.
pub(crate) fn split_pair<'a>(
    value: &'a str,
    flag: &str,
    form: &str,
) -> anyhow::Result<(&'a str, &'a str)> {
    match value.split_once('=') {
        Some((key, rest)) if !key.is_empty() => Ok((key, rest)),
        _ => anyhow::bail!("{flag} expects {form}, got `{value}`"),
    }
}

/// Settings of `compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The component to compile.
    pub component: PathBuf,

    /// Where to write the compiled artifact [default: the input with a .cwasm extension].
    #[arg(short, long)]
    pub output: Option<PathBuf>,

    /// Sandbox settings (the artifact only runs on a host with the same engine settings).
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// `compile`: ahead-of-time compilation to a `.cwasm` file for this host's engine.
pub fn compile(args: CompileArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("cannot read {}", args.component.display()))?;
    check_header(&bytes, &Origin::File(args.component.clone()))?;
    let (sandbox, _) = args.sandbox.build(1)?;
    let started = std::time::Instant::now();
    let compiled = sandbox.engine().precompile_component(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a valid component: {e:#}",
            args.component.display()
        )
    })?;
    let output = args
        .output
        .unwrap_or_else(|| args.component.with_extension("cwasm"));
    std::fs::write(&output, &compiled)
        .with_context(|| format!("cannot write {}", output.display()))?;
    outln!(
        "compiled {} ({} bytes) to {} ({} bytes) in {:.3} s",
        args.component.display(),
        bytes.len(),
        output.display(),
        compiled.len(),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

/// Settings of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A component (.wasm) or a compiled artifact (.cwasm).
    pub file: PathBuf,

    /// Sandbox settings (a .cwasm loads only with the engine settings it was compiled for).
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// `inspect`: what a file is, what it imports and exports, and whether it can run here.
/// Returns whether it fits the world.
pub async fn inspect(args: InspectArgs) -> anyhow::Result<bool> {
    let (sandbox, _) = args.sandbox.build(1)?;
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let origin = Origin::File(args.file.clone());
    let component = components::compile(sandbox.engine(), &bytes, &origin, None)?;
    let kind = match wasmtime::Engine::detect_precompiled(&bytes) {
        Some(_) => "a precompiled component",
        None => "a WebAssembly component",
    };
    outln!("{}: {kind} ({} bytes)", args.file.display(), bytes.len())?;
    let ty = component.component_type();
    outln!("imports:")?;
    for (name, item) in ty.imports(sandbox.engine()) {
        outln!("  {name} ({})", item_kind(&item.ty))?;
    }
    outln!("exports:")?;
    for (name, item) in ty.exports(sandbox.engine()) {
        outln!("  {name} ({})", item_kind(&item.ty))?;
    }
    match sandbox.prepare(&component) {
        Ok(_) => {
            outln!("fits the armonik:worker/worker world: yes")?;
            Ok(true)
        }
        Err(error) => {
            outln!("fits the armonik:worker/worker world: no: {error:#}")?;
            Ok(false)
        }
    }
}

fn item_kind(item: &wasmtime::component::types::ComponentItem) -> &'static str {
    use wasmtime::component::types::ComponentItem;
    match item {
        ComponentItem::ComponentFunc(_) => "function",
        ComponentItem::CoreFunc(_) => "core function",
        ComponentItem::Module(_) => "core module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}
