//! The Worker gRPC service that ArmoniK's polling agent calls, served on a unix socket or TCP.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use crate::proto::v1::Empty;
use crate::proto::v1::worker::health_check_reply::ServingStatus;
use crate::proto::v1::worker::worker_server::{Worker, WorkerServer};
use crate::proto::v1::worker::{HealthCheckReply, ProcessReply, ProcessRequest};
use crate::worker::config::ChannelAddress;
use crate::worker::task_runner::TaskRunner;

/// The Worker service: Process runs a task, HealthCheck says whether new tasks are welcome.
pub struct WorkerService {
    runner: Arc<TaskRunner>,
    serving: Arc<AtomicBool>,
}

impl WorkerService {
    /// A service over `runner`; HealthCheck answers SERVING while `serving` is true.
    pub fn new(runner: Arc<TaskRunner>, serving: Arc<AtomicBool>) -> Self {
        Self { runner, serving }
    }
}

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn process(
        &self,
        request: Request<ProcessRequest>,
    ) -> Result<Response<ProcessReply>, Status> {
        // If ArmoniK cancels the call (deadline, task cancelled), tonic drops this future: the
        // guest is dropped at its next epoch tick, within milliseconds.
        self.runner
            .process(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn health_check(&self, _: Request<Empty>) -> Result<Response<HealthCheckReply>, Status> {
        // Answered on its own, never queued behind a running task: ArmoniK's agent takes an
        // unhealthy answer (or a 5 s timeout) as a dead worker and stops for good.
        let status = if self.serving.load(Ordering::Relaxed) {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        Ok(Response::new(HealthCheckReply {
            status: status.into(),
        }))
    }
}

/// Serves `service` at `address` until `shutdown` resolves, then lets running calls finish.
/// A stale unix socket file is replaced at start (anything else at that path stops the start)
/// and the socket file is removed at the end.
pub async fn serve(
    address: &ChannelAddress,
    service: WorkerService,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    // ArmoniK's agent sends requests of any size (a task option may be megabytes), as Core's
    // own services accept them; tonic's 4 MiB default would refuse them with OUT_OF_RANGE.
    let router = Server::builder().add_service(
        WorkerServer::new(service)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX),
    );
    match address {
        ChannelAddress::Unix(path) => {
            remove_stale_socket(path)?;
            let listener = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("cannot listen on {}", path.display()))?;
            // Removed however serving ends, also when the caller stops waiting for it.
            let _socket = SocketFile(path);
            tracing::info!(%address, "worker listening");
            router
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
                .await?;
        }
        ChannelAddress::Tcp { port, .. } => {
            // Like ArmoniK's SDK workers: any interface, at the configured port.
            let listener = tokio::net::TcpListener::bind(("0.0.0.0", *port))
                .await
                .with_context(|| format!("cannot listen on TCP port {port}"))?;
            // What is bound, not what was asked: the host is not used, and port 0 is chosen
            // by the system.
            let listening = listener.local_addr()?;
            tracing::info!(%address, %listening, "worker listening on every interface");
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                .await?;
        }
    }
    Ok(())
}

/// Removes the socket file a previous run left at `path`, so that the worker can listen
/// there. Anything else at that path (a file, a folder, a symbolic link: a typo in the
/// address, or another program's), and a socket a process still listens on, is left as it
/// is and the worker does not start: an address is the operator's to fix, never a file for
/// the worker to delete.
///
/// # Errors
/// Something other than a stale socket is at `path`, or the old socket cannot be removed.
fn remove_stale_socket(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    // Not followed: a link to a socket is not the worker's own socket file.
    let found = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata.file_type(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot look at {}", path.display()));
        }
    };
    if !found.is_socket() {
        let what = if found.is_dir() {
            "a folder"
        } else if found.is_symlink() {
            "a symbolic link"
        } else if found.is_file() {
            "a regular file"
        } else {
            "a special file"
        };
        anyhow::bail!(
            "the worker address {} is {what}, not a socket: it is left as it is; set \
             ComputePlane__WorkerChannel__Address (--worker-address) to a free path or to an old \
             socket of this worker",
            path.display()
        );
    }
    // A socket some process still listens on is not stale: a second worker given the same
    // address would take it from a worker that is serving.
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => anyhow::bail!(
            "the worker address {} is the socket of a process that is listening on it: it is \
             left to that process; stop it, or set ComputePlane__WorkerChannel__Address \
             (--worker-address) to another path",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot tell whether the socket {} is in use",
                    path.display()
                )
            });
        }
    }
    // Between the look and the removal the path could be replaced; it is the operator's
    // own worker path (the agent's shared folder), not a guest's or a client's name.
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale socket file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot remove the old socket file {}", path.display()));
        }
    }
    Ok(())
}

/// Removes the socket file when dropped: the agent's preStop hook and the next start look for
/// it.
struct SocketFile<'a>(&'a std::path::Path);

impl Drop for SocketFile<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}
