//! The commands of the `armonik-wasm` binary.

pub mod console;
#[cfg(feature = "control-plane")]
pub mod dev;
pub mod progress;
mod run;
pub mod run_outputs;
pub mod settings;
#[cfg(feature = "control-plane")]
pub mod submit;
pub(crate) mod values;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::agent::grpc::GrpcAgent;
use crate::outln;
use crate::sandbox::compile_cache::{self, CacheLimits, DiskCache};
use crate::sandbox::components::{self, Components, LoadError, Origin, check_header};
use crate::sandbox::{DEFAULT_KEEP_RESIDENT, Sandbox, SandboxConfig};
use crate::telemetry::logs::LogFormat;
use crate::telemetry::metrics;
use crate::worker::config::{ChannelAddress, SocketType};
use crate::worker::isolation::ProcessIsolation;
use crate::worker::task_runner::{GuestThread, RunnerConfig, TaskRunner};
use crate::worker::transport::{self, WorkerService};

#[cfg(feature = "control-plane")]
pub(crate) use run::LocalRunner;
pub use run::{RunArgs, run};

/// Runs ArmoniK tasks as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "armonik-wasm", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// Format of the host's log on stderr: text (for a person), json, or clef (the Compact
    /// Log Event Format of ArmoniK's workers, for its Fluent Bit and Seq stack).
    #[arg(
        long,
        global = true,
        env = "ArmonikWasm__LogFormat",
        value_parser = values::named::<LogFormat>(),
        ignore_case = true,
        default_value = "text"
    )]
    pub log_format: LogFormat,
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
    #[cfg(feature = "control-plane")]
    Dev(crate::cli::dev::DevArgs),
    /// A task in a process of its own, started by `serve --isolation process`.
    #[command(name = "task-process", hide = true)]
    TaskProcess(crate::worker::isolation::TaskProcessArgs),
    /// Send a component and its inputs to ArmoniK's control plane (a cluster, or `armonik-wasm
    /// dev`) as a session and a root task, follow the session until the root task's outputs
    /// are done, and download them.
    #[cfg(feature = "control-plane")]
    Submit(crate::cli::submit::SubmitArgs),
}

/// Sandbox settings shared by the commands that run tasks. An on/off flag set by its
/// environment variable takes any case of `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`
/// (clap's `BoolishValueParser`): operators write `True`, as .NET configuration does, or `1`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Linear memory one task may use, in MiB: half of what wasm32 can address, so a task
    /// still being stopped and the next one fit in a 4 GiB worker.
    #[arg(long, env = "ArmonikWasm__MemoryLimitMiB", default_value_t = 2048, value_parser = values::mib(1))]
    pub memory_limit_mib: usize,

    /// Linear memory kept resident between tasks, in MiB per memory: reset in place rather
    /// than given back and faulted in again by the next task. Higher speeds up tasks that
    /// move large data (their buffers stay mapped), at the cost of that much RAM kept per
    /// pool slot once a task grew its memory so far. Only with the pooling allocator, and at
    /// most the memory limit [default: 256].
    #[arg(long, env = "ArmonikWasm__KeepResidentMiB", value_parser = values::mib(0))]
    pub keep_resident_mib: Option<usize>,

    /// Time budget, in seconds, of a task whose options set no max_duration. More than 0:
    /// zero would stop every such task at once (a task's own zero means "the default");
    /// longer than a year is a year.
    #[arg(
        long,
        env = "ArmonikWasm__DefaultMaxDurationSeconds",
        default_value = "3600",
        allow_negative_numbers = true,
        value_parser = values::Trimmed(values::seconds_above_zero)
    )]
    pub default_max_duration: Duration,

    /// Where compiled components are cached [default: $ARMONIK_WASM_CACHE_DIR, else
    /// $XDG_CACHE_HOME/armonik-wasm, else ~/.cache/armonik-wasm].
    #[arg(long, env = "ArmonikWasm__CacheDir")]
    pub cache_dir: Option<PathBuf>,

    /// Compile components in memory only, without the on-disk cache.
    #[arg(long, env = "ArmonikWasm__NoCache", value_parser = values::on_off())]
    pub no_cache: bool,

    /// Size of the on-disk cache, in MiB, past which the least recently used entries are
    /// evicted: about 30 Python components. At least 1 (`--no-cache` turns the cache off).
    #[arg(long, env = "ArmonikWasm__CacheMaxMiB", default_value_t = compile_cache::DEFAULT_MAX_MIB, value_parser = values::Trimmed(values::cache_limit::<u64>))]
    pub cache_max_mib: u64,

    /// Entries of the on-disk cache past which the least recently used are evicted. At
    /// least 1 (`--no-cache` turns the cache off).
    #[arg(long, env = "ArmonikWasm__CacheMaxEntries", default_value_t = compile_cache::DEFAULT_MAX_ENTRIES, value_parser = values::Trimmed(values::cache_limit::<usize>))]
    pub cache_max_entries: usize,

    /// Allocate instances on demand instead of from the pooling allocator (which reserves
    /// address space up front, and is faster to instantiate from).
    #[arg(long, env = "ArmonikWasm__NoPooling", value_parser = values::on_off())]
    pub no_pooling: bool,

    /// Instantiate each task's component when the task arrives, instead of making the next
    /// instance while the worker waits for it (which keeps one idle instance in memory).
    #[arg(long, env = "ArmonikWasm__NoInstantiateAhead", value_parser = values::on_off())]
    pub no_instantiate_ahead: bool,

    /// Components by application: DIR/<application_name>/<application_version>.wasm, chosen
    /// for a task whose options name an application and no LibraryBlobId. Looked up at each
    /// task: a version dropped in is used without a restart.
    #[arg(long, env = "ArmonikWasm__ComponentsDir")]
    pub components_dir: Option<PathBuf>,
}

impl SandboxArgs {
    /// The sandbox, and the on-disk cache unless disabled.
    pub(crate) fn build(
        &self,
        max_concurrent_tasks: u32,
    ) -> anyhow::Result<(Arc<Sandbox>, Option<DiskCache>)> {
        let keep_resident_mib = self
            .keep_resident_mib
            .unwrap_or(DEFAULT_KEEP_RESIDENT >> 20);
        // Taken, but without effect: said once, so that an operator tuning it knows.
        if let Some(asked) = self.keep_resident_mib {
            if self.no_pooling {
                tracing::warn!(
                    "--keep-resident-mib (ArmonikWasm__KeepResidentMiB) has no effect with \
                     --no-pooling: memory allocated on demand is given back after each task"
                );
            } else if asked > self.memory_limit_mib {
                tracing::warn!(
                    keep_resident_mib = asked,
                    memory_limit_mib = self.memory_limit_mib,
                    "--keep-resident-mib (ArmonikWasm__KeepResidentMiB) is above \
                     --memory-limit-mib: at most the memory limit stays resident"
                );
            }
        }
        let sandbox = Arc::new(Sandbox::new(SandboxConfig {
            max_concurrent_tasks,
            memory_limit: self.memory_limit_mib.saturating_mul(1024 * 1024),
            pooling: !self.no_pooling,
            instantiate_ahead: !self.no_instantiate_ahead,
            keep_resident: keep_resident_mib.saturating_mul(1024 * 1024),
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
                    tracing::warn!(
                        root = %root.display(),
                        %error,
                        "compilation cache disabled: its folder (--cache-dir, ArmonikWasm__CacheDir) cannot be used"
                    );
                    None
                }
            },
        );
        Ok((sandbox, disk))
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
        value_parser = values::named::<SocketType>(),
        ignore_case = true,
        default_value = "UnixDomainSocket"
    )]
    pub worker_socket_type: SocketType,

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
        value_parser = values::named::<SocketType>(),
        ignore_case = true,
        default_value = "UnixDomainSocket"
    )]
    pub agent_socket_type: SocketType,

    /// Tasks that may run at once; one more is refused with UNAVAILABLE. ArmoniK sends one at
    /// a time; the spare slots cover a guest still being stopped after a timeout.
    #[arg(long, env = "ArmonikWasm__MaxConcurrentTasks", default_value_t = 4, value_parser = values::tasks_at_once::<u32>())]
    pub max_concurrent_tasks: u32,

    /// Sandbox settings.
    #[command(flatten)]
    pub sandbox: SandboxArgs,

    /// Seconds running tasks get to finish after SIGTERM or SIGINT (ArmoniK.Infra gives the
    /// agent 15 s of grace).
    #[arg(
        long,
        env = "ArmonikWasm__ShutdownGraceSeconds",
        default_value = "15",
        allow_negative_numbers = true,
        value_parser = values::Trimmed(values::seconds_from_zero)
    )]
    pub shutdown_grace: Duration,

    /// Where a task runs: in-process (a fresh store and instance in this process), or process
    /// (besides, a fresh child process of this binary per task: an OS process boundary, for a
    /// few milliseconds more per task).
    #[arg(
        long,
        env = "ArmonikWasm__Isolation",
        value_parser = values::named::<Isolation>(),
        ignore_case = true,
        default_value = "in-process"
    )]
    pub isolation: Isolation,

    /// Serve Prometheus metrics at http://ADDRESS/metrics (for example 0.0.0.0:9090; port 0
    /// picks a free one, logged at start). Off when unset.
    #[arg(long, env = "ArmonikWasm__MetricsAddress", value_parser = values::socket_address())]
    pub metrics_address: Option<std::net::SocketAddr>,
}

/// Where `serve` runs a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// In this process: a fresh store and instance per task. Also spelt `InProcess`, as
    /// .NET configuration would.
    #[value(alias = "inprocess")]
    InProcess,
    /// In a fresh child process per task, which instantiates the component this process
    /// compiled.
    Process,
}

/// `serve`: the production worker; `log_format` is passed on to task processes.
pub async fn serve(args: ServeArgs, log_format: LogFormat) -> anyhow::Result<()> {
    let worker_address = ChannelAddress::parse(&args.worker_address, args.worker_socket_type)
        .context(
            "invalid worker channel (--worker-address with --worker-socket-type; \
             ComputePlane__WorkerChannel__Address with ComputePlane__WorkerChannel__SocketType)",
        )?;
    let agent_address = ChannelAddress::parse(&args.agent_address, args.agent_socket_type)
        .context(
            "invalid agent channel (--agent-address with --agent-socket-type; \
             ComputePlane__AgentChannel__Address with ComputePlane__AgentChannel__SocketType)",
        )?;
    let default_max_duration = args.sandbox.default_max_duration;
    let grace = args.shutdown_grace;
    if let Some(address) = args.metrics_address {
        let bound = metrics::serve(address).await?;
        tracing::info!(address = %bound, "metrics endpoint: http://{bound}/metrics");
    }

    let (sandbox, disk) = args.sandbox.build(args.max_concurrent_tasks)?;
    let components = Components::new(
        sandbox.clone(),
        args.component.as_deref(),
        args.sandbox.components_dir.as_deref(),
        disk,
    )
    .await
    .map_err(|error| match error {
        // Names its setting already.
        LoadError::ComponentsDir { .. } => anyhow::Error::new(error),
        error => anyhow::Error::new(error)
            .context("the default component (--component, ArmonikWasm__Component)"),
    })?;
    let guest_thread = GuestThread::start().context("cannot start the guest thread")?;
    // The agent's channel runs on the guest thread, where the calls come from.
    let agent = {
        let _guest = guest_thread.enter();
        GrpcAgent::connect_lazy(&agent_address).context("invalid agent channel")?
    };
    let isolation = match args.isolation {
        Isolation::InProcess => None,
        Isolation::Process => Some(
            ProcessIsolation::new(&agent_address, sandbox.config(), log_format)
                .context("cannot set up process isolation")?,
        ),
    };
    let mut runner = TaskRunner::new(
        sandbox,
        components,
        Arc::new(agent),
        RunnerConfig {
            max_concurrent_tasks: usize::try_from(args.max_concurrent_tasks)?,
            default_max_duration,
        },
        Some(guest_thread),
    );
    if let Some(isolation) = isolation {
        tracing::info!("each task runs in a process of its own");
        runner = runner.with_isolation(isolation);
    }
    let runner = Arc::new(runner);
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
        served = server => served.context(
            "the worker channel (--worker-address, ComputePlane__WorkerChannel__Address)",
        )?,
        // A task still running past the grace period must not hold the exit.
        () = async {
            drained.notified().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        } => {}
    }
    tracing::info!("stopped");
    Ok(())
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
    let component = components::compile(&sandbox, &bytes, &origin, None)?;
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
