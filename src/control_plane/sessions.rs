//! The Sessions service (ArmoniK.Api `sessions_service.proto`; behaviour of ArmoniK.Core
//! `Common/src/gRPC/Services/GrpcSessionsService.cs`).

use std::sync::Arc;

use armonik::server::{RequestContext, SessionsService};
use armonik::sessions;
use tonic::Status;

use super::ControlPlane;
use super::filters::{self, Compiled, expression};
use super::objects::{options_in, session_raw, session_value};
use crate::local::records::SessionStatus;

impl ControlPlane {
    /// Checks default task options as ArmoniK.Core's `gRPC/Validators/
    /// TaskOptionsValidator.cs` does, and the partitions as `Storage/
    /// SessionLifeCycleHelper.cs`: they must exist.
    fn check_session(&self, request: &sessions::create::Request) -> Result<(), Status> {
        let options = &request.default_task_options;
        if options.max_retries < 1 {
            return Err(Status::invalid_argument(format!(
                "default task options: max_retries must be at least 1, got {}",
                options.max_retries
            )));
        }
        if !(1..=99).contains(&options.priority) {
            return Err(Status::invalid_argument(format!(
                "default task options: priority must be between 1 and 99, got {}",
                options.priority
            )));
        }
        let partitions = request
            .partition_ids
            .iter()
            .chain(std::iter::once(&options.partition_id).filter(|p| !p.is_empty()));
        for partition in partitions {
            if !self.partitions.contains(partition) {
                return Err(Status::invalid_argument(format!(
                    "partition `{partition}` does not exist; this server has {}",
                    self.partitions.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn session_response(&self, session_id: &str) -> Result<sessions::Raw, Status> {
        Ok(session_raw(&self.agent.session(session_id)?))
    }

    fn move_session(
        &self,
        session_id: &str,
        to: SessionStatus,
        from: &[SessionStatus],
    ) -> Result<sessions::Raw, Status> {
        Ok(session_raw(
            &self.agent.set_session_status(session_id, to, from)?,
        ))
    }
}

impl SessionsService for ControlPlane {
    async fn list(
        self: Arc<Self>,
        request: sessions::list::Request,
        _: RequestContext,
    ) -> Result<sessions::list::Response, Status> {
        let all = self.agent.sessions().iter().map(session_raw).collect();
        let filter = Compiled::new(expression!(request.filters), |f| {
            session_value(&sessions::Raw::default(), f)
        })?;
        let (mut found, total) = filters::page(
            all,
            filter,
            Some((&request.sort.field, &request.sort.direction)),
            request.page,
            request.page_size,
            session_value,
        )?;
        if !request.with_task_options {
            for session in &mut found {
                session.default_task_options = armonik::TaskOptions::default();
            }
        }
        Ok(sessions::list::Response {
            sessions: found,
            page: request.page,
            page_size: request.page_size,
            total,
        })
    }

    async fn get(
        self: Arc<Self>,
        request: sessions::get::Request,
        _: RequestContext,
    ) -> Result<sessions::get::Response, Status> {
        Ok(sessions::get::Response {
            session: self.session_response(&request.session_id)?,
        })
    }

    async fn cancel(
        self: Arc<Self>,
        request: sessions::cancel::Request,
        _: RequestContext,
    ) -> Result<sessions::cancel::Response, Status> {
        let session = self.agent.cancel_session(&request.session_id)?;
        Ok(sessions::cancel::Response {
            session: session_raw(&session),
        })
    }

    async fn create(
        self: Arc<Self>,
        request: sessions::create::Request,
        _: RequestContext,
    ) -> Result<sessions::create::Response, Status> {
        self.check_session(&request)?;
        let partitions = if request.partition_ids.is_empty() {
            vec![super::DEFAULT_PARTITION.to_owned()]
        } else {
            request.partition_ids
        };
        let session_id = self
            .agent
            .create_session(options_in(request.default_task_options), partitions);
        Ok(sessions::create::Response { session_id })
    }

    async fn pause(
        self: Arc<Self>,
        request: sessions::pause::Request,
        _: RequestContext,
    ) -> Result<sessions::pause::Response, Status> {
        let session = self.move_session(
            &request.session_id,
            SessionStatus::Paused,
            &[SessionStatus::Running],
        )?;
        Ok(sessions::pause::Response { session })
    }

    async fn resume(
        self: Arc<Self>,
        request: sessions::resume::Request,
        _: RequestContext,
    ) -> Result<sessions::resume::Response, Status> {
        let session = self.move_session(
            &request.session_id,
            SessionStatus::Running,
            &[SessionStatus::Paused],
        )?;
        Ok(sessions::resume::Response { session })
    }

    async fn close(
        self: Arc<Self>,
        request: sessions::close::Request,
        _: RequestContext,
    ) -> Result<sessions::close::Response, Status> {
        let session = self.move_session(
            &request.session_id,
            SessionStatus::Closed,
            &[SessionStatus::Running, SessionStatus::Paused],
        )?;
        Ok(sessions::close::Response { session })
    }

    async fn purge(
        self: Arc<Self>,
        request: sessions::purge::Request,
        _: RequestContext,
    ) -> Result<sessions::purge::Response, Status> {
        let session = self.move_session(
            &request.session_id,
            SessionStatus::Purged,
            &[SessionStatus::Closed, SessionStatus::Cancelled],
        )?;
        Ok(sessions::purge::Response { session })
    }

    async fn delete(
        self: Arc<Self>,
        request: sessions::delete::Request,
        _: RequestContext,
    ) -> Result<sessions::delete::Response, Status> {
        // Its tasks are stopped first: a deleted session runs nothing.
        let _ = self.agent.cancel_session(&request.session_id);
        let session = self.move_session(
            &request.session_id,
            SessionStatus::Deleted,
            &[
                SessionStatus::Running,
                SessionStatus::Paused,
                SessionStatus::Cancelled,
                SessionStatus::Closed,
                SessionStatus::Purged,
            ],
        )?;
        Ok(sessions::delete::Response { session })
    }

    async fn stop_submission(
        self: Arc<Self>,
        request: sessions::stop_submission::Request,
        _: RequestContext,
    ) -> Result<sessions::stop_submission::Response, Status> {
        let session =
            self.agent
                .stop_submission(&request.session_id, request.client, request.worker)?;
        Ok(sessions::stop_submission::Response {
            session: session_raw(&session),
        })
    }
}
