//! The records of the embedded agent's task graph: sessions, tasks and results, with ArmoniK's
//! states (ArmoniK.Api `Protos/V1/task_status.proto`, `result_status.proto`,
//! `session_status.proto`); the graph that links them is `local::graph`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::proto::v1::TaskOptions;

/// Where a result is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultState {
    /// Created, no data yet.
    Created,
    /// Data available.
    Completed,
    /// Its producer failed, or its session was cancelled: it will never have data.
    Aborted,
    /// Its data was deleted by a client.
    Deleted,
}

/// Where a session is in its life (ArmoniK.Api `session_status.proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Tasks may be submitted and run.
    Running,
    /// Tasks may be submitted, none starts.
    Paused,
    /// Its tasks were stopped and its unfinished results aborted.
    Cancelled,
    /// No more submissions.
    Closed,
    /// Its results' data was removed.
    Purged,
    /// Forgotten, as far as clients can tell.
    Deleted,
}

/// A session of the local graph: the task options its tasks inherit.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// Its id.
    pub id: String,
    /// Where it is in its life.
    pub status: SessionStatus,
    /// Options of its tasks, under each request's and each task's own.
    pub defaults: TaskOptions,
    /// The partitions its tasks may use.
    pub partitions: Vec<String>,
    /// Whether clients may still submit tasks.
    pub client_submission: bool,
    /// Whether tasks may still submit subtasks.
    pub worker_submission: bool,
    /// When it was created, and when it left `Running` for each later status.
    pub created_at: SystemTime,
    /// When it was cancelled.
    pub cancelled_at: Option<SystemTime>,
    /// When it was closed.
    pub closed_at: Option<SystemTime>,
    /// When its data was purged.
    pub purged_at: Option<SystemTime>,
    /// When it was deleted.
    pub deleted_at: Option<SystemTime>,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskState {
    /// Waiting for its dependencies.
    Pending,
    /// Being processed.
    Running,
    /// Returned ok; what it did is committed.
    Completed,
    /// Failed for good: `Output.error`, or an error status past `max_retries`.
    Error,
    /// Ran past its max duration.
    Timeout,
    /// Failed with an error status; a copy runs again.
    Retried,
    /// Asked to stop while running; becomes `Cancelled` once stopped.
    Cancelling,
    /// Cancelled by a client, or a dependency will never be produced.
    Cancelled,
}

impl TaskState {
    /// Whether the task will never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Error | Self::Timeout | Self::Retried | Self::Cancelled
        )
    }
}

/// In the user's words: `created`, `completed`, `aborted`, `deleted`.
impl std::fmt::Display for ResultState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Completed => "completed",
            Self::Aborted => "aborted",
            Self::Deleted => "deleted",
        })
    }
}

/// In the user's words: `pending`, `running`, `completed`, `error`, `timeout`, `retried`,
/// `cancelling`, `cancelled`.
impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Retried => "retried",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        })
    }
}

/// A result of the local graph.
#[derive(Debug, Clone)]
pub struct ResultRecord {
    /// Its session.
    pub session_id: String,
    /// The name its creator gave it.
    pub name: String,
    /// Where it is in its life.
    pub state: ResultState,
    /// When it was created.
    pub created_at: SystemTime,
    /// When its data became available.
    pub completed_at: Option<SystemTime>,
    /// The task that must produce it (empty for a result made with its data).
    pub owner_task_id: String,
    /// The task that created it (empty when a client did).
    pub created_by: String,
    /// Size of its data, in bytes, once completed.
    pub size: u64,
}

/// A task of the local graph.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    /// Its id (`<first id>###<n>` for the n-th retry).
    pub id: String,
    /// Its session.
    pub session_id: String,
    /// The task that submitted it (empty when a client did).
    pub created_by: String,
    /// Result id of its payload.
    pub payload_id: String,
    /// Result ids it reads.
    pub data_dependencies: Vec<String>,
    /// Result ids it must produce.
    pub expected_outputs: Vec<String>,
    /// Its options, merged with the request's and the session's.
    pub options: TaskOptions,
    /// Which retry this is (0 for the first attempt).
    pub retry: i32,
    /// The id of its first attempt.
    pub first_id: String,
    /// Its state.
    pub state: TaskState,
    /// Why it failed or was cancelled.
    pub message: Option<String>,
    /// When it was submitted.
    pub created_at: SystemTime,
    /// When its last attempt started.
    pub started_at: Option<SystemTime>,
    /// When it reached a final state.
    pub ended_at: Option<SystemTime>,
}

impl TaskRecord {
    /// A new task (its first attempt) of `session_id`, submitted by `created_by` (a task id,
    /// or empty for a client), waiting for its dependencies.
    pub(crate) fn new(
        session_id: String,
        created_by: String,
        payload_id: String,
        data_dependencies: Vec<String>,
        expected_outputs: Vec<String>,
        options: TaskOptions,
    ) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        Self {
            first_id: id.clone(),
            id,
            session_id,
            created_by,
            payload_id,
            data_dependencies,
            expected_outputs,
            options,
            retry: 0,
            state: TaskState::Pending,
            message: None,
            created_at: SystemTime::now(),
            started_at: None,
            ended_at: None,
        }
    }
}

/// How many of `states` are in each state.
pub fn count_states(states: impl Iterator<Item = TaskState>) -> BTreeMap<TaskState, usize> {
    let mut counts = BTreeMap::new();
    for state in states {
        *counts.entry(state).or_insert(0) += 1;
    }
    counts
}

/// A new result of `session_id`, created by `created_by` (a task id, or empty for a client).
pub(crate) fn record(
    session_id: &str,
    name: String,
    state: ResultState,
    created_by: &str,
) -> ResultRecord {
    let now = SystemTime::now();
    ResultRecord {
        session_id: session_id.to_owned(),
        name,
        state,
        created_at: now,
        completed_at: (state == ResultState::Completed).then_some(now),
        owner_task_id: String::new(),
        created_by: created_by.to_owned(),
        size: 0,
    }
}
