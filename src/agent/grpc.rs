//! The production [`Agent`]: a gRPC client of ArmoniK's polling agent.

use std::time::Duration;

use crate::agent::Agent;
use crate::proto::v1::agent::{
    CreateResultsMetaDataRequest, CreateResultsMetaDataResponse, CreateResultsRequest,
    CreateResultsResponse, CreateTaskReply, CreateTaskRequest, DataRequest, DataResponse,
    NotifyResultDataRequest, NotifyResultDataResponse, SubmitTasksRequest, SubmitTasksResponse,
    agent_client::AgentClient,
};
use crate::worker::config::ChannelAddress;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Response, Status};

/// How long connecting to the agent may take before a call fails with UNAVAILABLE. The agent
/// runs in the same pod: a connection that takes longer than this is not coming, and a task
/// must not hang on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the Agent service on one channel, reused by every task. The channel connects
/// lazily (the worker may start before the agent) and reconnects after the agent restarts.
#[derive(Clone)]
pub struct GrpcAgent {
    client: AgentClient<Channel>,
    channel: Channel,
}

impl GrpcAgent {
    /// Prepares a channel to the agent at `address`; nothing is dialled until the first call.
    pub fn connect_lazy(address: &ChannelAddress) -> anyhow::Result<Self> {
        let channel = match address {
            ChannelAddress::Unix(path) => {
                let path = path.clone();
                // Core dials unix sockets as `http://localhost`; the authority must be a host
                // name, not the socket path (see the worker contract, §8).
                Endpoint::from_static("http://localhost")
                    .connect_timeout(CONNECT_TIMEOUT)
                    .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    }))
            }
            ChannelAddress::Tcp { uri, .. } => Endpoint::from_shared(uri.clone())?
                .connect_timeout(CONNECT_TIMEOUT)
                .connect_lazy(),
        };
        Ok(Self {
            channel: channel.clone(),
            // Responses are small; requests may carry up to the agent's own 4 MiB limit.
            // Core's agent replies with messages of any size (50,000 created results are 5 MB):
            // work it recorded must not be reported to the guest as failed.
            client: AgentClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        })
    }
}

impl GrpcAgent {
    /// Connects now instead of at the first call: a task process does it while it waits for
    /// its task. An agent out of reach is not an error here; the first call will say so.
    pub async fn connect_now(&self) {
        let mut channel = self.channel.clone();
        let ready = tower::ServiceExt::<tonic::codegen::http::Request<tonic::body::Body>>::ready(
            &mut channel,
        );
        if let Err(error) = ready.await {
            tracing::debug!(%error, "the agent is not reachable yet");
        }
    }
}

#[async_trait::async_trait]
impl Agent for GrpcAgent {
    async fn create_results_metadata(
        &self,
        request: CreateResultsMetaDataRequest,
    ) -> Result<CreateResultsMetaDataResponse, Status> {
        answer(self.client.clone().create_results_meta_data(request).await)
    }

    async fn create_results(
        &self,
        request: CreateResultsRequest,
    ) -> Result<CreateResultsResponse, Status> {
        answer(self.client.clone().create_results(request).await)
    }

    async fn notify_result_data(
        &self,
        request: NotifyResultDataRequest,
    ) -> Result<NotifyResultDataResponse, Status> {
        answer(self.client.clone().notify_result_data(request).await)
    }

    async fn submit_tasks(
        &self,
        request: SubmitTasksRequest,
    ) -> Result<SubmitTasksResponse, Status> {
        answer(self.client.clone().submit_tasks(request).await)
    }

    async fn create_task(&self, stream: Vec<CreateTaskRequest>) -> Result<CreateTaskReply, Status> {
        let request = Request::new(tokio_stream::iter(stream));
        answer(self.client.clone().create_task(request).await)
    }

    async fn get_resource_data(&self, request: DataRequest) -> Result<DataResponse, Status> {
        answer(self.client.clone().get_resource_data(request).await)
    }

    async fn get_common_data(&self, request: DataRequest) -> Result<DataResponse, Status> {
        answer(self.client.clone().get_common_data(request).await)
    }

    async fn get_direct_data(&self, request: DataRequest) -> Result<DataResponse, Status> {
        answer(self.client.clone().get_direct_data(request).await)
    }
}

/// The agent's answer, with failures to reach it reported as UNAVAILABLE. tonic reports a
/// broken connection as UNKNOWN "transport error"; unlike a status the agent sent, such a
/// status has a local error as its source.
fn answer<T>(reply: Result<Response<T>, Status>) -> Result<T, Status> {
    match reply {
        Ok(reply) => Ok(reply.into_inner()),
        Err(status)
            if status.code() != tonic::Code::Unavailable
                && std::error::Error::source(&status).is_some() =>
        {
            Err(Status::unavailable(format!(
                "cannot reach the agent: {status}"
            )))
        }
        Err(status) => Err(status),
    }
}
