//! `armonik-wasm dev`: a local ArmoniK for the client side. ArmoniK's control-plane services
//! ([`crate::control_plane`]) over the embedded agent, with its scheduler running every
//! submitted task as a component in this host's sandbox.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use futures::FutureExt;
use futures::future::FusedFuture;

use crate::cli::{LocalRunner, SandboxArgs, shutdown_signal};
use crate::control_plane::ControlPlane;
use crate::host_files::EmptyFiles;
use crate::local::agent::LocalAgent;
use crate::local::scheduler::{self, Until};

/// Settings of `dev`; each flag can also be set by the environment variable shown.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Address of the control plane's gRPC server (port 0: any free port). ArmoniK's clients
    /// connect to it as to a cluster's endpoint.
    #[arg(long, env = "ArmonikWasm__Listen", default_value = "127.0.0.1:5001")]
    pub listen: SocketAddr,

    /// The component that runs tasks which do not ship their own (ConventionVersion=v1 with
    /// a LibraryBlobId).
    #[arg(long, env = "ArmonikWasm__Component")]
    pub component: Option<PathBuf>,

    /// Where results and task folders live, kept at exit [default: a temporary folder,
    /// removed at exit]. Sessions live in memory: a restart starts with none.
    #[arg(long, env = "ArmonikWasm__DataDir")]
    pub data_dir: Option<PathBuf>,

    /// Tasks run at once [default: the number of CPUs].
    #[arg(long, env = "ArmonikWasm__Parallelism", value_parser = crate::cli::values::tasks_at_once::<usize>())]
    pub parallelism: Option<usize>,

    /// A partition sessions may use besides `default`; repeat it for more.
    #[arg(long = "partition", value_name = "NAME")]
    pub partitions: Vec<String>,

    /// Sandbox settings.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// `dev`: serves ArmoniK's control plane until SIGINT or SIGTERM; running tasks are then
/// stopped and the temporary data folder removed.
pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let stop = shutdown_signal();
    let local =
        LocalRunner::new(&args.sandbox, args.component.as_deref(), args.parallelism).await?;
    let parallelism = local.parallelism;

    // Private to this user: it holds every result of every session.
    let (data_dir, temporary) = match args.data_dir {
        Some(dir) => (dir, None),
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("armonik-wasm-dev")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .tempdir()?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    // Empty files kept for the next process: beside a temporary data folder, inside a given
    // one (`host_files::EmptyFiles`).
    let empty_files = match &temporary {
        Some(_) => EmptyFiles::temp_dir_path(),
        None => data_dir.join("empty-files"),
    };
    let agent = Arc::new(
        LocalAgent::new(&data_dir, Some(&empty_files))
            .with_context(|| format!("cannot use the data folder {}", data_dir.display()))?,
    );
    let runner = local.runner(agent.clone());

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);

    let (stopped, on_stop) = tokio::sync::watch::channel(false);
    let router = ControlPlane::new(agent.clone(), &args.partitions, on_stop.clone()).router();
    let scheduler =
        scheduler::run_graph(agent.clone(), runner, parallelism, Until::Stopped, None, {
            let mut on_stop = on_stop.clone();
            async move {
                let _ = on_stop.wait_for(|s| *s).await;
            }
        });
    let server = router.serve_with_incoming_shutdown(incoming, {
        let mut on_stop = on_stop.clone();
        async move {
            let _ = on_stop.wait_for(|s| *s).await;
        }
    });
    // The line tests and scripts wait for: the server takes connections from here on.
    crate::outln!("listening on http://{address}")?;
    tracing::info!(%address, data_dir = %data_dir.display(), parallelism, "armonik-wasm dev: ArmoniK's control plane");

    let mut scheduler = std::pin::pin!(scheduler.fuse());
    let mut server = std::pin::pin!(server.fuse());
    let ended = tokio::select! {
        () = stop => Ok(()),
        ended = &mut scheduler => ended.map(drop),
        served = &mut server => served.context("the control plane's server failed"),
    };
    if ended.is_ok() {
        tracing::info!("stopping: running tasks are stopped");
    }
    let _ = stopped.send(true);
    // Both end promptly once told: the scheduler stops its guests, the server its calls
    // (event streams included, which never end on their own). The running attempts end
    // before the spares go, on every path: their folders' files would become spares again.
    if !scheduler.is_terminated() {
        let _ = scheduler.await;
    }
    if let Err(error) = ended {
        // The server's connections may still hold the agent: the spares go first.
        agent.release_spares();
        return Err(error);
    }
    if !server.is_terminated()
        && let Ok(Err(error)) =
            tokio::time::timeout(std::time::Duration::from_secs(5), server).await
    {
        tracing::warn!(%error, "the control plane's server stopped with an error");
    }
    // The server may still hold the agent (its stop timed out): the spares go first.
    agent.release_spares();
    drop(temporary);
    Ok(())
}
