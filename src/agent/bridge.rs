//! The WIT `agent` interface, implemented by forwarding each call to an [`Agent`] with the
//! task's communication token and session id, and keeping the ledger of what the task
//! produced (for the output check of the task runner).
//!
//! The bridge also holds the host's side of the boundary for agent calls, before anything
//! reaches the agent (ArmoniK's agent checks none of this, see the worker contract §6):
//! - a task produces only results it owns: its expected outputs and the results it created
//!   with `create-results-metadata`, each once, by notifying it or by delegating it to one
//!   submitted task. Anything else is `invalid-argument`, so a task can neither overwrite
//!   its inputs nor forge another task's output;
//! - a data call (`get-resource-data`...) names a plain file of the data folder, and whatever
//!   the guest left at that name (a link, a directory, a file) is removed first: ArmoniK's
//!   agent writes `<folder>/<id>` following links and without truncating.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;
use tonic::{Code, Status};

use crate::agent::Agent;
use crate::agent::convert;
use crate::agent::unbound::Unbound;
use crate::bindings::armonik::worker::agent::Host;
use crate::bindings::types::{
    AgentError, ResultMetadata, SubmittedTask, TaskDefinition, TaskOptions, TaskRequest,
};
use crate::host_files::{Folder, plain_name};
use crate::proto::v1::agent as pb;

/// A trap raised when the task's deadline passes during (or before) an agent call: the task
/// ends with DEADLINE_EXCEEDED, as it does when the epoch deadline stops guest code.
#[derive(Debug, thiserror::Error)]
#[error("the task's max duration elapsed during an agent call")]
pub struct DeadlineReached;

/// What the task did through the agent, checked when it returns.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Result ids the agent acknowledged in `NotifyResultData`.
    pub notified: HashSet<String>,
    /// Result ids created with data.
    pub created: HashSet<String>,
    /// Expected outputs of submitted tasks: their production was delegated.
    pub delegated: HashSet<String>,
    /// Set when the agent could not be reached: the task's outcome is then unknown to ArmoniK
    /// and it must be retried whatever the guest returns.
    pub agent_unavailable: Option<String>,
    /// Calls made to the agent, whatever their outcome (calls the bridge refused itself are
    /// not counted: they never reached the agent): the Agent service's method, the gRPC code
    /// it ended with, and how long it took. Recorded in the metrics by the worker, which may
    /// not be the process that made them (`serve --isolation process`).
    pub agent_calls: Vec<(String, Code, std::time::Duration)>,
}

/// Who a task is, as the agent knows it.
pub struct TaskIdentity {
    /// The communication token of this attempt (never shown to the guest).
    pub token: String,
    /// The task's session.
    pub session_id: String,
    /// The results the task must produce.
    pub expected_outputs: Vec<String>,
    /// How the task chose its component, passed on to its subtasks (see [`Library`]).
    pub library: Option<Library>,
}

/// The component selection of a task run from a library blob (ArmoniK's dynamic-worker
/// convention), which its subtasks inherit when they name no convention themselves: ArmoniK
/// gives a subtask the session's options, not its parent's (ArmoniK.Core
/// `Common/src/gRPC/Services/GrpcTasksService.cs`), so without it a subtask would run the
/// default component, or none. ArmoniK's C# and Java SDKs pass the parent's options the same
/// way; the blob itself is fetched by the subtask's host if it is not a dependency.
#[derive(Debug, Clone, Default)]
pub struct Library {
    /// `ConventionVersion` and `LibraryBlobId`, as the task's options set them.
    pub options: Vec<(String, String)>,
    /// The task's priority: request options replace the session's, priority included (it is
    /// not merged).
    pub priority: i32,
}

impl Library {
    /// The selection of a task with these options, if it names a convention.
    pub fn of(options: &crate::proto::v1::TaskOptions) -> Option<Self> {
        use crate::sandbox::components::{CONVENTION_VERSION, LIBRARY_BLOB_ID};
        options.options.get(CONVENTION_VERSION)?;
        Some(Self {
            options: [CONVENTION_VERSION, LIBRARY_BLOB_ID]
                .into_iter()
                .filter_map(|k| Some((k.to_owned(), options.options.get(k)?.clone())))
                .collect(),
            priority: options.priority,
        })
    }

    /// The request-level options for subtasks with `own` options: `defaults` with the
    /// selection added, unless they or a subtask name a convention of their own.
    fn pass_on<'o>(
        &self,
        defaults: Option<TaskOptions>,
        mut own: impl Iterator<Item = Option<&'o TaskOptions>>,
    ) -> Option<TaskOptions> {
        use crate::sandbox::components::CONVENTION_VERSION;
        let names = |o: &TaskOptions| o.options.iter().any(|(k, _)| k == CONVENTION_VERSION);
        if defaults.as_ref().is_some_and(names) || own.any(|o| o.is_some_and(names)) {
            return defaults;
        }
        let mut defaults = defaults.unwrap_or_else(|| TaskOptions {
            options: Vec::new(),
            max_duration_ms: None,
            max_retries: 0,
            priority: self.priority,
            partition_id: String::new(),
            application_name: String::new(),
            application_version: String::new(),
            application_namespace: String::new(),
            application_service: String::new(),
            engine_type: String::new(),
        });
        defaults.options.extend(self.options.iter().cloned());
        Some(defaults)
    }
}

/// The per-task half of the agent bridge: who the task is and what it did.
pub struct AgentBridge {
    agent: Arc<dyn Agent>,
    token: String,
    session_id: String,
    chunk_size: usize,
    deadline: Instant,
    /// `None` before a task is bound (see [`unbound`](Self::unbound)).
    data_folder: Option<Arc<Folder>>,
    /// Results the task may produce: its expected outputs, and those it created without data.
    owned: HashSet<String>,
    library: Option<Library>,
    ledger: Ledger,
}

impl AgentBridge {
    /// A bridge for one task. `chunk_size` is the agent's preferred message size (for the
    /// legacy stream); `deadline` is when the task's time budget ends; `data_folder` is the
    /// task's folder, where data calls write.
    pub fn new(
        agent: Arc<dyn Agent>,
        task: TaskIdentity,
        chunk_size: usize,
        deadline: Instant,
        data_folder: Arc<Folder>,
    ) -> Self {
        Self {
            agent,
            token: task.token,
            session_id: task.session_id,
            chunk_size,
            deadline,
            data_folder: Some(data_folder),
            owned: task.expected_outputs.into_iter().collect(),
            library: task.library,
            ledger: Ledger::default(),
        }
    }

    /// The bridge of an instance made before its task is known: no token, no folder, and an
    /// agent that refuses every call ([`Unbound`]). Replaced by the task's own bridge before
    /// the task's code runs.
    pub fn unbound() -> Self {
        Self {
            agent: Arc::new(Unbound),
            token: String::new(),
            session_id: String::new(),
            chunk_size: 0,
            deadline: Instant::now(),
            data_folder: None,
            owned: HashSet::new(),
            library: None,
            ledger: Ledger::default(),
        }
    }

    /// Whether the guest called the agent through this bridge.
    pub fn was_called(&self) -> bool {
        !self.ledger.agent_calls.is_empty() || self.ledger.agent_unavailable.is_some()
    }

    /// Refuses to notify a result the task does not own, or has delegated.
    fn check_notify(&self, ids: &[String]) -> Result<(), AgentError> {
        for id in ids {
            self.check_owned(id, "notify")?;
            if self.ledger.delegated.contains(id) {
                return Err(AgentError::InvalidArgument(format!(
                    "cannot notify result `{id}`: the task delegated it to a submitted task"
                )));
            }
        }
        Ok(())
    }

    /// Refuses to delegate a result the task does not own, has notified, or delegates twice.
    fn check_delegate<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), AgentError> {
        let mut delegating = HashSet::new();
        for id in ids {
            self.check_owned(id, "delegate")?;
            if self.ledger.notified.contains(id)
                || self.ledger.delegated.contains(id)
                || !delegating.insert(id)
            {
                return Err(AgentError::InvalidArgument(format!(
                    "cannot delegate result `{id}`: the task already notified or delegated it (a result is produced once)"
                )));
            }
        }
        Ok(())
    }

    fn check_owned(&self, id: &str, action: &str) -> Result<(), AgentError> {
        if self.owned.contains(id) {
            Ok(())
        } else {
            Err(AgentError::InvalidArgument(format!(
                "cannot {action} result `{id}`: a task may produce only its expected outputs and the results it created with create-results-metadata"
            )))
        }
    }

    /// Makes the name a data call will write safe: a plain file name of the data folder, with
    /// whatever the guest left there removed.
    fn clear_for_data(&self, result_id: &str) -> Result<(), AgentError> {
        plain_name(result_id).map_err(|e| AgentError::InvalidArgument(e.to_string()))?;
        let Some(folder) = &self.data_folder else {
            return Err(AgentError::Internal(
                "no task is bound to this instance yet".into(),
            ));
        };
        folder.clear(result_id).map_err(|error| {
            AgentError::Internal(format!(
                "cannot clear `{result_id}` in the data folder before fetching it: {error}"
            ))
        })
    }

    /// Takes what the task did, once it has returned, leaving an empty ledger (the store
    /// that holds the bridge is torn down later).
    pub fn take_ledger(&mut self) -> Ledger {
        std::mem::take(&mut self.ledger)
    }

    /// Runs one agent call within the task's deadline and maps its error for the guest. A call
    /// that cannot finish before the deadline traps, so the guest is stopped instead of
    /// waiting on an agent that has already given up on the task.
    ///
    /// `operation` names the Agent service's method in [`Ledger::agent_calls`].
    async fn call<R>(
        &mut self,
        operation: &'static str,
        call: impl Future<Output = Result<R, Status>>,
    ) -> wasmtime::Result<Result<R, AgentError>> {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout_at(self.deadline, call).await;
        let code = match &result {
            Err(_elapsed) => Code::DeadlineExceeded,
            Ok(Ok(_)) => Code::Ok,
            Ok(Err(status)) => status.code(),
        };
        self.ledger
            .agent_calls
            .push((operation.to_owned(), code, started.elapsed()));
        match result {
            Err(_elapsed) => Err(wasmtime::Error::new(DeadlineReached)),
            Ok(Ok(reply)) => Ok(Ok(reply)),
            Ok(Err(status)) => {
                if status.code() == Code::Unavailable {
                    self.ledger.agent_unavailable = Some(status.message().to_owned());
                }
                Ok(Err(agent_error(&status)))
            }
        }
    }

    fn data_request(&self, result_id: String) -> pb::DataRequest {
        pb::DataRequest {
            communication_token: self.token.clone(),
            result_id,
        }
    }
}

/// A gRPC status as the WIT error the guest can branch on.
fn agent_error(status: &Status) -> AgentError {
    let message = if status.message().is_empty() {
        status.code().description().to_owned()
    } else {
        status.message().to_owned()
    };
    match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            AgentError::InvalidArgument(message)
        }
        Code::NotFound => AgentError::NotFound(message),
        Code::Unavailable => AgentError::Unavailable(message),
        Code::DeadlineExceeded => AgentError::DeadlineExceeded(message),
        _ => AgentError::Internal(message),
    }
}

impl Host for AgentBridge {
    async fn create_results_metadata(
        &mut self,
        names: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<ResultMetadata>, AgentError>> {
        let request = pb::CreateResultsMetaDataRequest {
            results: names
                .into_iter()
                .map(|name| pb::create_results_meta_data_request::ResultCreate { name })
                .collect(),
            session_id: self.session_id.clone(),
            communication_token: self.token.clone(),
        };
        let agent = self.agent.clone();
        let reply = self
            .call(
                "CreateResultsMetaData",
                agent.create_results_metadata(request),
            )
            .await?;
        Ok(reply.map(|r| {
            self.owned
                .extend(r.results.iter().map(|m| m.result_id.clone()));
            r.results
                .into_iter()
                .map(convert::result_metadata_to_wit)
                .collect()
        }))
    }

    async fn create_results(
        &mut self,
        results: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<Vec<ResultMetadata>, AgentError>> {
        let request = pb::CreateResultsRequest {
            results: results
                .into_iter()
                .map(|(name, data)| pb::create_results_request::ResultCreate { name, data })
                .collect(),
            session_id: self.session_id.clone(),
            communication_token: self.token.clone(),
        };
        let agent = self.agent.clone();
        let reply = self
            .call("CreateResults", agent.create_results(request))
            .await?;
        Ok(reply.map(|r| {
            self.ledger
                .created
                .extend(r.results.iter().map(|m| m.result_id.clone()));
            r.results
                .into_iter()
                .map(convert::result_metadata_to_wit)
                .collect()
        }))
    }

    async fn notify_result_data(
        &mut self,
        result_ids: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<String>, AgentError>> {
        if let Err(refused) = self.check_notify(&result_ids) {
            return Ok(Err(refused));
        }
        let request = pb::NotifyResultDataRequest {
            ids: result_ids
                .into_iter()
                .map(
                    |result_id| pb::notify_result_data_request::ResultIdentifier {
                        session_id: self.session_id.clone(),
                        result_id,
                    },
                )
                .collect(),
            communication_token: self.token.clone(),
        };
        let agent = self.agent.clone();
        let reply = self
            .call("NotifyResultData", agent.notify_result_data(request))
            .await?;
        Ok(reply.map(|r| {
            self.ledger.notified.extend(r.result_ids.iter().cloned());
            r.result_ids
        }))
    }

    async fn submit_tasks(
        &mut self,
        tasks: Vec<TaskDefinition>,
        defaults: Option<TaskOptions>,
    ) -> wasmtime::Result<Result<Vec<SubmittedTask>, AgentError>> {
        if let Err(refused) = self.check_delegate(tasks.iter().flat_map(|t| &t.expected_output_ids))
        {
            return Ok(Err(refused));
        }
        let defaults = match &self.library {
            Some(library) => library.pass_on(defaults, tasks.iter().map(|t| t.options.as_ref())),
            None => defaults,
        };
        let request = pb::SubmitTasksRequest {
            session_id: self.session_id.clone(),
            task_options: defaults.map(convert::task_options_from_wit),
            task_creations: tasks
                .into_iter()
                .map(convert::task_creation_from_wit)
                .collect(),
            communication_token: self.token.clone(),
        };
        let agent = self.agent.clone();
        let reply = self
            .call("SubmitTasks", agent.submit_tasks(request))
            .await?;
        Ok(reply.map(|r| {
            let tasks: Vec<SubmittedTask> = r
                .task_infos
                .into_iter()
                .map(convert::submitted_task_to_wit)
                .collect();
            for task in &tasks {
                self.ledger
                    .delegated
                    .extend(task.expected_output_ids.iter().cloned());
            }
            tasks
        }))
    }

    async fn create_tasks(
        &mut self,
        tasks: Vec<TaskRequest>,
        defaults: Option<TaskOptions>,
    ) -> wasmtime::Result<Result<Vec<SubmittedTask>, AgentError>> {
        if let Err(refused) = self.check_delegate(tasks.iter().flat_map(|t| &t.expected_output_ids))
        {
            return Ok(Err(refused));
        }
        let defaults = match &self.library {
            Some(library) => library.pass_on(defaults, std::iter::empty()),
            None => defaults,
        };
        let stream = convert::create_task_stream(tasks, defaults, &self.token, self.chunk_size);
        let agent = self.agent.clone();
        let reply = match self.call("CreateTask", agent.create_task(stream)).await? {
            Ok(reply) => reply,
            Err(error) => return Ok(Err(error)),
        };
        // The legacy RPC reports failures in the reply, not as a status.
        use pb::create_task_reply::{Response, creation_status::Status as Creation};
        let statuses = match reply.response {
            Some(Response::CreationStatusList(list)) => list.creation_statuses,
            Some(Response::Error(error)) => return Ok(Err(AgentError::InvalidArgument(error))),
            None => {
                return Ok(Err(AgentError::Internal(
                    "the agent answered CreateTask with neither tasks nor an error".into(),
                )));
            }
        };
        let mut created = Vec::with_capacity(statuses.len());
        let mut errors = Vec::new();
        for status in statuses {
            match status.status {
                Some(Creation::TaskInfo(info)) => created.push(convert::created_task_to_wit(info)),
                Some(Creation::Error(error)) => errors.push(error),
                None => errors.push("empty creation status".into()),
            }
        }
        for task in &created {
            self.ledger
                .delegated
                .extend(task.expected_output_ids.iter().cloned());
        }
        if errors.is_empty() {
            Ok(Ok(created))
        } else {
            Ok(Err(AgentError::InvalidArgument(errors.join("; "))))
        }
    }

    async fn get_resource_data(
        &mut self,
        result_id: String,
    ) -> wasmtime::Result<Result<(), AgentError>> {
        if let Err(refused) = self.clear_for_data(&result_id) {
            return Ok(Err(refused));
        }
        let request = self.data_request(result_id);
        let agent = self.agent.clone();
        Ok(self
            .call("GetResourceData", agent.get_resource_data(request))
            .await?
            .map(drop))
    }

    async fn get_common_data(
        &mut self,
        result_id: String,
    ) -> wasmtime::Result<Result<(), AgentError>> {
        if let Err(refused) = self.clear_for_data(&result_id) {
            return Ok(Err(refused));
        }
        let request = self.data_request(result_id);
        let agent = self.agent.clone();
        Ok(self
            .call("GetCommonData", agent.get_common_data(request))
            .await?
            .map(drop))
    }

    async fn get_direct_data(
        &mut self,
        result_id: String,
    ) -> wasmtime::Result<Result<(), AgentError>> {
        if let Err(refused) = self.clear_for_data(&result_id) {
            return Ok(Err(refused));
        }
        let request = self.data_request(result_id);
        let agent = self.agent.clone();
        Ok(self
            .call("GetDirectData", agent.get_direct_data(request))
            .await?
            .map(drop))
    }
}

impl crate::bindings::armonik::worker::types::Host for AgentBridge {}
