//! The agent of an instance made before its task is known (`crate::sandbox::ahead`): there is
//! no task to act for, so every call is refused. A component that calls the agent while it is
//! instantiated is never made ahead again; this only keeps such a call from reaching anyone.

use tonic::Status;

use super::Agent;
use crate::proto::v1::agent::{
    CreateResultsMetaDataRequest, CreateResultsMetaDataResponse, CreateResultsRequest,
    CreateResultsResponse, CreateTaskReply, CreateTaskRequest, DataRequest, DataResponse,
    NotifyResultDataRequest, NotifyResultDataResponse, SubmitTasksRequest, SubmitTasksResponse,
};

/// Refuses every call with FAILED_PRECONDITION.
pub struct Unbound;

fn refused<R>() -> Result<R, Status> {
    Err(Status::failed_precondition(
        "no task is bound to this instance yet: the agent cannot be called while the component is being instantiated",
    ))
}

#[async_trait::async_trait]
impl Agent for Unbound {
    async fn create_results_metadata(
        &self,
        _: CreateResultsMetaDataRequest,
    ) -> Result<CreateResultsMetaDataResponse, Status> {
        refused()
    }

    async fn create_results(
        &self,
        _: CreateResultsRequest,
    ) -> Result<CreateResultsResponse, Status> {
        refused()
    }

    async fn notify_result_data(
        &self,
        _: NotifyResultDataRequest,
    ) -> Result<NotifyResultDataResponse, Status> {
        refused()
    }

    async fn submit_tasks(&self, _: SubmitTasksRequest) -> Result<SubmitTasksResponse, Status> {
        refused()
    }

    async fn create_task(&self, _: Vec<CreateTaskRequest>) -> Result<CreateTaskReply, Status> {
        refused()
    }

    async fn get_resource_data(&self, _: DataRequest) -> Result<DataResponse, Status> {
        refused()
    }

    async fn get_common_data(&self, _: DataRequest) -> Result<DataResponse, Status> {
        refused()
    }

    async fn get_direct_data(&self, _: DataRequest) -> Result<DataResponse, Status> {
        refused()
    }
}
