//! The commands of the `armonik-wasm` binary.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::agent_grpc::GrpcAgent;
use crate::components::Components;
use crate::config::ChannelAddress;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::task_runner::{RunnerConfig, TaskRunner};
use crate::transport::{self, WorkerService};

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

    /// Time budget, in seconds, of a task whose options set no max_duration.
    #[arg(
        long,
        env = "ArmonikWasm__DefaultMaxDurationSeconds",
        default_value_t = 3600.0
    )]
    pub default_max_duration: f64,

    /// Linear memory one task may use, in MiB: half of what wasm32 can address, so a task
    /// still being stopped and the next one fit in a 4 GiB worker.
    #[arg(long, env = "ArmonikWasm__MemoryLimitMiB", default_value_t = 2048)]
    pub memory_limit_mib: usize,

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
    let default_max_duration = seconds(args.default_max_duration, "--default-max-duration")?;
    let grace = seconds(args.shutdown_grace, "--shutdown-grace")?;

    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        max_concurrent_tasks: args.max_concurrent_tasks,
        memory_limit: args.memory_limit_mib.saturating_mul(1024 * 1024),
    })?);
    let components = Components::new(sandbox.clone(), args.component.as_deref()).await?;
    let agent = GrpcAgent::connect_lazy(&agent_address).context("invalid agent channel")?;
    let runner = Arc::new(TaskRunner::new(
        sandbox,
        components,
        Arc::new(agent),
        RunnerConfig {
            max_concurrent_tasks: usize::try_from(args.max_concurrent_tasks)?,
            default_max_duration,
        },
    ));
    let serving = Arc::new(AtomicBool::new(true));
    let service = WorkerService::new(runner, serving.clone());
    tracing::info!(%agent_address, "agent channel (connected on first use)");

    let stop = Arc::new(tokio::sync::Notify::new());
    let server = transport::serve(&worker_address, service, {
        let stop = stop.clone();
        async move { stop.notified().await }
    });
    let signals = async {
        shutdown_signal().await;
        // New tasks are refused from now on; running ones get the grace period.
        serving.store(false, Ordering::Relaxed);
        stop.notify_one();
        tracing::info!(?grace, "shutting down, waiting for running tasks");
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served?,
        () = signals => tracing::warn!("grace period over, stopping with tasks still running"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// A duration given in seconds on the command line.
fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{flag} must be a positive number of seconds"))
}

/// Resolves at the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            tracing::error!("cannot listen for signals; stop the worker with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
