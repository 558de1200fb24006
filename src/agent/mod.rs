//! The ArmoniK Agent as the host sees it: one trait with the Agent service's operations.
//!
//! The WIT agent bridge calls this trait, never gRPC directly, so the same guest runs against
//! ArmoniK's polling agent ([`crate::agent::grpc::GrpcAgent`]) or an agent embedded in the
//! host. Requests carry the communication token like on the wire: an implementation checks it
//! the way ArmoniK does.

pub mod bridge;
pub mod convert;
pub mod grpc;
pub mod unbound;

use crate::proto::v1::agent::{
    CreateResultsMetaDataRequest, CreateResultsMetaDataResponse, CreateResultsRequest,
    CreateResultsResponse, CreateTaskReply, CreateTaskRequest, DataRequest, DataResponse,
    NotifyResultDataRequest, NotifyResultDataResponse, SubmitTasksRequest, SubmitTasksResponse,
};
use tonic::Status;

/// The operations of ArmoniK's Agent service, with its messages and its error statuses.
#[async_trait::async_trait]
pub trait Agent: Send + Sync + 'static {
    /// `CreateResultsMetaData`: results without data.
    async fn create_results_metadata(
        &self,
        request: CreateResultsMetaDataRequest,
    ) -> Result<CreateResultsMetaDataResponse, Status>;

    /// `CreateResults`: results with inline data.
    async fn create_results(
        &self,
        request: CreateResultsRequest,
    ) -> Result<CreateResultsResponse, Status>;

    /// `NotifyResultData`: result files in the data folder are complete.
    async fn notify_result_data(
        &self,
        request: NotifyResultDataRequest,
    ) -> Result<NotifyResultDataResponse, Status>;

    /// `SubmitTasks`: tasks over existing results.
    async fn submit_tasks(
        &self,
        request: SubmitTasksRequest,
    ) -> Result<SubmitTasksResponse, Status>;

    /// `CreateTask`: the legacy client stream, given whole.
    async fn create_task(&self, stream: Vec<CreateTaskRequest>) -> Result<CreateTaskReply, Status>;

    /// `GetResourceData`: copy a result's data into the data folder.
    async fn get_resource_data(&self, request: DataRequest) -> Result<DataResponse, Status>;

    /// `GetCommonData`.
    async fn get_common_data(&self, request: DataRequest) -> Result<DataResponse, Status>;

    /// `GetDirectData`.
    async fn get_direct_data(&self, request: DataRequest) -> Result<DataResponse, Status>;
}
