//! `armonik-wasm dev`: ArmoniK API v3's control-plane gRPC services (Sessions, Results,
//! Tasks, Events, HealthChecks, Versions, Partitions, Applications) over the embedded agent's
//! graph, so that ArmoniK's own clients run against this host unmodified. Each service is a
//! thin adapter: the semantics live in [`crate::local::client`] and [`crate::local::graph`].
//!
//! The services implement the `armonik` crate's server traits; Submitter and Auth (the
//! legacy and the authentication services) are not served: a client calling them gets
//! UNIMPLEMENTED from tonic, naming the service.

mod events;
pub mod filters;
mod info;
pub mod objects;
mod results;
mod sessions;
mod tasks;

use std::sync::Arc;

use crate::local::agent::LocalAgent;

/// The name of the partition every session may use, whatever else is configured.
pub const DEFAULT_PARTITION: &str = "default";

/// The control plane: the graph and what the services say about the deployment.
pub struct ControlPlane {
    agent: Arc<LocalAgent>,
    /// Partitions sessions may name, the default first.
    partitions: Vec<String>,
    /// The most a data chunk holds, in bytes: what `GetServiceConfiguration` announces and
    /// downloads send.
    chunk_size: usize,
    /// Becomes true when the server stops: event streams end then.
    stop: tokio::sync::watch::Receiver<bool>,
}

impl ControlPlane {
    /// A control plane over `agent`, with the default partition and `partitions`; its event
    /// streams end when `stop` becomes true.
    pub fn new(
        agent: Arc<LocalAgent>,
        partitions: &[String],
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let mut all = vec![DEFAULT_PARTITION.to_owned()];
        for partition in partitions {
            if !all.contains(partition) {
                all.push(partition.clone());
            }
        }
        Self {
            agent,
            partitions: all,
            chunk_size: crate::local::agent::CHUNK_SIZE,
            stop,
        }
    }

    /// A gRPC router serving every control-plane service, with no limit on message sizes
    /// (ArmoniK's clients send whole payloads in CreateResults). A method it does not serve
    /// (the legacy Submitter, Auth, ...) answers UNIMPLEMENTED naming it.
    pub fn router(self) -> tonic::transport::server::Router {
        use armonik::api::v3;
        let plane = Arc::new(self);
        let mut routes = tonic::service::Routes::default();
        routes = routes
            .add_service(sized(v3::sessions::sessions_server::SessionsServer::from_arc(
                plane.clone(),
            )))
            .add_service(sized(v3::results::results_server::ResultsServer::from_arc(
                plane.clone(),
            )))
            .add_service(sized(v3::tasks::tasks_server::TasksServer::from_arc(
                plane.clone(),
            )))
            .add_service(sized(v3::events::events_server::EventsServer::from_arc(
                plane.clone(),
            )))
            .add_service(
                v3::health_checks::health_checks_service_server::HealthChecksServiceServer::from_arc(
                    plane.clone(),
                ),
            )
            .add_service(v3::versions::versions_server::VersionsServer::from_arc(
                plane.clone(),
            ))
            .add_service(v3::partitions::partitions_server::PartitionsServer::from_arc(
                plane.clone(),
            ))
            .add_service(v3::applications::applications_server::ApplicationsServer::from_arc(
                plane,
            ));
        let routes: tonic::service::Routes = routes.into_axum_router().fallback(unserved).into();
        tonic::transport::Server::builder().add_routes(routes)
    }
}

/// The answer to a method no service here serves: UNIMPLEMENTED, naming it (tonic's own says
/// nothing).
async fn unserved(uri: axum::http::Uri) -> axum::response::Response {
    tonic::Status::unimplemented(format!(
        "armonik-wasm dev does not serve {}: it serves ArmoniK's Sessions, Results, Tasks, Events, HealthChecks, Versions, Partitions and Applications services",
        uri.path()
    ))
    .into_http()
}

/// Lifts a service's default 4 MiB limit on decoded messages.
fn sized<S: SizedServer>(server: S) -> S {
    server.max_decoding_message_size(usize::MAX)
}

/// The generated servers' message size setting, shared by the ones that take data.
trait SizedServer {
    fn max_decoding_message_size(self, limit: usize) -> Self;
}

macro_rules! sized_server {
    ($($server:ty),*) => {$(
        impl<T> SizedServer for $server {
            fn max_decoding_message_size(self, limit: usize) -> Self {
                <$server>::max_decoding_message_size(self, limit).max_encoding_message_size(limit)
            }
        }
    )*};
}

sized_server!(
    armonik::api::v3::sessions::sessions_server::SessionsServer<T>,
    armonik::api::v3::results::results_server::ResultsServer<T>,
    armonik::api::v3::tasks::tasks_server::TasksServer<T>,
    armonik::api::v3::events::events_server::EventsServer<T>
);
