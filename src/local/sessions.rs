//! Sessions of the local graph as clients lead them (ArmoniK.Core
//! `Common/src/gRPC/Services/GrpcSessionsService.cs`): created with default task options,
//! paused and resumed, closed to submissions, cancelled (created results aborted, tasks
//! stopped), purged (their data gone, never read back as empty), deleted (forgotten).

use std::time::SystemTime;

use tonic::Status;

use super::agent::LocalAgent;
use super::client::stop_tasks;
use super::graph::Graph;
use super::records::{ResultState, SessionRecord, SessionStatus};
use crate::proto::v1::TaskOptions;

impl LocalAgent {
    /// Creates a running session whose tasks default to `defaults`.
    pub fn create_session(&self, defaults: TaskOptions, partitions: Vec<String>) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let session = SessionRecord {
            id: id.clone(),
            status: SessionStatus::Running,
            defaults,
            partitions,
            client_submission: true,
            worker_submission: true,
            created_at: SystemTime::now(),
            cancelled_at: None,
            closed_at: None,
            purged_at: None,
            deleted_at: None,
        };
        self.lock().sessions.insert(id.clone(), session);
        id
    }

    /// A session, unless unknown or deleted.
    ///
    /// # Errors
    /// NOT_FOUND when there is no such session.
    pub fn session(&self, id: &str) -> Result<SessionRecord, Status> {
        live_session(&self.lock(), id).cloned()
    }

    /// Every session not deleted.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.lock()
            .sessions
            .values()
            .filter(|s| s.status != SessionStatus::Deleted)
            .cloned()
            .collect()
    }

    /// Changes a session's status (pause, resume, close, purge, delete), as ArmoniK.Core's
    /// `gRPC/Services/GrpcSessionsService.cs` allows: `from` lists the statuses it may leave.
    ///
    /// # Errors
    /// NOT_FOUND for an unknown session; FAILED_PRECONDITION from any other status.
    pub fn set_session_status(
        &self,
        id: &str,
        to: SessionStatus,
        from: &[SessionStatus],
    ) -> Result<SessionRecord, Status> {
        let mut graph = self.lock();
        let session = live_session(&graph, id)?;
        if !from.contains(&session.status) {
            return Err(Status::failed_precondition(format!(
                "session `{id}` is {}; it cannot become {}",
                session_word(session.status),
                session_word(to)
            )));
        }
        if to == SessionStatus::Purged {
            // Nothing may write data after the purge: its tasks still running are stopped,
            // and its results' data is gone for good (deleted, never read as empty).
            stop_session_tasks(&mut graph, id, "its session was purged");
            let ids: Vec<(String, ResultState)> = graph
                .results
                .iter()
                .filter(|(_, r)| r.session_id == id)
                .map(|(rid, r)| (rid.clone(), r.state))
                .collect();
            for (rid, state) in ids {
                if let Err(error) = self.store.remove(&rid) {
                    tracing::warn!(result_id = %rid, %error, "cannot remove a purged result's data");
                }
                if state == ResultState::Completed {
                    graph.set_result_state(&rid, ResultState::Deleted, 0);
                }
            }
            self.folders.forget_copies();
        }
        if to == SessionStatus::Deleted {
            self.forget_session(&mut graph, id);
        }
        let Some(session) = graph.sessions.get_mut(id) else {
            return Err(not_found_session(id));
        };
        let now = Some(SystemTime::now());
        let resumed = session.status == SessionStatus::Paused && to == SessionStatus::Running;
        session.status = to;
        match to {
            SessionStatus::Closed => {
                session.closed_at = now;
                session.client_submission = false;
                session.worker_submission = false;
            }
            SessionStatus::Purged => session.purged_at = now,
            SessionStatus::Deleted => session.deleted_at = now,
            _ => {}
        }
        let session = session.clone();
        if resumed {
            graph.readiness.unpark(id);
        }
        drop(graph);
        self.changed.notify_one();
        Ok(session)
    }

    /// Stops clients (`client`) and tasks (`worker`) from submitting more tasks to a session.
    ///
    /// # Errors
    /// NOT_FOUND for an unknown session.
    pub fn stop_submission(
        &self,
        id: &str,
        client: bool,
        worker: bool,
    ) -> Result<SessionRecord, Status> {
        let mut graph = self.lock();
        live_session(&graph, id)?;
        let Some(session) = graph.sessions.get_mut(id) else {
            return Err(not_found_session(id));
        };
        session.client_submission &= !client;
        session.worker_submission &= !worker;
        Ok(session.clone())
    }

    /// Cancels a session: its created results are aborted, its waiting tasks cancelled, its
    /// running tasks stopped (ArmoniK.Core `gRPC/Services/GrpcSessionsService.cs`).
    ///
    /// # Errors
    /// NOT_FOUND for an unknown session; FAILED_PRECONDITION if it is already cancelled or
    /// further.
    pub fn cancel_session(&self, id: &str) -> Result<SessionRecord, Status> {
        let mut graph = self.lock();
        let session = live_session(&graph, id)?;
        if !matches!(
            session.status,
            SessionStatus::Running | SessionStatus::Paused | SessionStatus::Closed
        ) {
            return Err(Status::failed_precondition(format!(
                "session `{id}` is {}; it cannot be cancelled",
                session_word(session.status)
            )));
        }
        stop_session_tasks(&mut graph, id, "its session was cancelled");
        let created: Vec<String> = graph
            .results
            .iter()
            .filter(|(_, r)| r.session_id == id && r.state == ResultState::Created)
            .map(|(rid, _)| rid.clone())
            .collect();
        for rid in created {
            graph.set_result_state(&rid, ResultState::Aborted, 0);
        }
        let Some(session) = graph.sessions.get_mut(id) else {
            return Err(not_found_session(id));
        };
        session.status = SessionStatus::Cancelled;
        session.cancelled_at = Some(SystemTime::now());
        session.client_submission = false;
        session.worker_submission = false;
        let session = session.clone();
        drop(graph);
        self.changed.notify_one();
        Ok(session)
    }

    /// Frees what a deleted session held: its tasks and results (records and data files) and
    /// its subscribers. Its attempts still running end as cancelled, committing nothing.
    fn forget_session(&self, graph: &mut Graph, id: &str) {
        let results: Vec<String> = graph
            .results
            .iter()
            .filter(|(_, r)| r.session_id == id)
            .map(|(rid, _)| rid.clone())
            .collect();
        for rid in &results {
            if let Err(error) = self.store.remove(rid) {
                tracing::warn!(result_id = %rid, %error, "cannot remove a deleted result's data");
            }
            graph.results.remove(rid);
        }
        self.folders.forget_copies();
        graph.forget_tasks(id);
        graph.subscribers.retain(|s| s.session_id != id);
    }
}

/// Stops every unfinished task of a session (see [`stop_tasks`]).
fn stop_session_tasks(graph: &mut Graph, session_id: &str, why: &str) {
    let tasks: Vec<String> = graph
        .tasks
        .values()
        .filter(|t| t.session_id == session_id && !t.state.is_final())
        .map(|t| t.id.clone())
        .collect();
    stop_tasks(graph, &tasks, why);
}

pub(super) fn live_session<'g>(graph: &'g Graph, id: &str) -> Result<&'g SessionRecord, Status> {
    graph
        .sessions
        .get(id)
        .filter(|s| s.status != SessionStatus::Deleted)
        .ok_or_else(|| not_found_session(id))
}

pub(super) fn not_found_session(id: &str) -> Status {
    Status::not_found(format!("session `{id}` not found"))
}

/// The lower-case word for a session status, as printed to users.
fn session_word(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Running => "running",
        SessionStatus::Paused => "paused",
        SessionStatus::Cancelled => "cancelled",
        SessionStatus::Closed => "closed",
        SessionStatus::Purged => "purged",
        SessionStatus::Deleted => "deleted",
    }
}
