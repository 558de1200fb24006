//! The embedded agent of `armonik-wasm run`: ArmoniK's polling agent and its task graph in
//! one process, so a component runs locally with the semantics it has in a cluster.
//!
//! As in ArmoniK (see the worker contract): every attempt gets a fresh token and a data
//! folder holding only its payload and dependencies, as files named by result id; what a task creates,
//! notifies and submits is buffered and committed only when it returns `ok`, discarded
//! otherwise; a task becomes runnable once all its dependencies are completed; an error
//! status is retried up to `max_retries` times under the id `<first id>###<n>`; a failed or
//! timed-out task aborts its outputs and cancels every task depending on them.
//!
//! Stricter than ArmoniK where it protects the results: a task may notify or delegate only
//! results it owns (its expected outputs, the results it created without data), and a
//! completed result never changes. Every file operation goes through [`host_files`]: the
//! store and the task folders are private to this user, and nothing a guest plants in its
//! folder is followed.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use tonic::Status;

use crate::agent::Agent;
use crate::agent::convert::parse_create_task;
use crate::host_files::{self, EmptyFiles, Folder};
use crate::local::graph::{Attempt, Caller, Graph, check_not_own_input};
use crate::local::records::{ResultRecord, ResultState, TaskRecord, TaskState, record};
use crate::local::result_store::{ResultData, ResultStore};
use crate::local::task_folders::{MAX_SPARES, TaskFolders};
use crate::local::task_options::merge_options;
use crate::proto::v1::TaskOptions;
use crate::proto::v1::agent::{
    self as pb, CreateResultsMetaDataRequest, CreateResultsMetaDataResponse, CreateResultsRequest,
    CreateResultsResponse, CreateTaskReply, CreateTaskRequest, DataRequest, DataResponse,
    NotifyResultDataRequest, NotifyResultDataResponse, SubmitTasksRequest, SubmitTasksResponse,
};
use crate::proto::v1::result_status::ResultStatus;

/// The message size the embedded agent asks guests to respect (ArmoniK's default).
pub const CHUNK_SIZE: usize = 2 * 1024 * 1024;

/// The embedded agent and the state of the task graph it runs.
pub struct LocalAgent {
    /// Result data, named by result id.
    pub(crate) store: ResultStore,
    /// The attempts' data folders.
    pub(crate) folders: TaskFolders,
    pub(crate) graph: Mutex<Graph>,
    /// Woken when a task may have become ready or was asked to stop (see
    /// [`crate::local::scheduler`]).
    pub(crate) changed: tokio::sync::Notify,
}

impl LocalAgent {
    /// An agent without sessions yet; result data and task folders live under `dir`, in
    /// folders only this user can read. The task folders' new files come first from the
    /// folder of empty files `empty_files` (made if needed), where their files go, emptied,
    /// when the agent is dropped (`host_files::EmptyFiles`): one that cannot serve (not this
    /// user's alone, say) is not used, with a warning.
    ///
    /// # Errors
    /// The folders cannot be made.
    pub fn new(dir: &Path, empty_files: Option<&Path>) -> io::Result<Self> {
        let dir = Folder::create(dir, true)?;
        let store = ResultStore::new(dir.subfolder("results")?);
        let empty_files = empty_files.and_then(|path| {
            EmptyFiles::open(path, MAX_SPARES)
                .inspect_err(|error| {
                    tracing::warn!(folder = %path.display(), %error, "cannot keep empty files there");
                })
                .ok()
        });
        let folders = TaskFolders::new(&dir, empty_files)?;
        Ok(Self {
            store,
            folders,
            graph: Mutex::default(),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Ends the task folders' spare files (emptied into the empty files for the next process):
    /// before the data folder is removed, however many references to the agent are left.
    pub fn release_spares(&self) {
        self.folders.release();
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Graph> {
        // Every update keeps the graph consistent before it can panic.
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tasks per state, for progress reports (without copying the graph).
    pub fn counts(&self) -> BTreeMap<TaskState, usize> {
        self.lock().counts.clone()
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

    /// Opens a completed result's data (empty if it was completed without a file).
    ///
    /// # Errors
    /// The result has no data file that can be read.
    pub fn open_data(&self, id: &str) -> io::Result<ResultData> {
        self.store.open(id)
    }

    /// Writes the results held in memory to files of the store, beside the others, so that
    /// the store's folder holds every result (`run` keeps it when the outputs cannot be
    /// written).
    ///
    /// # Errors
    /// A file cannot be written; the others are still written.
    pub fn keep_results_as_files(&self) -> anyhow::Result<()> {
        self.store.write_all_to_files()
    }

    /// Checks the token and session of a call, and returns the caller's attempt with the
    /// committed results (to check ids against).
    fn caller<'g>(
        &self,
        graph: &'g mut Graph,
        token: &str,
        session_id: Option<&str>,
    ) -> Result<Caller<'g>, Status> {
        if token.is_empty() {
            return Err(Status::invalid_argument("Missing communication token"));
        }
        let Graph {
            attempts,
            results,
            tasks,
            sessions,
            ..
        } = graph;
        let attempt = attempts
            .get_mut(token)
            .ok_or_else(|| Status::invalid_argument("Wrong communication token"))?;
        let task = tasks
            .get(&attempt.task_id)
            .ok_or_else(|| Status::internal("the attempt's task is gone"))?;
        if let Some(session) = session_id
            && session != task.session_id
        {
            return Err(Status::invalid_argument(format!(
                "session `{session}` is not the task's session"
            )));
        }
        let session = sessions
            .get(&task.session_id)
            .ok_or_else(|| Status::internal("the task's session is gone"))?;
        Ok(Caller {
            attempt,
            committed: results,
            expected: &task.expected_outputs,
            session,
        })
    }

    /// Records a result the attempt creates, with its data in the store when given; it becomes
    /// visible only if the attempt is committed.
    fn stage_result(
        &self,
        session_id: &str,
        attempt: &mut Attempt,
        name: String,
        data: Option<&[u8]>,
    ) -> Result<pb::ResultMetaData, Status> {
        let id = uuid::Uuid::new_v4().to_string();
        let state = match data {
            Some(data) => {
                self.store
                    .write(&id, data)
                    .map_err(|e| Status::internal(format!("cannot store result data: {e}")))?;
                ResultState::Completed
            }
            None => ResultState::Created,
        };
        let mut record = record(session_id, name, state, &attempt.task_id);
        record.size = data.map_or(0, |d| d.len() as u64);
        let metadata = metadata(&id, &record);
        attempt.stage(id, record);
        Ok(metadata)
    }

    /// A subtask a task submits, its options merged over `defaults`.
    fn new_task(
        &self,
        caller: &Caller<'_>,
        creation: pb::submit_tasks_request::TaskCreation,
        defaults: &TaskOptions,
    ) -> TaskRecord {
        TaskRecord::new(
            caller.session.id.clone(),
            caller.attempt.task_id.clone(),
            creation.payload_id,
            creation.data_dependencies,
            creation.expected_output_keys,
            merge_options(creation.task_options.as_ref(), defaults),
        )
    }
}

fn metadata(id: &str, record: &ResultRecord) -> pb::ResultMetaData {
    let since_epoch = record
        .created_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    pb::ResultMetaData {
        session_id: record.session_id.clone(),
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

#[async_trait::async_trait]
impl Agent for LocalAgent {
    async fn create_results_metadata(
        &self,
        request: CreateResultsMetaDataRequest,
    ) -> Result<CreateResultsMetaDataResponse, Status> {
        let mut graph = self.lock();
        let caller = self.caller(
            &mut graph,
            &request.communication_token,
            Some(&request.session_id),
        )?;
        let results = request
            .results
            .into_iter()
            .map(|create| self.stage_result(&caller.session.id, caller.attempt, create.name, None))
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
        let caller = self.caller(
            &mut graph,
            &request.communication_token,
            Some(&request.session_id),
        )?;
        let results = request
            .results
            .into_iter()
            .map(|create| {
                self.stage_result(
                    &caller.session.id,
                    caller.attempt,
                    create.name,
                    Some(&create.data),
                )
            })
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
        let caller = self.caller(&mut graph, &request.communication_token, None)?;
        let ids: Vec<String> = request.ids.into_iter().map(|i| i.result_id).collect();
        caller.check_owned(&ids, "notify")?;
        for id in &ids {
            caller.attempt.notify(id);
        }
        Ok(NotifyResultDataResponse { result_ids: ids })
    }

    async fn submit_tasks(
        &self,
        request: SubmitTasksRequest,
    ) -> Result<SubmitTasksResponse, Status> {
        let mut graph = self.lock();
        let caller = self.caller(
            &mut graph,
            &request.communication_token,
            Some(&request.session_id),
        )?;
        if !caller.session.worker_submission {
            return Err(Status::failed_precondition(format!(
                "session `{}` no longer takes tasks from its tasks",
                caller.session.id
            )));
        }
        let defaults = merge_options(request.task_options.as_ref(), &caller.session.defaults);
        let mut task_infos = Vec::with_capacity(request.task_creations.len());
        for creation in request.task_creations {
            caller.check_known(
                std::iter::once(&creation.payload_id).chain(&creation.data_dependencies),
            )?;
            caller.check_owned(&creation.expected_output_keys, "delegate")?;
            check_not_own_input(
                &creation.payload_id,
                &creation.data_dependencies,
                &creation.expected_output_keys,
            )?;
            let task = self.new_task(&caller, creation, &defaults);
            task_infos.push(pb::submit_tasks_response::TaskInfo {
                task_id: task.id.clone(),
                expected_output_ids: task.expected_outputs.clone(),
                data_dependencies: task.data_dependencies.clone(),
                payload_id: task.payload_id.clone(),
            });
            caller.attempt.tasks.push(task);
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
            // ArmoniK's agent fails a stream without tasks with a status (UNKNOWN: its state
            // machine refuses `last_task` right after the init request), not in the reply.
            Ok((_, tasks)) if tasks.is_empty() => {
                return Err(Status::unknown("CreateTask needs at least one task"));
            }
            Ok(parsed) => parsed,
            // Like ArmoniK: a malformed stream is reported in the reply, not as a status.
            Err(error) => return Ok(reply(pb::create_task_reply::Response::Error(error))),
        };
        let mut graph = self.lock();
        let caller = match self.caller(&mut graph, &token, None) {
            Ok(caller) => caller,
            Err(status) => {
                return Ok(reply(pb::create_task_reply::Response::Error(
                    status.message().to_owned(),
                )));
            }
        };
        let defaults = merge_options(options.as_ref(), &caller.session.defaults);
        let mut statuses = Vec::with_capacity(tasks.len());
        for (header, payload) in tasks {
            use pb::create_task_reply::creation_status::Status as Creation;
            let checked = caller
                .check_known(&header.data_dependencies)
                .and_then(|()| caller.check_owned(&header.expected_output_keys, "delegate"))
                .and_then(|()| {
                    check_not_own_input("", &header.data_dependencies, &header.expected_output_keys)
                });
            if let Err(status) = checked {
                statuses.push(pb::create_task_reply::CreationStatus {
                    status: Some(Creation::Error(status.message().to_owned())),
                });
                continue;
            }
            // Each payload becomes a new unnamed result, as in ArmoniK.
            let payload_id = self
                .stage_result(
                    &caller.session.id,
                    caller.attempt,
                    String::new(),
                    Some(&payload),
                )?
                .result_id;
            let task = self.new_task(
                &caller,
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
            caller.attempt.tasks.push(task);
        }
        Ok(reply(pb::create_task_reply::Response::CreationStatusList(
            pb::create_task_reply::CreationStatusList {
                creation_statuses: statuses,
            },
        )))
    }

    async fn get_resource_data(&self, request: DataRequest) -> Result<DataResponse, Status> {
        let mut graph = self.lock();
        let caller = self.caller(&mut graph, &request.communication_token, None)?;
        let id = host_files::plain_name(&request.result_id)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if caller
            .committed
            .get(id)
            .is_none_or(|r| r.state != ResultState::Completed || r.session_id != caller.session.id)
        {
            return Err(Status::not_found(format!("result `{id}` has no data")));
        }
        // Whatever the guest left at that name (a directory, say): it comes while it runs.
        let folder = &caller.attempt.folder;
        folder
            .clear(id)
            .and_then(|()| self.folders.copy_in(&self.store, id, folder, None))
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
