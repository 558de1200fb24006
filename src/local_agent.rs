//! The embedded agent of `armonik-wasm run`: ArmoniK's polling agent and its task graph in
//! one process, so a component runs locally with the semantics it has in a cluster.
//!
//! As in ArmoniK (see the worker contract): every attempt gets a fresh token and data folder
//! holding its payload and dependencies as files named by result id; what a task creates,
//! notifies and submits is buffered and committed only when it returns `ok`, discarded
//! otherwise; a task becomes runnable once all its dependencies are completed; an error
//! status is retried up to `max_retries` times under the id `<first id>###<n>`; a failed or
//! timed-out task aborts its outputs and cancels every task depending on them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use tonic::{Code, Status};

use crate::agent::Agent;
use crate::proto::v1::agent::{
    self as pb, CreateResultsMetaDataRequest, CreateResultsMetaDataResponse, CreateResultsRequest,
    CreateResultsResponse, CreateTaskReply, CreateTaskRequest, DataRequest, DataResponse,
    NotifyResultDataRequest, NotifyResultDataResponse, SubmitTasksRequest, SubmitTasksResponse,
};
use crate::proto::v1::result_status::ResultStatus;
use crate::proto::v1::worker::{ProcessReply, ProcessRequest};
use crate::proto::v1::{Configuration, TaskOptions, output};

/// The message size the embedded agent asks guests to respect (ArmoniK's default).
const CHUNK_SIZE: i32 = 2 * 1024 * 1024;

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

#[derive(Debug, Clone)]
struct ResultRecord {
    name: String,
    state: ResultState,
    created_at: SystemTime,
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
struct Attempt {
    task_id: String,
    folder: PathBuf,
    results: Vec<(String, ResultRecord)>,
    notified: Vec<String>,
    tasks: Vec<TaskRecord>,
}

#[derive(Debug, Default)]
struct Graph {
    results: HashMap<String, ResultRecord>,
    tasks: HashMap<String, TaskRecord>,
    /// Task ids in submission order, for reports.
    order: Vec<String>,
    /// Ids of the tasks not started yet, in submission order, so tasks run first-come
    /// first-served; a task cancelled while waiting is dropped at the next scan.
    pending: Vec<String>,
    attempts: HashMap<String, Attempt>,
}

/// A task ready to be handed to the task runner.
pub struct Dispatch {
    /// The request for `Worker.Process`.
    pub request: ProcessRequest,
}

/// The embedded agent and the state of the task graph it runs.
pub struct LocalAgent {
    session_id: String,
    defaults: TaskOptions,
    /// Result data, one file per completed result, named by id.
    store: PathBuf,
    /// Parent of the per-attempt data folders.
    work: PathBuf,
    graph: Mutex<Graph>,
}

impl LocalAgent {
    /// An agent for one session whose tasks default to `defaults`; result data and task
    /// folders live under `dir`.
    pub fn new(dir: &Path, defaults: TaskOptions) -> std::io::Result<Self> {
        let store = dir.join("results");
        let work = dir.join("tasks");
        std::fs::create_dir_all(&store)?;
        std::fs::create_dir_all(&work)?;
        Ok(Self {
            session_id: uuid::Uuid::new_v4().to_string(),
            defaults,
            store,
            work,
            graph: Mutex::default(),
        })
    }

    /// The session all tasks belong to.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    fn lock(&self) -> MutexGuard<'_, Graph> {
        // Every update keeps the graph consistent before it can panic.
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a completed result holding `data` (a client's CreateResults).
    pub fn create_result(&self, name: &str, data: &[u8]) -> std::io::Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        std::fs::write(self.store.join(&id), data)?;
        self.lock()
            .results
            .insert(id.clone(), record(name.to_owned(), ResultState::Completed));
        Ok(id)
    }

    /// Creates a result without data (a client's CreateResultsMetaData).
    pub fn create_result_metadata(&self, name: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.lock()
            .results
            .insert(id.clone(), record(name.to_owned(), ResultState::Created));
        id
    }

    /// Submits a task with the session's options (a client's SubmitTasks).
    pub fn submit(
        &self,
        payload_id: String,
        data_dependencies: Vec<String>,
        outputs: Vec<String>,
    ) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let task = TaskRecord {
            id: id.clone(),
            payload_id,
            data_dependencies,
            expected_outputs: outputs,
            options: self.defaults.clone(),
            retry: 0,
            first_id: id.clone(),
            state: TaskState::Pending,
            message: None,
        };
        self.lock().add_task(task);
        id
    }

    /// Starts the oldest task whose dependencies are all completed: makes its token and data
    /// folder, with its payload and dependencies in it. `None` if no task is ready.
    pub fn start_next(&self) -> std::io::Result<Option<Dispatch>> {
        let mut graph = self.lock();
        let Graph {
            tasks,
            results,
            pending,
            ..
        } = &mut *graph;
        pending.retain(|id| tasks.get(id).is_some_and(|t| t.state == TaskState::Pending));
        let ready = pending.iter().position(|id| {
            tasks.get(id).is_some_and(|t| {
                t.data_dependencies.iter().all(|d| {
                    results
                        .get(d)
                        .is_some_and(|r| r.state == ResultState::Completed)
                })
            })
        });
        let Some(task_id) = ready.map(|at| pending.remove(at)) else {
            return Ok(None);
        };
        let token = uuid::Uuid::new_v4().to_string();
        let folder = self.work.join(&token);
        std::fs::create_dir_all(&folder)?;
        let Some(task) = graph.tasks.get_mut(&task_id) else {
            return Ok(None);
        };
        // Copies, not links: a task that writes to an input file must not change the result.
        for id in std::iter::once(&task.payload_id).chain(&task.data_dependencies) {
            let source = self.store.join(id);
            if source.exists() {
                std::fs::copy(&source, folder.join(id))?;
            } else {
                // ArmoniK stores a notified result without a file as empty data.
                std::fs::write(folder.join(id), b"")?;
            }
        }
        task.state = TaskState::Running;
        let request = ProcessRequest {
            communication_token: token.clone(),
            session_id: self.session_id.clone(),
            task_id: task.id.clone(),
            task_options: Some(task.options.clone()),
            expected_output_keys: task.expected_outputs.clone(),
            payload_id: task.payload_id.clone(),
            data_dependencies: task.data_dependencies.clone(),
            data_folder: folder.to_string_lossy().into_owned(),
            configuration: Some(Configuration {
                data_chunk_max_size: CHUNK_SIZE,
            }),
        };
        graph.attempts.insert(
            token,
            Attempt {
                task_id,
                folder,
                results: Vec::new(),
                notified: Vec::new(),
                tasks: Vec::new(),
            },
        );
        Ok(Some(Dispatch { request }))
    }

    /// Applies the outcome of the attempt with `token`, as ArmoniK's post-processing does, and
    /// removes its data folder. Returns the task's new state.
    pub fn finish(&self, token: &str, outcome: &Result<ProcessReply, Status>) -> TaskState {
        let mut graph = self.lock();
        let Some(attempt) = graph.attempts.remove(token) else {
            return TaskState::Error;
        };
        let task_id = attempt.task_id.clone();
        let folder = attempt.folder.clone();
        let output = outcome
            .as_ref()
            .map(|reply| reply.output.as_ref().and_then(|o| o.r#type.clone()));
        let state = match output {
            Ok(Some(output::Type::Ok(_))) => {
                self.commit(&mut graph, attempt);
                TaskState::Completed
            }
            Ok(Some(output::Type::Error(error))) => {
                self.discard(&attempt);
                graph.fail(&task_id, TaskState::Error, error.details)
            }
            Err(status) if status.code() == Code::DeadlineExceeded => {
                self.discard(&attempt);
                graph.fail(&task_id, TaskState::Timeout, status.message().to_owned())
            }
            // An error status, or a reply without output: ArmoniK retries both.
            Ok(None) | Err(_) => {
                self.discard(&attempt);
                let message = match outcome {
                    Err(status) => format!("{:?}: {}", status.code(), status.message()),
                    Ok(_) => "the worker replied without an output".to_owned(),
                };
                graph.retry_or_fail(&task_id, message)
            }
        };
        // After the commit, which moves the notified files out of it.
        let _ = std::fs::remove_dir_all(folder);
        state
    }

    /// Marks every task still pending as cancelled: nothing will ever produce what it waits
    /// for. Called once no task is running or ready.
    pub fn cancel_stuck(&self) {
        let mut graph = self.lock();
        let Graph { tasks, results, .. } = &mut *graph;
        for task in tasks.values_mut().filter(|t| t.state == TaskState::Pending) {
            let missing: Vec<&str> = task
                .data_dependencies
                .iter()
                .filter(|d| {
                    results
                        .get(*d)
                        .is_none_or(|r| r.state != ResultState::Completed)
                })
                .map(String::as_str)
                .collect();
            task.state = TaskState::Cancelled;
            task.message = Some(format!(
                "its dependencies {} are never produced",
                missing.join(", ")
            ));
        }
    }

    /// Tasks per state, for progress reports (without copying the graph).
    pub fn counts(&self) -> BTreeMap<TaskState, usize> {
        count_states(self.lock().tasks.values().map(|t| t.state))
    }

    /// Every task, in submission order.
    pub fn tasks(&self) -> Vec<TaskRecord> {
        let graph = self.lock();
        graph
            .order
            .iter()
            .filter_map(|id| graph.tasks.get(id).cloned())
            .collect()
    }

    /// A result's state and name.
    pub fn result(&self, id: &str) -> Option<(String, ResultState)> {
        self.lock()
            .results
            .get(id)
            .map(|r| (r.name.clone(), r.state))
    }

    /// Every completed result: id and name.
    pub fn completed_results(&self) -> Vec<(String, String)> {
        let graph = self.lock();
        let mut results: Vec<(String, String)> = graph
            .results
            .iter()
            .filter(|(_, r)| r.state == ResultState::Completed)
            .map(|(id, r)| (id.clone(), r.name.clone()))
            .collect();
        results.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        results
    }

    /// Where a completed result's data is.
    pub fn data_path(&self, id: &str) -> PathBuf {
        self.store.join(id)
    }

    fn commit(&self, graph: &mut Graph, attempt: Attempt) {
        for (id, result) in attempt.results {
            graph.results.insert(id, result);
        }
        for id in attempt.notified {
            let source = attempt.folder.join(&id);
            let target = self.store.join(&id);
            // The runner has checked that each notified result is a file of the folder.
            if std::fs::rename(&source, &target).is_err() {
                let _ = std::fs::copy(&source, &target);
            }
            if let Some(result) = graph.results.get_mut(&id) {
                result.state = ResultState::Completed;
            }
        }
        for task in attempt.tasks {
            graph.add_task(task);
        }
        if let Some(task) = graph.tasks.get_mut(&attempt.task_id) {
            task.state = TaskState::Completed;
        }
    }

    /// Drops the data of results the attempt created with data.
    fn discard(&self, attempt: &Attempt) {
        for (id, _) in &attempt.results {
            let _ = std::fs::remove_file(self.store.join(id));
        }
    }

    /// Checks the token and session of a call, and returns the caller's attempt with the
    /// committed results (to check ids against).
    fn caller<'g>(
        &self,
        graph: &'g mut Graph,
        token: &str,
        session_id: Option<&str>,
    ) -> Result<(&'g mut Attempt, &'g HashMap<String, ResultRecord>), Status> {
        if token.is_empty() {
            return Err(Status::invalid_argument("Missing communication token"));
        }
        if let Some(session) = session_id
            && session != self.session_id
        {
            return Err(Status::invalid_argument(format!(
                "session `{session}` is not the task's session"
            )));
        }
        let Graph {
            attempts, results, ..
        } = graph;
        let attempt = attempts
            .get_mut(token)
            .ok_or_else(|| Status::invalid_argument("Wrong communication token"))?;
        Ok((attempt, results))
    }

    /// Records a result the attempt creates, with its data in the store when given; it becomes
    /// visible only if the attempt is committed.
    fn stage_result(
        &self,
        attempt: &mut Attempt,
        name: String,
        data: Option<&[u8]>,
    ) -> Result<pb::ResultMetaData, Status> {
        let id = uuid::Uuid::new_v4().to_string();
        let state = match data {
            Some(data) => {
                std::fs::write(self.store.join(&id), data)
                    .map_err(|e| Status::internal(format!("cannot store result data: {e}")))?;
                ResultState::Completed
            }
            None => ResultState::Created,
        };
        let record = record(name, state);
        let metadata = metadata(&self.session_id, &id, &record);
        attempt.results.push((id, record));
        Ok(metadata)
    }

    fn new_task(
        &self,
        creation: pb::submit_tasks_request::TaskCreation,
        defaults: &TaskOptions,
    ) -> TaskRecord {
        let id = uuid::Uuid::new_v4().to_string();
        TaskRecord {
            id: id.clone(),
            payload_id: creation.payload_id,
            data_dependencies: creation.data_dependencies,
            expected_outputs: creation.expected_output_keys,
            options: merge_options(creation.task_options.as_ref(), defaults),
            retry: 0,
            first_id: id,
            state: TaskState::Pending,
            message: None,
        }
    }
}

impl Graph {
    /// Adds a task waiting for its dependencies.
    fn add_task(&mut self, task: TaskRecord) {
        self.order.push(task.id.clone());
        self.pending.push(task.id.clone());
        self.tasks.insert(task.id.clone(), task);
    }
    /// Fails a task for good: its outputs are aborted and whatever depends on them cancelled.
    fn fail(&mut self, task_id: &str, state: TaskState, message: String) -> TaskState {
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
    fn retry_or_fail(&mut self, task_id: &str, message: String) -> TaskState {
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

fn record(name: String, state: ResultState) -> ResultRecord {
    ResultRecord {
        name,
        state,
        created_at: SystemTime::now(),
    }
}

fn metadata(session_id: &str, id: &str, record: &ResultRecord) -> pb::ResultMetaData {
    let since_epoch = record
        .created_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    pb::ResultMetaData {
        session_id: session_id.to_owned(),
        result_id: id.to_owned(),
        name: record.name.clone(),
        // As in ArmoniK: results made during a task are created, completed only once it ends.
        status: ResultStatus::Created.into(),
        created_at: Some(prost_types::Timestamp {
            seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
        }),
    }
}

/// ArmoniK's option merge: a field set in `task` wins over `defaults`; the option maps are
/// merged key by key; `priority` is not merged (unset means 0), as in ArmoniK.
pub fn merge_options(task: Option<&TaskOptions>, defaults: &TaskOptions) -> TaskOptions {
    let Some(task) = task else {
        return defaults.clone();
    };
    let pick = |own: &String, default: &String| {
        if own.is_empty() {
            default.clone()
        } else {
            own.clone()
        }
    };
    let mut options = defaults.options.clone();
    options.extend(task.options.iter().map(|(k, v)| (k.clone(), v.clone())));
    TaskOptions {
        options,
        max_duration: task
            .max_duration
            .filter(|d| d.seconds > 0 || d.nanos > 0)
            .or(defaults.max_duration),
        max_retries: if task.max_retries > 0 {
            task.max_retries
        } else {
            defaults.max_retries
        },
        priority: task.priority,
        partition_id: pick(&task.partition_id, &defaults.partition_id),
        application_name: pick(&task.application_name, &defaults.application_name),
        application_version: pick(&task.application_version, &defaults.application_version),
        application_namespace: pick(&task.application_namespace, &defaults.application_namespace),
        application_service: pick(&task.application_service, &defaults.application_service),
        engine_type: pick(&task.engine_type, &defaults.engine_type),
    }
}

/// Fails with INVALID_ARGUMENT if an id is neither a committed result nor one the task made.
fn check_known<'a>(
    ids: impl IntoIterator<Item = &'a String>,
    committed: &HashMap<String, ResultRecord>,
    attempt: &Attempt,
) -> Result<(), Status> {
    for id in ids {
        if !committed.contains_key(id) && !attempt.results.iter().any(|(own, _)| own == id) {
            return Err(Status::invalid_argument(format!(
                "unknown result id `{id}`"
            )));
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Agent for LocalAgent {
    async fn create_results_metadata(
        &self,
        request: CreateResultsMetaDataRequest,
    ) -> Result<CreateResultsMetaDataResponse, Status> {
        let mut graph = self.lock();
        let (attempt, _) = self.caller(
            &mut graph,
            &request.communication_token,
            Some(&request.session_id),
        )?;
        let results = request
            .results
            .into_iter()
            .map(|create| self.stage_result(attempt, create.name, None))
            .collect::<Result<_, _>>()?;
        Ok(CreateResultsMetaDataResponse {
            results,
            communication_token: request.communication_token,
        })
    }

    async fn create_results(
        &self,
        request: CreateResultsRequest,
    ) -> Result<CreateResultsResponse, Status> {
        let mut graph = self.lock();
        let (attempt, _) = self.caller(
            &mut graph,
            &request.communication_token,
            Some(&request.session_id),
        )?;
        let results = request
            .results
            .into_iter()
            .map(|create| self.stage_result(attempt, create.name, Some(&create.data)))
            .collect::<Result<_, _>>()?;
        Ok(CreateResultsResponse {
            results,
            communication_token: request.communication_token,
        })
    }

    async fn notify_result_data(
        &self,
        request: NotifyResultDataRequest,
    ) -> Result<NotifyResultDataResponse, Status> {
        let mut graph = self.lock();
        let (attempt, committed) = self.caller(&mut graph, &request.communication_token, None)?;
        let ids: Vec<String> = request.ids.into_iter().map(|i| i.result_id).collect();
        check_known(&ids, committed, attempt)?;
        attempt.notified.extend(ids.iter().cloned());
        Ok(NotifyResultDataResponse { result_ids: ids })
    }

    async fn submit_tasks(
        &self,
        request: SubmitTasksRequest,
    ) -> Result<SubmitTasksResponse, Status> {
        let mut graph = self.lock();
        let (attempt, committed) = self.caller(
            &mut graph,
            &request.communication_token,
            Some(&request.session_id),
        )?;
        let defaults = merge_options(request.task_options.as_ref(), &self.defaults);
        let mut task_infos = Vec::with_capacity(request.task_creations.len());
        for creation in request.task_creations {
            check_known(
                std::iter::once(&creation.payload_id)
                    .chain(&creation.data_dependencies)
                    .chain(&creation.expected_output_keys),
                committed,
                attempt,
            )?;
            let task = self.new_task(creation, &defaults);
            task_infos.push(pb::submit_tasks_response::TaskInfo {
                task_id: task.id.clone(),
                expected_output_ids: task.expected_outputs.clone(),
                data_dependencies: task.data_dependencies.clone(),
                payload_id: task.payload_id.clone(),
            });
            attempt.tasks.push(task);
        }
        Ok(SubmitTasksResponse {
            task_infos,
            communication_token: request.communication_token,
        })
    }

    async fn create_task(&self, stream: Vec<CreateTaskRequest>) -> Result<CreateTaskReply, Status> {
        let token = stream
            .first()
            .map(|m| m.communication_token.clone())
            .unwrap_or_default();
        let reply = |response| CreateTaskReply {
            response: Some(response),
            communication_token: token.clone(),
        };
        let (options, tasks) = match parse_create_task(stream) {
            Ok(parsed) => parsed,
            // Like ArmoniK: a malformed stream is reported in the reply, not as a status.
            Err(error) => return Ok(reply(pb::create_task_reply::Response::Error(error))),
        };
        let mut graph = self.lock();
        let (attempt, committed) = match self.caller(&mut graph, &token, None) {
            Ok(caller) => caller,
            Err(status) => {
                return Ok(reply(pb::create_task_reply::Response::Error(
                    status.message().to_owned(),
                )));
            }
        };
        let defaults = merge_options(options.as_ref(), &self.defaults);
        let mut statuses = Vec::with_capacity(tasks.len());
        for (header, payload) in tasks {
            use pb::create_task_reply::creation_status::Status as Creation;
            if let Err(status) = check_known(
                header
                    .data_dependencies
                    .iter()
                    .chain(&header.expected_output_keys),
                committed,
                attempt,
            ) {
                statuses.push(pb::create_task_reply::CreationStatus {
                    status: Some(Creation::Error(status.message().to_owned())),
                });
                continue;
            }
            // Each payload becomes a new unnamed result, as in ArmoniK.
            let payload_id = self
                .stage_result(attempt, String::new(), Some(&payload))?
                .result_id;
            let task = self.new_task(
                pb::submit_tasks_request::TaskCreation {
                    expected_output_keys: header.expected_output_keys,
                    data_dependencies: header.data_dependencies,
                    payload_id,
                    task_options: None,
                },
                &defaults,
            );
            statuses.push(pb::create_task_reply::CreationStatus {
                status: Some(Creation::TaskInfo(pb::create_task_reply::TaskInfo {
                    task_id: task.id.clone(),
                    expected_output_keys: task.expected_outputs.clone(),
                    data_dependencies: task.data_dependencies.clone(),
                    payload_id: task.payload_id.clone(),
                })),
            });
            attempt.tasks.push(task);
        }
        Ok(reply(pb::create_task_reply::Response::CreationStatusList(
            pb::create_task_reply::CreationStatusList {
                creation_statuses: statuses,
            },
        )))
    }

    async fn get_resource_data(&self, request: DataRequest) -> Result<DataResponse, Status> {
        let mut graph = self.lock();
        let (attempt, committed) = self.caller(&mut graph, &request.communication_token, None)?;
        if committed
            .get(&request.result_id)
            .is_none_or(|r| r.state != ResultState::Completed)
        {
            return Err(Status::not_found(format!(
                "result `{}` has no data",
                request.result_id
            )));
        }
        std::fs::copy(
            self.store.join(&request.result_id),
            attempt.folder.join(&request.result_id),
        )
        .map_err(|e| Status::internal(format!("cannot copy the result's data: {e}")))?;
        Ok(DataResponse {
            result_id: request.result_id,
        })
    }

    async fn get_common_data(&self, _: DataRequest) -> Result<DataResponse, Status> {
        Err(Status::unimplemented(
            "GetCommonData is not implemented (ArmoniK's agent does not implement it either)",
        ))
    }

    async fn get_direct_data(&self, _: DataRequest) -> Result<DataResponse, Status> {
        Err(Status::unimplemented(
            "GetDirectData is not implemented (ArmoniK's agent does not implement it either)",
        ))
    }
}

type ParsedTasks = (
    Option<TaskOptions>,
    Vec<(crate::proto::v1::TaskRequestHeader, Vec<u8>)>,
);

/// Reads the legacy CreateTask grammar: an init request, then per task a header, data chunks
/// and a completion marker, then `last_task`.
fn parse_create_task(stream: Vec<CreateTaskRequest>) -> Result<ParsedTasks, String> {
    use crate::proto::v1::{data_chunk, init_task_request};
    use pb::create_task_request::Type;
    let mut messages = stream.into_iter().map(|m| m.r#type);
    let options = match messages.next() {
        Some(Some(Type::InitRequest(init))) => init.task_options,
        _ => return Err("CreateTask must start with an init request".into()),
    };
    let mut tasks = Vec::new();
    loop {
        let header = match messages.next() {
            Some(Some(Type::InitTask(init))) => match init.r#type {
                Some(init_task_request::Type::Header(header)) => header,
                Some(init_task_request::Type::LastTask(true)) => break,
                _ => return Err("expected a task header or last_task".into()),
            },
            _ => return Err("the stream ended before last_task".into()),
        };
        let mut payload = Vec::new();
        loop {
            match messages.next() {
                Some(Some(Type::TaskPayload(chunk))) => match chunk.r#type {
                    Some(data_chunk::Type::Data(data)) => payload.extend_from_slice(&data),
                    Some(data_chunk::Type::DataComplete(true)) => break,
                    _ => return Err("malformed payload chunk".into()),
                },
                _ => return Err("a task payload is not terminated by data_complete".into()),
            }
        }
        tasks.push((header, payload));
    }
    if tasks.is_empty() {
        return Err("CreateTask needs at least one task".into());
    }
    Ok((options, tasks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_options_win_over_request_over_session() {
        let session = TaskOptions {
            options: [
                ("a".into(), "session".into()),
                ("b".into(), "session".into()),
            ]
            .into(),
            max_duration: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            max_retries: 3,
            priority: 5,
            partition_id: "default".into(),
            application_name: "app".into(),
            ..TaskOptions::default()
        };
        let request = TaskOptions {
            options: [("b".into(), "request".into())].into(),
            max_retries: 1,
            partition_id: "gpu".into(),
            ..TaskOptions::default()
        };
        let task = TaskOptions {
            options: [("c".into(), "task".into())].into(),
            max_duration: Some(prost_types::Duration {
                seconds: 5,
                nanos: 0,
            }),
            priority: 2,
            ..TaskOptions::default()
        };
        let merged = merge_options(Some(&task), &merge_options(Some(&request), &session));
        assert_eq!(merged.options["a"], "session");
        assert_eq!(merged.options["b"], "request");
        assert_eq!(merged.options["c"], "task");
        assert_eq!(merged.max_duration.map(|d| d.seconds), Some(5));
        assert_eq!(merged.max_retries, 1);
        assert_eq!(merged.partition_id, "gpu");
        assert_eq!(merged.application_name, "app");
        // Priority is not merged, as in ArmoniK.
        assert_eq!(merged.priority, 2);
        assert_eq!(merge_options(Some(&request), &session).priority, 0);
        assert_eq!(merge_options(None, &session), session);
    }

    #[test]
    fn legacy_stream_is_parsed_and_malformed_ones_rejected() {
        use crate::bindings::types::TaskRequest;
        let stream = crate::convert::create_task_stream(
            vec![TaskRequest {
                payload: vec![1, 2, 3],
                data_dependencies: vec!["d".into()],
                expected_output_ids: vec!["o".into()],
            }],
            None,
            "token",
            2,
        );
        let (_, tasks) = parse_create_task(stream.clone()).expect("valid stream");
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].1, vec![1, 2, 3]);
        assert_eq!(tasks[0].0.expected_output_keys, vec!["o".to_owned()]);
        let truncated = stream[..stream.len() - 1].to_vec();
        assert!(parse_create_task(truncated).is_err());
        assert!(parse_create_task(stream[1..].to_vec()).is_err());
    }
}
