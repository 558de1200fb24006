//! From a `ProcessRequest` to a `ProcessReply` or a gRPC status: picks the component, runs
//! the task in the sandbox, and applies the outcome table (see the README).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tonic::{Code, Status};
use tracing::Instrument;

use crate::agent::Agent;
use crate::agent::bridge::{AgentBridge, Ledger, Library, TaskIdentity};
use crate::agent::convert;
use crate::bindings::WorkerPre;
use crate::bindings::types::TaskContext;
use crate::host_files::Folder;
use crate::proto::v1::agent::DataRequest;
use crate::proto::v1::worker::{ProcessReply, ProcessRequest};
use crate::proto::v1::{Empty, Output, output};
use crate::sandbox::components::{self, Components};
use crate::sandbox::guest_log::TaskIds;
use crate::sandbox::{
    Finished, GUEST_DATA_FOLDER, RunError, RunStats, Sandbox, TaskRun, TaskState,
};
use crate::telemetry::metrics;
use crate::worker::isolation::ProcessIsolation;
use crate::worker::summary::{Outcome, TaskSummary};

/// The agent's preferred message size when the request does not say (ArmoniK's default
/// `Submitter__PreferredMessageSize`).
const DEFAULT_CHUNK_SIZE: usize = 2 * 1024 * 1024;

/// The longest time budget the host honours. ArmoniK's "infinite" default is 10,000 years,
/// which no clock can add to `now`; a year is as good as forever for a task.
pub(crate) const MAX_TASK_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Settings of the task runner.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Tasks allowed to run at once. ArmoniK sends one at a time, but after a timeout or a
    /// cancellation the next one may arrive while the previous guest is still being stopped.
    pub max_concurrent_tasks: usize,
    /// Time budget of a task whose options set none.
    pub default_max_duration: Duration,
}

/// A thread of its own for guests, apart from the caller's. A worker needs it: a guest
/// blocked in a long file write or `sync` must never delay HealthCheck, which ArmoniK's agent
/// gives 5 s before it declares the worker dead and stops (`run` has no such control path,
/// and saves the hop).
///
/// It is a current-thread runtime driven by its own thread. Handing a task over costs one
/// wake-up each way, provided the agent's channel lives on this thread too (create it inside
/// [`enter`](Self::enter)): otherwise each agent call crosses threads twice more. Guests share
/// the thread as they would share the caller's, yielding at each epoch tick; ArmoniK sends one
/// task at a time.
pub struct GuestThread {
    handle: tokio::runtime::Handle,
    /// Dropped with the runner: the thread's runtime then stops, dropping any guest still
    /// running, outside the caller's async context.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl GuestThread {
    /// Starts the thread.
    ///
    /// # Errors
    /// The runtime or the thread cannot be made.
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("guest".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    /// Makes this thread's runtime the current one until the guard drops: what is created
    /// meanwhile (a gRPC channel's tasks) runs on the guest thread.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.handle.enter()
    }
}

/// Runs tasks: the host's logic between the Worker service and the sandbox.
pub struct TaskRunner {
    sandbox: Arc<Sandbox>,
    components: Components,
    agent: Arc<dyn Agent>,
    slots: Arc<Semaphore>,
    guest_thread: Option<GuestThread>,
    config: RunnerConfig,
    /// Set when each task runs in a process of its own.
    isolation: Option<ProcessIsolation>,
}

impl TaskRunner {
    /// A runner over a sandbox, its components and the agent that tasks call. Guests run on
    /// `guest_thread` if given, else on the caller's.
    pub fn new(
        sandbox: Arc<Sandbox>,
        components: Components,
        agent: Arc<dyn Agent>,
        config: RunnerConfig,
        guest_thread: Option<GuestThread>,
    ) -> Self {
        Self {
            sandbox,
            components,
            agent,
            slots: Arc::new(Semaphore::new(config.max_concurrent_tasks)),
            guest_thread,
            config,
            isolation: None,
        }
    }

    /// Runs each task in a fresh child process (`serve --isolation process`) instead of in
    /// this one.
    #[must_use]
    pub fn with_isolation(mut self, isolation: ProcessIsolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// Resolves once no task is running.
    pub async fn idle(&self) {
        while self.slots.available_permits() < self.config.max_concurrent_tasks {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Runs one task, as `Worker.Process` does. `Ok` carries the task's `Output`; `Err` is a
    /// status ArmoniK retries (a trap, the agent out of reach) or records as a timeout
    /// (DEADLINE_EXCEEDED).
    pub async fn process(
        self: &Arc<Self>,
        request: ProcessRequest,
    ) -> Result<ProcessReply, Status> {
        self.process_with(request, None).await
    }

    /// [`process`](Self::process) in `data_folder`, the folder `request.data_folder` names
    /// already open (the embedded agent's, with its spare files), instead of opening it.
    pub async fn process_in(
        self: &Arc<Self>,
        request: ProcessRequest,
        data_folder: Folder,
    ) -> Result<ProcessReply, Status> {
        self.process_with(request, Some(data_folder)).await
    }

    async fn process_with(
        self: &Arc<Self>,
        request: ProcessRequest,
        data_folder: Option<Folder>,
    ) -> Result<ProcessReply, Status> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            Status::unavailable(format!(
                "this worker already runs {} tasks, its limit",
                self.config.max_concurrent_tasks
            ))
        })?;
        // At error level so that it is on whenever any record is: its ids must reach the
        // warnings of a worker filtered at `warn`.
        let span = tracing::error_span!(
            "task",
            session_id = %request.session_id,
            task_id = %request.task_id,
        );
        let runner = self.clone();
        let task = async move {
            // Held until the guest has stopped, not only until the caller gave up on it.
            let _slot = slot;
            let _running = metrics::RunningTask::start();
            let started = std::time::Instant::now();
            let mut cost = Cost::default();
            let outcome = runner.run(request, data_folder, &mut cost).await;
            summary(&outcome, started.elapsed(), cost).report();
            outcome
        }
        .instrument(span);
        match &self.guest_thread {
            None => task.await,
            // Dropping the handle (ArmoniK cancelled the call) aborts the guest at its next
            // epoch tick.
            Some(thread) => AbortOnDropHandle::new(thread.handle.spawn(task))
                .await
                .unwrap_or_else(|error| {
                    Err(Status::internal(format!(
                        "the task's host side failed: {error}"
                    )))
                }),
        }
    }

    /// Runs the task; `cost` collects what it cost as far as it got.
    async fn run(
        &self,
        mut request: ProcessRequest,
        data_folder: Option<Folder>,
        cost: &mut Cost,
    ) -> Result<ProcessReply, Status> {
        let options = request.task_options.take().unwrap_or_default();
        // Held open for the whole task: the host reads and clears names in it only through
        // this handle (see `host_files`).
        let data_folder = match data_folder.map_or_else(
            || Folder::open_shared(std::path::Path::new(&request.data_folder)),
            Ok,
        ) {
            Ok(folder) => Arc::new(folder),
            Err(error) => {
                return Ok(failed(format!(
                    "cannot open the data folder {}: {error}",
                    request.data_folder
                )));
            }
        };
        cost.input_bytes = std::iter::once(&request.payload_id)
            .chain(&request.data_dependencies)
            .filter_map(|id| data_folder.file_size(id))
            .sum();
        let max_duration = options
            .max_duration
            .as_ref()
            .map(convert::duration_from_proto)
            .filter(|d| !d.is_zero())
            .unwrap_or(self.config.default_max_duration)
            .min(MAX_TASK_DURATION);
        let deadline = Instant::now() + max_duration;
        // Loading (fetching and compiling a task's library) is part of the task's time.
        let loading = async {
            if let Some(reply) = self
                .fetch_library(&request, &options.options, &data_folder)
                .await?
            {
                return Ok(Err(reply));
            }
            Ok(self
                .components
                .for_task(&options, &data_folder)
                .await
                .map_err(|error| failed(error.to_string())))
        };
        let component = match tokio::time::timeout_at(deadline, loading).await {
            Ok(Ok(Ok(component))) => component,
            Ok(Ok(Err(reply))) => return Ok(reply),
            Ok(Err(status)) => return Err(status),
            Err(_elapsed) => {
                return Err(Status::deadline_exceeded(format!(
                    "the task's max duration of {max_duration:?} elapsed while its component was being loaded"
                )));
            }
        };
        let chunk_size = chunk_size(&request);
        let expected_outputs = request.expected_output_keys.clone();
        request.task_options = Some(options);
        let assignment = Assignment {
            request,
            max_duration,
            chunk_size,
        };
        let Finished {
            outcome,
            ledger,
            stats,
        } = match &self.isolation {
            None => {
                execute(
                    &self.sandbox,
                    &component.pre,
                    self.agent.clone(),
                    assignment,
                    data_folder.clone(),
                    deadline,
                )
                .await
            }
            Some(isolation) => isolation.run(&component, assignment, deadline).await,
        };
        cost.sandbox = Some(stats);
        cost.agent_calls = u32::try_from(ledger.agent_calls.len()).unwrap_or(u32::MAX);
        for (operation, code, elapsed) in &ledger.agent_calls {
            metrics::agent_call(operation, *code, *elapsed);
        }

        if let Some(message) = &ledger.agent_unavailable {
            // ArmoniK could not record part of what the task did: only a retry is safe.
            return Err(Status::unavailable(format!(
                "the agent could not be reached during the task: {message}"
            )));
        }
        match outcome {
            Err(error @ RunError::Deadline(_)) => Err(Status::deadline_exceeded(error.to_string())),
            Err(error @ RunError::Trap(_)) => Err(Status::internal(error.to_string())),
            Err(error @ RunError::Setup(_)) => Ok(failed(error.to_string())),
            Ok(Err(details)) => Ok(failed(details)),
            Ok(Ok(())) => Ok(
                match check_outputs(&expected_outputs, &ledger, &data_folder) {
                    Ok(output_bytes) => {
                        cost.output_bytes = output_bytes;
                        ProcessReply {
                            output: Some(Output {
                                r#type: Some(output::Type::Ok(Empty {})),
                            }),
                        }
                    }
                    Err(details) => failed(details),
                },
            ),
        }
    }
}

impl TaskRunner {
    /// Brings the task's library blob into its folder when its options name one that is not
    /// among its data dependencies (subtasks inherit the options, rarely the dependency), and
    /// not already compiled. ArmoniK's agent serves GetResourceData for any result of the
    /// session (ArmoniK.Core `Common/src/Pollster/Agent.cs`). Returns the reply that ends the
    /// task when the blob names nothing usable; an agent error is a status (retried).
    async fn fetch_library(
        &self,
        request: &ProcessRequest,
        options: &std::collections::HashMap<String, String>,
        data_folder: &Folder,
    ) -> Result<Option<ProcessReply>, Status> {
        let blob = match components::library_blob(options) {
            Ok(Some(blob)) => blob,
            Ok(None) => return Ok(None),
            Err(error) => return Ok(Some(failed(error.to_string()))),
        };
        if request.data_dependencies.iter().any(|d| d == blob) || self.components.has_blob(blob) {
            return Ok(None);
        }
        // Whatever is at the name goes first: the agent writes through links.
        if let Err(error) = data_folder.clear(blob) {
            return Ok(Some(failed(format!(
                "{}={blob} is not a result id this host can fetch: {error}",
                components::LIBRARY_BLOB_ID
            ))));
        }
        let called = std::time::Instant::now();
        let fetched = self
            .agent
            .get_resource_data(DataRequest {
                communication_token: request.communication_token.clone(),
                result_id: blob.to_owned(),
            })
            .await;
        let code = fetched.as_ref().map_or_else(Status::code, |_| Code::Ok);
        metrics::agent_call("GetResourceData", code, called.elapsed());
        match fetched {
            Ok(_) => Ok(None),
            Err(status) if matches!(status.code(), Code::NotFound | Code::InvalidArgument) => {
                Ok(Some(failed(format!(
                    "{}={blob} names no result with data in the task's session: {}",
                    components::LIBRARY_BLOB_ID,
                    status.message()
                ))))
            }
            Err(status) => Err(Status::unavailable(format!(
                "cannot fetch the task's library {blob}: {}",
                status.message()
            ))),
        }
    }
}

/// A task as the sandbox gets it: its request (task options included) and the settings the
/// worker derived from it. The same in the worker and in a task process
/// ([`isolation`](crate::worker::isolation)).
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The request, as ArmoniK's agent sent it.
    pub request: ProcessRequest,
    /// The task's time budget.
    pub max_duration: Duration,
    /// Bytes per data chunk of agent calls.
    pub chunk_size: usize,
}

/// The bytes per chunk of a task's agent calls: the request's, else ArmoniK's default.
pub fn chunk_size(request: &ProcessRequest) -> usize {
    request
        .configuration
        .as_ref()
        .and_then(|c| usize::try_from(c.data_chunk_max_size).ok())
        .filter(|&size| size > 0)
        .unwrap_or(DEFAULT_CHUNK_SIZE)
}

/// Runs an assigned task in `sandbox`, in a fresh store and instance of `pre`, its agent
/// calls going to `agent` with the task's token, until `deadline`.
pub async fn execute(
    sandbox: &Arc<Sandbox>,
    pre: &WorkerPre<TaskState>,
    agent: Arc<dyn Agent>,
    assignment: Assignment,
    data_folder: Arc<Folder>,
    deadline: Instant,
) -> Finished {
    let Assignment {
        request,
        max_duration,
        chunk_size,
    } = assignment;
    let options = request.task_options.unwrap_or_default();
    let ids = Arc::new(TaskIds {
        session_id: request.session_id.clone(),
        task_id: request.task_id.clone(),
    });
    let context = TaskContext {
        session_id: request.session_id.clone(),
        task_id: request.task_id,
        options: convert::task_options_to_wit(&options),
        payload_id: request.payload_id,
        data_dependencies: request.data_dependencies,
        expected_output_ids: request.expected_output_keys.clone(),
        data_folder: GUEST_DATA_FOLDER.to_owned(),
        data_chunk_max_size: i32::try_from(chunk_size).unwrap_or(i32::MAX),
    };
    let bridge = AgentBridge::new(
        agent,
        TaskIdentity {
            token: request.communication_token,
            session_id: request.session_id,
            expected_outputs: request.expected_output_keys,
            library: Library::of(&options),
        },
        chunk_size,
        deadline,
        data_folder.clone(),
    );
    let run = TaskRun {
        context,
        data_folder,
        bridge,
        ids,
        max_duration,
        deadline,
    };
    sandbox.run(pre, run).await
}

/// What a task cost, as far as it got: the figures of its summary record.
#[derive(Debug, Default)]
struct Cost {
    sandbox: Option<RunStats>,
    agent_calls: u32,
    input_bytes: u64,
    output_bytes: u64,
}

/// The summary record of a task that ended with `outcome` after `wall`.
fn summary(outcome: &Result<ProcessReply, Status>, wall: Duration, cost: Cost) -> TaskSummary {
    let (outcome, details) = match outcome {
        Ok(ProcessReply {
            output:
                Some(Output {
                    r#type: Some(output::Type::Error(error)),
                }),
        }) => (Outcome::Error, Some(error.details.clone())),
        Ok(_) => (Outcome::Completed, None),
        Err(status) => (
            Outcome::of_status(status.code()),
            Some(status.message().to_owned()),
        ),
    };
    TaskSummary {
        outcome,
        wall,
        sandbox: cost.sandbox,
        agent_calls: cost.agent_calls,
        input_bytes: cost.input_bytes,
        output_bytes: cost.output_bytes,
        details,
    }
}

/// An `Output.error` reply.
fn failed(details: String) -> ProcessReply {
    ProcessReply {
        output: Some(Output {
            r#type: Some(output::Type::Error(output::Error { details })),
        }),
    }
}

/// Checks what ArmoniK's agent only logs: every expected output is produced (notified or
/// created) or delegated to a subtask, and every notified result is a regular file in the
/// data folder (the agent would store a missing one as empty, and would follow a symlink out
/// of the folder). Returns the bytes of the notified results.
fn check_outputs(
    expected: &[String],
    ledger: &Ledger,
    data_folder: &Folder,
) -> Result<u64, String> {
    let missing: Vec<&str> = expected
        .iter()
        .filter(|id| {
            !ledger.notified.contains(*id)
                && !ledger.created.contains(*id)
                && !ledger.delegated.contains(*id)
        })
        .map(String::as_str)
        .collect();
    let mut output_bytes = 0;
    let mut notified: Vec<&str> = Vec::new();
    for id in &ledger.notified {
        match data_folder.file_size(id) {
            Some(size) => output_bytes += size,
            None => notified.push(id),
        }
    }
    notified.sort_unstable();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "the task returned ok without producing its expected outputs {}: write each to the data folder and notify it, create it, or submit a task that produces it",
            missing.join(", ")
        ));
    }
    if !notified.is_empty() {
        problems.push(format!(
            "the task notified results that are not files in its data folder: {}",
            notified.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(output_bytes)
    } else {
        Err(problems.join("; "))
    }
}
