//! The task graph of the embedded agent: tasks and results with ArmoniK's life cycles, and
//! what a failed task does to the rest of the graph (ArmoniK.Core
//! `Common/src/Storage/TaskLifeCycleHelper.cs`, `ResultLifeCycleHelper.cs`): a failure aborts
//! the task's outputs and cancels every task depending on them, transitively; an error status
//! is retried up to `max_retries` times under the id `<first id>###<n>`.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use tonic::Status;

use crate::host_files::Folder;
use crate::proto::v1::TaskOptions;

/// Where a result is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultState {
    /// Created, no data yet.
    Created,
    /// Data available.
    Completed,
    /// Its producer failed: it will never have data.
    Aborted,
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
    /// A dependency will never be produced.
    Cancelled,
}

/// In the user's words: `created`, `completed`, `aborted`.
impl std::fmt::Display for ResultState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Completed => "completed",
            Self::Aborted => "aborted",
        })
    }
}

/// In the user's words: `pending`, `running`, `completed`, `error`, `timeout`, `retried`,
/// `cancelled`.
impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Retried => "retried",
            Self::Cancelled => "cancelled",
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ResultRecord {
    pub(crate) name: String,
    pub(crate) state: ResultState,
    pub(crate) created_at: SystemTime,
}

/// A task of the local graph.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    /// Its id (`<first id>###<n>` for the n-th retry).
    pub id: String,
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
}

/// What one running task did, not yet visible to anyone else.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) task_id: String,
    /// Named by the attempt's token, in the agent's work folder.
    pub(crate) folder: Folder,
    pub(crate) results: Vec<(String, ResultRecord)>,
    pub(crate) notified: Vec<String>,
    pub(crate) tasks: Vec<TaskRecord>,
}

#[derive(Debug, Default)]
pub(crate) struct Graph {
    pub(crate) results: HashMap<String, ResultRecord>,
    pub(crate) tasks: HashMap<String, TaskRecord>,
    /// Task ids in submission order, for reports.
    pub(crate) order: Vec<String>,
    /// Ids of the tasks not started yet, in submission order, so tasks run first-come
    /// first-served; a task cancelled while waiting is dropped at the next scan.
    pub(crate) pending: Vec<String>,
    pub(crate) attempts: HashMap<String, Attempt>,
}

impl TaskRecord {
    /// A new task (its first attempt), waiting for its dependencies.
    pub(crate) fn new(
        payload_id: String,
        data_dependencies: Vec<String>,
        expected_outputs: Vec<String>,
        options: TaskOptions,
    ) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        Self {
            first_id: id.clone(),
            id,
            payload_id,
            data_dependencies,
            expected_outputs,
            options,
            retry: 0,
            state: TaskState::Pending,
            message: None,
        }
    }
}

impl Graph {
    /// Adds a task waiting for its dependencies.
    pub(crate) fn add_task(&mut self, task: TaskRecord) {
        self.order.push(task.id.clone());
        self.pending.push(task.id.clone());
        self.tasks.insert(task.id.clone(), task);
    }
    /// Fails a task for good: its outputs are aborted and whatever depends on them cancelled.
    pub(crate) fn fail(&mut self, task_id: &str, state: TaskState, message: String) -> TaskState {
        let outputs = match self.tasks.get_mut(task_id) {
            Some(task) => {
                task.state = state;
                task.message = Some(message);
                task.expected_outputs.clone()
            }
            None => Vec::new(),
        };
        self.abort(outputs);
        state
    }

    /// Retries a task that failed with an error status, or fails it past `max_retries`.
    pub(crate) fn retry_or_fail(&mut self, task_id: &str, message: String) -> TaskState {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return TaskState::Error;
        };
        if task.retry >= task.options.max_retries {
            return self.fail(task_id, TaskState::Error, message);
        }
        task.state = TaskState::Retried;
        task.message = Some(message);
        let retry = task.retry + 1;
        let copy = TaskRecord {
            id: format!("{}###{retry}", task.first_id),
            retry,
            state: TaskState::Pending,
            message: None,
            ..task.clone()
        };
        self.add_task(copy);
        TaskState::Retried
    }

    /// Aborts results that will never be produced, and cancels their consumers, transitively.
    fn abort(&mut self, mut results: Vec<String>) {
        while let Some(id) = results.pop() {
            match self.results.get_mut(&id) {
                Some(result) if result.state == ResultState::Created => {
                    result.state = ResultState::Aborted;
                }
                _ => continue,
            }
            for task in self.tasks.values_mut() {
                if task.state == TaskState::Pending && task.data_dependencies.contains(&id) {
                    task.state = TaskState::Cancelled;
                    task.message = Some(format!("its dependency {id} was aborted"));
                    results.extend(task.expected_outputs.iter().cloned());
                }
            }
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

pub(crate) fn record(name: String, state: ResultState) -> ResultRecord {
    ResultRecord {
        name,
        state,
        created_at: SystemTime::now(),
    }
}

/// The attempt making an agent call, with what its ids are checked against.
pub(crate) struct Caller<'g> {
    pub(crate) attempt: &'g mut Attempt,
    /// The results committed so far.
    pub(crate) committed: &'g HashMap<String, ResultRecord>,
    /// The task's expected outputs.
    pub(crate) expected: &'g [String],
}

impl Caller<'_> {
    /// Fails with INVALID_ARGUMENT if an id is neither a committed result nor one the task
    /// made.
    pub(crate) fn check_known<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), Status> {
        for id in ids {
            if !self.committed.contains_key(id)
                && !self.attempt.results.iter().any(|(own, _)| own == id)
            {
                return Err(Status::invalid_argument(format!(
                    "unknown result id `{id}`"
                )));
            }
        }
        Ok(())
    }

    /// Fails with INVALID_ARGUMENT unless the task may produce each result (notify it, or
    /// delegate it to a subtask): one of its expected outputs, or a result it created without
    /// data, and not completed. ArmoniK checks none of this; without it a task could
    /// overwrite its inputs or forge another task's output.
    pub(crate) fn check_owned<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a String>,
        action: &str,
    ) -> Result<(), Status> {
        for id in ids {
            let own = self.expected.contains(id)
                || self
                    .attempt
                    .results
                    .iter()
                    .any(|(own, r)| own == id && r.state == ResultState::Created);
            let completed = self
                .committed
                .get(id)
                .is_some_and(|r| r.state == ResultState::Completed);
            if !own || completed {
                return Err(Status::invalid_argument(format!(
                    "cannot {action} result `{id}`: a task may produce only its expected outputs and the results it created with create-results-metadata, and a completed result never changes"
                )));
            }
        }
        Ok(())
    }
}
