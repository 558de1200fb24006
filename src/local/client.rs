//! What clients do to the embedded agent's graph: sessions, results made by clients, task
//! submission and cancellation, and queries. `run` calls these directly; `dev` serves them as
//! ArmoniK's control-plane services ([`crate::control_plane`]).
//!
//! Semantics follow ArmoniK.Core (paths under `Common/src/`): a session's default options
//! under each request's and each task's (`gRPC/Services/GrpcTasksService.cs`); cancelling a
//! session aborts its created results and stops its tasks (`gRPC/Services/
//! GrpcSessionsService.cs`); a result's data never changes once completed.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tonic::Status;

use crate::host_files::NewFile;
use crate::local::agent::LocalAgent;
use crate::local::graph::{Event, Graph, MAX_UNREAD_EVENTS, Subscriber, check_not_own_input};
use crate::local::records::{
    ResultRecord, ResultState, SessionStatus, TaskRecord, TaskState, record,
};
use crate::local::result_store::ResultData;
use crate::local::sessions::live_session;
use crate::local::task_options::merge_options;
use crate::proto::v1::TaskOptions;

/// A task as a client submits it.
#[derive(Debug, Clone, Default)]
pub struct TaskCreation {
    /// Result id of its payload.
    pub payload_id: String,
    /// Result ids it reads.
    pub data_dependencies: Vec<String>,
    /// Result ids it must produce (created by the client, without data).
    pub expected_outputs: Vec<String>,
    /// Its own options, over the request's and the session's.
    pub options: Option<TaskOptions>,
}

impl LocalAgent {
    /// Creates a completed result of `session_id` holding `data` (a client's CreateResults).
    ///
    /// # Errors
    /// NOT_FOUND for an unknown session; INTERNAL when the data cannot be stored.
    pub fn create_result(
        &self,
        session_id: &str,
        name: &str,
        data: &[u8],
    ) -> Result<String, Status> {
        live_session(&self.lock(), session_id)?;
        let id = uuid::Uuid::new_v4().to_string();
        self.store
            .write(&id, data)
            .map_err(|e| Status::internal(format!("cannot store the result's data: {e}")))?;
        let mut result = record(session_id, name.to_owned(), ResultState::Completed, "");
        result.size = data.len() as u64;
        self.lock().insert_result(id.clone(), result);
        self.changed.notify_one();
        Ok(id)
    }

    /// Creates a result of `session_id` without data (a client's CreateResultsMetaData).
    ///
    /// # Errors
    /// NOT_FOUND for an unknown session.
    pub fn create_result_metadata(&self, session_id: &str, name: &str) -> Result<String, Status> {
        let mut graph = self.lock();
        live_session(&graph, session_id)?;
        let id = uuid::Uuid::new_v4().to_string();
        let result = record(session_id, name.to_owned(), ResultState::Created, "");
        graph.insert_result(id.clone(), result);
        Ok(id)
    }

    /// Checks that a client may give data to result `id` of `session_id`: it exists, has no
    /// data yet, and no task is to produce it.
    ///
    /// # Errors
    /// NOT_FOUND or FAILED_PRECONDITION saying why not.
    pub fn check_upload(&self, session_id: &str, id: &str) -> Result<(), Status> {
        check_upload(&self.lock(), session_id, id)
    }

    /// Completes result `id` with `file`, `size` bytes written aside in the store.
    ///
    /// # Errors
    /// As [`check_upload`](Self::check_upload), checked again as the file is put in place
    /// (another upload or a cancellation may have come meanwhile), or INTERNAL.
    pub fn complete_upload(
        &self,
        session_id: &str,
        id: &str,
        file: NewFile<'_>,
        size: u64,
    ) -> Result<(), Status> {
        let mut graph = self.lock();
        check_upload(&graph, session_id, id)?;
        file.persist(id)
            .map_err(|e| Status::internal(format!("cannot store the result's data: {e}")))?;
        graph.set_result_state(id, ResultState::Completed, size);
        drop(graph);
        self.changed.notify_one();
        Ok(())
    }

    /// A result of `session_id`.
    ///
    /// # Errors
    /// NOT_FOUND when the session has no such result.
    pub fn session_result(&self, session_id: &str, id: &str) -> Result<ResultRecord, Status> {
        session_result(&self.lock(), session_id, id).cloned()
    }

    /// A result, whatever its session.
    ///
    /// # Errors
    /// NOT_FOUND when there is no such result.
    pub fn any_result(&self, id: &str) -> Result<ResultRecord, Status> {
        let graph = self.lock();
        graph
            .results
            .get(id)
            .filter(|r| live_session(&graph, &r.session_id).is_ok())
            .cloned()
            .ok_or_else(|| Status::not_found(format!("result `{id}` not found")))
    }

    /// Every result, with its id.
    pub fn results(&self) -> Vec<(String, ResultRecord)> {
        let graph = self.lock();
        graph
            .results
            .iter()
            .filter(|(_, r)| {
                graph
                    .sessions
                    .get(&r.session_id)
                    .is_some_and(|s| s.status != SessionStatus::Deleted)
            })
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect()
    }

    /// A task, as clients see it.
    ///
    /// # Errors
    /// NOT_FOUND when there is no such task.
    pub fn task_view(&self, id: &str) -> Result<TaskView, Status> {
        let graph = self.lock();
        graph
            .tasks
            .get(id)
            .filter(|t| live_session(&graph, &t.session_id).is_ok())
            .map(|t| view(&graph, t))
            .ok_or_else(|| Status::not_found(format!("task `{id}` not found")))
    }

    /// Every task of the sessions not deleted, in submission order, as clients see them.
    pub fn task_views(&self) -> Vec<TaskView> {
        let graph = self.lock();
        graph
            .order
            .iter()
            .filter_map(|id| graph.tasks.get(id))
            .filter(|t| live_session(&graph, &t.session_id).is_ok())
            .map(|t| view(&graph, t))
            .collect()
    }

    /// Submits tasks of `session_id` (a client's SubmitTasks): options merged per task, then
    /// `options`, then the session's defaults. All or none are submitted.
    ///
    /// # Errors
    /// NOT_FOUND for an unknown session; FAILED_PRECONDITION when it no longer takes tasks;
    /// INVALID_ARGUMENT for a result that is not the session's, or an expected output that
    /// is not a created result no other task produces.
    pub fn submit_tasks(
        &self,
        session_id: &str,
        options: Option<&TaskOptions>,
        creations: Vec<TaskCreation>,
    ) -> Result<Vec<TaskRecord>, Status> {
        let mut graph = self.lock();
        let session = live_session(&graph, session_id)?;
        if !session.client_submission
            || !matches!(
                session.status,
                SessionStatus::Running | SessionStatus::Paused
            )
        {
            return Err(Status::failed_precondition(format!(
                "session `{session_id}` no longer takes tasks"
            )));
        }
        let defaults = merge_options(options, &session.defaults);
        let mut tasks = Vec::with_capacity(creations.len());
        // Outputs claimed by the tasks of this request so far.
        let mut claimed = std::collections::HashSet::new();
        for creation in creations {
            check_not_own_input(
                &creation.payload_id,
                &creation.data_dependencies,
                &creation.expected_outputs,
            )?;
            for id in std::iter::once(&creation.payload_id).chain(&creation.data_dependencies) {
                session_result(&graph, session_id, id)
                    .map_err(|e| Status::invalid_argument(e.message().to_owned()))?;
            }
            for id in &creation.expected_outputs {
                let result = session_result(&graph, session_id, id)
                    .map_err(|e| Status::invalid_argument(e.message().to_owned()))?;
                let taken = !claimed.insert(id.clone());
                if result.state != ResultState::Created || !result.owner_task_id.is_empty() || taken
                {
                    return Err(Status::invalid_argument(format!(
                        "result `{id}` cannot be an expected output: it is {}{}",
                        result.state,
                        if result.owner_task_id.is_empty() && !taken {
                            String::new()
                        } else {
                            " and another task produces it".to_owned()
                        }
                    )));
                }
            }
            tasks.push(TaskRecord::new(
                session_id.to_owned(),
                String::new(),
                creation.payload_id,
                creation.data_dependencies,
                creation.expected_outputs,
                merge_options(creation.options.as_ref(), &defaults),
            ));
        }
        for task in &tasks {
            for output in &task.expected_outputs {
                graph.set_owner(output, &task.id);
            }
            graph.add_task(task.clone());
        }
        drop(graph);
        self.changed.notify_one();
        Ok(tasks)
    }

    /// Deletes the data of the completed results among `ids` of a session (their status
    /// becomes deleted; the others are left as they are).
    ///
    /// # Errors
    /// NOT_FOUND for an unknown session or result (nothing is deleted then).
    pub fn delete_data(&self, session_id: &str, ids: &[String]) -> Result<(), Status> {
        let mut graph = self.lock();
        for id in ids {
            session_result(&graph, session_id, id)?;
        }
        for id in ids {
            // Only data can be deleted: a result still to be produced is left as it is.
            if graph.results.get(id).map(|r| r.state) != Some(ResultState::Completed) {
                continue;
            }
            if let Err(error) = self.store.remove(id) {
                // The data removed before it must not outlive it in copies either.
                self.folders.forget_copies();
                return Err(Status::internal(format!(
                    "cannot delete the data of result `{id}`: {error}"
                )));
            }
            graph.set_result_state(id, ResultState::Deleted, 0);
        }
        self.folders.forget_copies();
        Ok(())
    }

    /// Cancels tasks: a waiting one at once, a running one once stopped; their outputs are
    /// aborted so that nobody waits for them (ArmoniK leaves them created).
    ///
    /// # Errors
    /// NOT_FOUND for an unknown task id (nothing is cancelled then).
    pub fn cancel_tasks(&self, ids: &[String]) -> Result<Vec<TaskRecord>, Status> {
        let mut graph = self.lock();
        if let Some(unknown) = ids.iter().find(|id| !graph.tasks.contains_key(*id)) {
            return Err(Status::not_found(format!("task `{unknown}` not found")));
        }
        stop_tasks(&mut graph, ids, "cancelled by a client");
        let tasks = ids
            .iter()
            .filter_map(|id| graph.tasks.get(id).cloned())
            .collect();
        drop(graph);
        self.changed.notify_one();
        Ok(tasks)
    }

    /// Follows the events of `session_id`: what already exists (each task and result with its
    /// current status, as ArmoniK.Core's `gRPC/Services/WatchToGrpc.cs` replays them), then
    /// every change, with nothing missed in between. The flag is set if the subscriber fell
    /// 65,536 events (`MAX_UNREAD_EVENTS`) behind and was dropped: the events then stop.
    ///
    /// # Errors
    /// NOT_FOUND for an unknown session.
    pub fn subscribe(
        &self,
        session_id: &str,
    ) -> Result<(tokio::sync::mpsc::Receiver<Event>, Arc<AtomicBool>), Status> {
        let mut graph = self.lock();
        live_session(&graph, session_id)?;
        // Those that left since this session's last event.
        graph.subscribers.retain(|s| !s.sender.is_closed());
        let mut replay = Vec::new();
        for id in &graph.order {
            if let Some(task) = graph.tasks.get(id).filter(|t| t.session_id == session_id) {
                replay.push(Event::NewTask(id.clone(), task.state));
            }
        }
        for (id, result) in &graph.results {
            if result.session_id == session_id {
                replay.push(Event::NewResult(id.clone(), result.state));
            }
        }
        // Room for the replay, then for what may arrive unread.
        let (sender, receiver) = tokio::sync::mpsc::channel(replay.len() + MAX_UNREAD_EVENTS);
        for event in replay {
            let _ = sender.try_send(event);
        }
        let overflowed = Arc::new(AtomicBool::new(false));
        graph.subscribers.push(Subscriber {
            session_id: session_id.to_owned(),
            sender,
            overflowed: overflowed.clone(),
        });
        Ok((receiver, overflowed))
    }

    /// The tokens of attempts asked to stop since the last call, for the scheduler.
    pub(crate) fn take_stops(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().stops)
    }
}

/// A task as clients see it.
#[derive(Debug, Clone)]
pub struct TaskView {
    /// The task.
    pub task: TaskRecord,
    /// Whether it is pending on a dependency not completed yet (ArmoniK's `Creating`), rather
    /// than queued (`Submitted`).
    pub waiting: bool,
    /// Whether it is pending in a paused session (ArmoniK's `Paused`).
    pub paused: bool,
}

fn view(graph: &Graph, task: &TaskRecord) -> TaskView {
    let waiting = task.state == TaskState::Pending && graph.readiness.is_waiting(&task.id);
    let paused = task.state == TaskState::Pending
        && graph
            .sessions
            .get(&task.session_id)
            .is_some_and(|s| s.status == SessionStatus::Paused);
    TaskView {
        paused,
        task: task.clone(),
        waiting,
    }
}

/// Stops `ids`: a waiting task is cancelled at once (its outputs aborted, their consumers
/// cancelled), a running one becomes cancelling and its attempt is asked to stop.
pub(super) fn stop_tasks(graph: &mut Graph, ids: &[String], why: &str) {
    for id in ids {
        let Some(task) = graph.tasks.get(id) else {
            continue;
        };
        match task.state {
            TaskState::Pending => {
                graph.fail(id, TaskState::Cancelled, why.to_owned());
            }
            TaskState::Running => {
                let outputs = task.expected_outputs.clone();
                graph.set_task_state(id, TaskState::Cancelling, Some(why.to_owned()));
                let tokens: Vec<String> = graph
                    .attempts
                    .iter()
                    .filter(|(_, a)| &a.task_id == id)
                    .map(|(token, _)| token.clone())
                    .collect();
                graph.stops.extend(tokens);
                graph.abort(outputs);
            }
            _ => {}
        }
    }
}

fn check_upload(graph: &Graph, session_id: &str, id: &str) -> Result<(), Status> {
    let result = session_result(graph, session_id, id)?;
    if result.state != ResultState::Created {
        return Err(Status::failed_precondition(format!(
            "result `{id}` is {}: only a created result takes data, and a completed result never changes",
            result.state
        )));
    }
    if !result.owner_task_id.is_empty() {
        return Err(Status::failed_precondition(format!(
            "result `{id}` is to be produced by task `{}`",
            result.owner_task_id
        )));
    }
    Ok(())
}

fn session_result<'g>(
    graph: &'g Graph,
    session_id: &str,
    id: &str,
) -> Result<&'g ResultRecord, Status> {
    live_session(graph, session_id)?;
    graph
        .results
        .get(id)
        .filter(|r| r.session_id == session_id)
        .ok_or_else(|| {
            Status::not_found(format!("result `{id}` not found in session `{session_id}`"))
        })
}

/// Reads a result's data for a client: a completed result's file (empty when completed
/// without one, as in ArmoniK).
///
/// # Errors
/// NOT_FOUND unless the result is completed; INTERNAL when its file cannot be read.
pub fn open_result_data(
    agent: &LocalAgent,
    session_id: &str,
    id: &str,
) -> Result<Option<ResultData>, Status> {
    let result = agent.session_result(session_id, id)?;
    if result.state != ResultState::Completed {
        return Err(Status::not_found(format!(
            "result `{id}` has no data: it is {}",
            result.state
        )));
    }
    match agent.store.open(id) {
        Ok(file) => Ok(Some(file)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Status::internal(format!(
            "cannot read result `{id}`: {error}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    /// A subscriber that never reads is dropped once it is `MAX_UNREAD_EVENTS` behind, and
    /// told so; the graph keeps no events for it after that.
    #[tokio::test]
    async fn a_subscriber_that_does_not_read_is_dropped_past_the_bound() {
        let dir = tempfile::tempdir().expect("temp dir");
        let agent = LocalAgent::new(dir.path(), None).expect("agent");
        let session = agent.create_session(TaskOptions::default(), Vec::new());
        let (mut receiver, overflowed) = agent.subscribe(&session).expect("subscribe");
        let emit = |n: usize| {
            let mut graph = agent.lock();
            for i in 0..n {
                graph.emit(&session, || {
                    Event::TaskStatus(format!("t{i}"), TaskState::Completed)
                });
            }
            graph.subscribers.len()
        };
        assert_eq!(emit(MAX_UNREAD_EVENTS), 1, "still within the bound");
        assert!(!overflowed.load(Ordering::Relaxed));
        assert_eq!(emit(1), 0, "one more: dropped");
        assert!(overflowed.load(Ordering::Relaxed));
        // What was sent before is still readable, then the stream ends.
        let mut read = 0;
        while receiver.recv().await.is_some() {
            read += 1;
        }
        assert_eq!(read, MAX_UNREAD_EVENTS);
    }
}
