//! The task graph of the embedded agent: tasks and results with ArmoniK's life cycles, and
//! what a failed task does to the rest of the graph (ArmoniK.Core
//! `Common/src/Storage/TaskLifeCycleHelper.cs`, `ResultLifeCycleHelper.cs`): a failure aborts
//! the task's outputs and cancels every task depending on them, transitively; an error status
//! is retried up to `max_retries` times under the id `<first id>###<n>`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;
use tonic::Status;

use super::readiness::Readiness;
use super::records::{ResultRecord, ResultState, SessionRecord, TaskRecord, TaskState};
use crate::host_files::Folder;

/// A change in the graph, as ArmoniK's event stream reports it (ArmoniK.Core
/// `Common/src/gRPC/Services/WatchToGrpc.cs`); the details are read from the graph.
#[derive(Debug, Clone)]
pub enum Event {
    /// A task was added, in this state.
    NewTask(String, TaskState),
    /// A task changed state.
    TaskStatus(String, TaskState),
    /// A result was added.
    NewResult(String, ResultState),
    /// A result changed state.
    ResultStatus(String, ResultState),
    /// A result's producer changed: id, previous owner, new owner.
    ResultOwner(String, String, String),
}

/// Someone following the events of one session.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) session_id: String,
    pub(crate) sender: Sender<Event>,
    /// Set when it fell [`MAX_UNREAD_EVENTS`] behind and was dropped.
    pub(crate) overflowed: Arc<AtomicBool>,
}

/// Events a subscriber may leave unread before it is dropped (its stream then ends with
/// RESOURCE_EXHAUSTED, and ArmoniK's clients subscribe again, getting the state replayed):
/// a client that never reads cannot make the server's memory grow without bound.
pub(crate) const MAX_UNREAD_EVENTS: usize = 65_536;

/// What one running task did, not yet visible to anyone else.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) task_id: String,
    /// Its data folder (see `task_folders`).
    pub(crate) folder: Folder,
    /// The task folders' generation of copies when the folder was taken
    /// (`TaskFolders::copies`).
    pub(crate) copies: u64,
    /// The results it created, in order (see [`stage`](Self::stage)).
    pub(crate) results: Vec<(String, ResultRecord)>,
    /// The same, by id: a task creating and using thousands of results checks each in O(1).
    created: HashMap<String, ResultState>,
    /// The results it notified, in order, each once.
    pub(crate) notified: Vec<String>,
    notified_ids: HashSet<String>,
    pub(crate) tasks: Vec<TaskRecord>,
}

impl Attempt {
    /// A new attempt of `task_id`, with its data folder, taken in generation `copies`.
    pub(crate) fn new(task_id: String, folder: Folder, copies: u64) -> Self {
        Self {
            task_id,
            folder,
            copies,
            results: Vec::new(),
            created: HashMap::new(),
            notified: Vec::new(),
            notified_ids: HashSet::new(),
            tasks: Vec::new(),
        }
    }

    /// Records a result the attempt created.
    pub(crate) fn stage(&mut self, id: String, result: ResultRecord) {
        self.created.insert(id.clone(), result.state);
        self.results.push((id, result));
    }

    /// Records a notification (notifying twice is harmless, as in ArmoniK).
    pub(crate) fn notify(&mut self, id: &str) {
        if self.notified_ids.insert(id.to_owned()) {
            self.notified.push(id.to_owned());
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Graph {
    pub(crate) sessions: HashMap<String, SessionRecord>,
    pub(crate) results: HashMap<String, ResultRecord>,
    pub(crate) tasks: HashMap<String, TaskRecord>,
    /// Task ids in submission order, for reports.
    pub(crate) order: Vec<String>,
    /// Which pending tasks may start.
    pub(crate) readiness: Readiness,
    /// Tasks per state, kept as they change (progress reads it after every task).
    pub(crate) counts: BTreeMap<TaskState, usize>,
    pub(crate) attempts: HashMap<String, Attempt>,
    pub(crate) subscribers: Vec<Subscriber>,
    /// Tokens of the attempts a client asked to stop, for the scheduler.
    pub(crate) stops: Vec<String>,
}

impl Graph {
    /// Sends `event` of `session_id` to its subscribers, forgetting those that left.
    pub(crate) fn emit(&mut self, session_id: &str, event: impl FnOnce() -> Event) {
        if !self.subscribers.iter().any(|s| s.session_id == session_id) {
            return;
        }
        let event = event();
        self.subscribers.retain(|s| {
            if s.session_id != session_id {
                return true;
            }
            match s.sender.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    s.overflowed.store(true, Ordering::Relaxed);
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Adds a task waiting for its dependencies.
    pub(crate) fn add_task(&mut self, task: TaskRecord) {
        self.order.push(task.id.clone());
        let results = &self.results;
        let missing = task.data_dependencies.iter().filter(|d| {
            results
                .get(*d)
                .is_none_or(|r| r.state != ResultState::Completed)
        });
        self.readiness.add(&task.id, missing);
        *self.counts.entry(task.state).or_default() += 1;
        let (id, session, state) = (task.id.clone(), task.session_id.clone(), task.state);
        self.tasks.insert(task.id.clone(), task);
        self.emit(&session, || Event::NewTask(id, state));
    }

    /// Moves a task to `state` (with the reason, for failures), and says so to subscribers.
    pub(crate) fn set_task_state(
        &mut self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
    ) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if let Some(count) = self.counts.get_mut(&task.state) {
            *count = count.saturating_sub(1);
        }
        *self.counts.entry(state).or_default() += 1;
        if task.state == TaskState::Pending {
            self.readiness.forget(task_id);
        }
        task.state = state;
        if message.is_some() {
            task.message = message;
        }
        let now = SystemTime::now();
        match state {
            TaskState::Running => task.started_at = Some(now),
            _ if state.is_final() => task.ended_at = Some(now),
            _ => {}
        }
        let session = task.session_id.clone();
        self.emit(&session, || Event::TaskStatus(task_id.to_owned(), state));
    }

    /// Adds a result, and says so to subscribers.
    pub(crate) fn insert_result(&mut self, id: String, result: ResultRecord) {
        let (session, state) = (result.session_id.clone(), result.state);
        self.results.insert(id.clone(), result);
        self.emit(&session, || Event::NewResult(id, state));
    }

    /// Moves a result to `state` (`size` bytes of data when completed), and says so.
    pub(crate) fn set_result_state(&mut self, id: &str, state: ResultState, size: u64) {
        let Some(result) = self.results.get_mut(id) else {
            return;
        };
        result.state = state;
        if state == ResultState::Completed {
            result.completed_at = Some(SystemTime::now());
            result.size = size;
            self.readiness.completed(id);
        }
        let session = result.session_id.clone();
        self.emit(&session, || Event::ResultStatus(id.to_owned(), state));
    }

    /// Makes `task_id` the producer of result `id` (a delegation), and says so.
    pub(crate) fn set_owner(&mut self, id: &str, task_id: &str) {
        let Some(result) = self.results.get_mut(id) else {
            return;
        };
        let previous = std::mem::replace(&mut result.owner_task_id, task_id.to_owned());
        let session = result.session_id.clone();
        self.emit(&session, || {
            Event::ResultOwner(id.to_owned(), previous, task_id.to_owned())
        });
    }

    /// Forgets every task of session `id` (it was deleted).
    pub(crate) fn forget_tasks(&mut self, id: &str) {
        let Self {
            tasks,
            counts,
            order,
            readiness,
            ..
        } = self;
        tasks.retain(|task_id, task| {
            if task.session_id != id {
                return true;
            }
            if let Some(count) = counts.get_mut(&task.state) {
                *count = count.saturating_sub(1);
            }
            readiness.forget(task_id);
            false
        });
        order.retain(|task_id| tasks.contains_key(task_id));
    }

    /// Fails a task for good: its outputs are aborted and whatever depends on them cancelled.
    pub(crate) fn fail(&mut self, task_id: &str, state: TaskState, message: String) -> TaskState {
        let outputs = self
            .tasks
            .get(task_id)
            .map(|t| t.expected_outputs.clone())
            .unwrap_or_default();
        self.set_task_state(task_id, state, Some(message));
        self.abort(outputs);
        state
    }

    /// Retries a task that failed with an error status, or fails it past `max_retries`.
    pub(crate) fn retry_or_fail(&mut self, task_id: &str, message: String) -> TaskState {
        let Some(task) = self.tasks.get(task_id) else {
            return TaskState::Error;
        };
        if task.retry >= task.options.max_retries {
            return self.fail(task_id, TaskState::Error, message);
        }
        let retry = task.retry + 1;
        let copy = TaskRecord {
            id: format!("{}###{retry}", task.first_id),
            retry,
            state: TaskState::Pending,
            message: None,
            created_at: SystemTime::now(),
            started_at: None,
            ended_at: None,
            ..task.clone()
        };
        self.set_task_state(task_id, TaskState::Retried, Some(message));
        for output in &copy.expected_outputs {
            self.set_owner(output, &copy.id);
        }
        self.add_task(copy);
        TaskState::Retried
    }

    /// Aborts results that will never be produced, and cancels their consumers, transitively.
    pub(crate) fn abort(&mut self, mut results: Vec<String>) {
        while let Some(id) = results.pop() {
            match self.results.get(&id) {
                Some(result) if result.state == ResultState::Created => {
                    self.set_result_state(&id, ResultState::Aborted, 0);
                }
                _ => continue,
            }
            let consumers = self.readiness.consumers(&id).to_vec();
            for consumer in consumers {
                if self.tasks.get(&consumer).map(|t| t.state) != Some(TaskState::Pending) {
                    continue;
                }
                if let Some(task) = self.tasks.get(&consumer) {
                    results.extend(task.expected_outputs.iter().cloned());
                }
                self.set_task_state(
                    &consumer,
                    TaskState::Cancelled,
                    Some(format!("its dependency {id} was aborted")),
                );
            }
        }
    }
}

/// Fails with INVALID_ARGUMENT when a task would expect as output a result it reads (its
/// payload or a data dependency): it would wait for itself forever.
pub(crate) fn check_not_own_input(
    payload_id: &str,
    data_dependencies: &[String],
    expected_outputs: &[String],
) -> Result<(), Status> {
    for id in expected_outputs {
        if id == payload_id || data_dependencies.contains(id) {
            return Err(Status::invalid_argument(format!(
                "result `{id}` is both an expected output of the task and its payload or one of its data dependencies: the task would wait for itself"
            )));
        }
    }
    Ok(())
}

/// The attempt making an agent call, with what its ids are checked against.
pub(crate) struct Caller<'g> {
    pub(crate) attempt: &'g mut Attempt,
    /// The results committed so far.
    pub(crate) committed: &'g HashMap<String, ResultRecord>,
    /// The task's expected outputs.
    pub(crate) expected: &'g [String],
    /// The task's session.
    pub(crate) session: &'g SessionRecord,
}

impl Caller<'_> {
    /// Fails with INVALID_ARGUMENT if an id is neither a committed result nor one the task
    /// made.
    pub(crate) fn check_known<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), Status> {
        for id in ids {
            let committed = self
                .committed
                .get(id)
                .is_some_and(|r| r.session_id == self.session.id);
            if !committed && !self.attempt.created.contains_key(id) {
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
                || self.attempt.created.get(id) == Some(&ResultState::Created);
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
