//! [`TaskHandler`]: the task's context, its data, and the agent's operations.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::bindings::armonik::worker::agent;
use crate::{
    ResultMetadata, SubmittedTask, TaskContext, TaskDefinition, TaskError, TaskOptions, TaskRequest,
};

/// What a task is given: its ids, options and data, and the ArmoniK Agent's operations.
///
/// Mirrors the `TaskHandler` of ArmoniK's official SDKs. Every operation takes `&self`, so
/// ids borrowed from the handler can be passed straight back to it:
/// `handler.send_result(&handler.expected_results()[0], b"...")`.
///
/// Ids passed to operations that touch the data folder must be plain file names (result ids
/// are); anything else is a [`TaskError::InvalidId`].
#[derive(Debug, Clone)]
pub struct TaskHandler {
    session_id: String,
    task_id: String,
    task_options: TaskOptions,
    payload_id: String,
    data_dependencies: Vec<String>,
    /// The same, for membership in O(1): a fan-in task reads thousands of dependencies.
    dependency_set: HashSet<String>,
    expected_results: Vec<String>,
    data_folder: PathBuf,
    data_chunk_max_size: usize,
}

impl TaskHandler {
    /// Builds the handler of the task described by `ctx` ([`export_task!`](crate::export_task)
    /// does this; it is public so task code can be unit-tested on files without the worker).
    pub fn new(ctx: TaskContext) -> Self {
        Self {
            session_id: ctx.session_id,
            task_id: ctx.task_id,
            task_options: ctx.options,
            payload_id: ctx.payload_id,
            dependency_set: ctx.data_dependencies.iter().cloned().collect(),
            data_dependencies: ctx.data_dependencies,
            expected_results: ctx.expected_output_ids,
            data_folder: PathBuf::from(ctx.data_folder),
            data_chunk_max_size: usize::try_from(ctx.data_chunk_max_size).unwrap_or(0),
        }
    }

    /// The id of the session the task belongs to.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The id of the task.
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// The task's options.
    pub fn task_options(&self) -> &TaskOptions {
        &self.task_options
    }

    /// The result id of the task's payload (see [`payload`](Self::payload)).
    pub fn payload_id(&self) -> &str {
        &self.payload_id
    }

    /// The result ids the task must produce, create, or delegate to a subtask.
    pub fn expected_results(&self) -> &[String] {
        &self.expected_results
    }

    /// The first of [`expected_results`](Self::expected_results), or a
    /// [`TaskError::Failed`] saying the task has none: most tasks have exactly one.
    pub fn first_expected_result(&self) -> Result<&str, TaskError> {
        self.expected_results
            .first()
            .map(String::as_str)
            .ok_or_else(|| TaskError::failed("this task has no expected result"))
    }

    /// The result ids of the task's data dependencies (see
    /// [`data_dependency`](Self::data_dependency)).
    pub fn data_dependencies(&self) -> &[String] {
        &self.data_dependencies
    }

    /// The agent's preferred message size in bytes (0 if the agent did not say).
    pub fn data_chunk_max_size(&self) -> usize {
        self.data_chunk_max_size
    }

    /// The folder holding the task's data, one file per result id.
    pub fn data_folder(&self) -> &Path {
        &self.data_folder
    }

    /// The path of the file of result `id` in the data folder: read a dependency from it, or
    /// write a result to it, then [`notify_result_data`](Self::notify_result_data). For data
    /// too large to handle in memory. `id` is joined as is: it should be a result id.
    pub fn path_of(&self, id: &str) -> PathBuf {
        self.data_folder.join(id)
    }

    /// Reads the task's payload.
    pub fn payload(&self) -> Result<Vec<u8>, TaskError> {
        self.read(&self.payload_id)
    }

    /// Reads data dependency `id`, which must be one of
    /// [`data_dependencies`](Self::data_dependencies) (else [`TaskError::NotADependency`]).
    pub fn data_dependency(&self, id: &str) -> Result<Vec<u8>, TaskError> {
        if !self.dependency_set.contains(id) {
            return Err(TaskError::NotADependency(id.to_owned()));
        }
        self.read(id)
    }

    /// Produces result `id`: writes `data` as its file (replacing any file there whole), then notifies
    /// the agent. The file must stay unchanged until the task returns.
    pub fn send_result(&self, id: &str, data: &[u8]) -> Result<(), TaskError> {
        self.send_results(&[(id, data)])
    }

    /// Produces several results: writes every file, then notifies them all in one call (none
    /// if `results` is empty).
    pub fn send_results<I: AsRef<str>, D: AsRef<[u8]>>(
        &self,
        results: &[(I, D)],
    ) -> Result<(), TaskError> {
        for (id, data) in results {
            let id = id.as_ref();
            check_id(id)?;
            let path = self.path_of(id);
            whole_files::write(id, data.as_ref())
                .unwrap_or_else(|| fs::write(&path, data))
                .map_err(|e| TaskError::io(path, e))?;
        }
        if !results.is_empty() {
            let ids: Vec<&str> = results.iter().map(|(id, _)| id.as_ref()).collect();
            self.notify_result_data(&ids)?;
        }
        Ok(())
    }

    /// Declares results whose files were written in the data folder (see
    /// [`path_of`](Self::path_of)) as complete. Returns the ids the agent acknowledged.
    pub fn notify_result_data<I: AsRef<str>>(&self, ids: &[I]) -> Result<Vec<String>, TaskError> {
        let ids: Vec<String> = ids.iter().map(|id| id.as_ref().to_owned()).collect();
        agent::notify_result_data(&ids).map_err(|e| TaskError::agent("notify-result-data", e))
    }

    /// Creates results without data, one per name, in order; produce them later or let
    /// subtasks produce them (list their ids as a subtask's expected outputs).
    pub fn create_results_metadata<N: AsRef<str>>(
        &self,
        names: &[N],
    ) -> Result<Vec<ResultMetadata>, TaskError> {
        let names: Vec<String> = names.iter().map(|n| n.as_ref().to_owned()).collect();
        agent::create_results_metadata(&names)
            .map_err(|e| TaskError::agent("create-results-metadata", e))
    }

    /// Creates results with their data, one per `(name, data)`, in order. The agent caps a
    /// request at 4 MiB: send large data with [`send_result`](Self::send_result) instead.
    pub fn create_results<N: AsRef<str>, D: AsRef<[u8]>>(
        &self,
        results: &[(N, D)],
    ) -> Result<Vec<ResultMetadata>, TaskError> {
        let results: Vec<(String, Vec<u8>)> = results
            .iter()
            .map(|(n, d)| (n.as_ref().to_owned(), d.as_ref().to_vec()))
            .collect();
        agent::create_results(&results).map_err(|e| TaskError::agent("create-results", e))
    }

    /// Submits subtasks over existing results (their payloads created with
    /// [`create_results`](Self::create_results)). `defaults` fill the fields each task leaves
    /// empty; `None` keeps the session's. Listing one of this task's expected results as a
    /// subtask's output delegates it.
    pub fn submit_tasks(
        &self,
        tasks: impl AsRef<[TaskDefinition]>,
        defaults: Option<TaskOptions>,
    ) -> Result<Vec<SubmittedTask>, TaskError> {
        agent::submit_tasks(tasks.as_ref(), defaults.as_ref())
            .map_err(|e| TaskError::agent("submit-tasks", e))
    }

    /// Submits subtasks with inline payloads through ArmoniK's legacy `CreateTask` call.
    /// Prefer [`submit_tasks`](Self::submit_tasks).
    pub fn create_tasks(
        &self,
        tasks: impl AsRef<[TaskRequest]>,
        defaults: Option<TaskOptions>,
    ) -> Result<Vec<SubmittedTask>, TaskError> {
        agent::create_tasks(tasks.as_ref(), defaults.as_ref())
            .map_err(|e| TaskError::agent("create-tasks", e))
    }

    /// Fetches the data of any existing result of the session (not only a dependency): asks
    /// the agent to copy it into the data folder, then reads it.
    pub fn get_resource_data(&self, id: &str) -> Result<Vec<u8>, TaskError> {
        check_id(id)?;
        agent::get_resource_data(id).map_err(|e| TaskError::agent("get-resource-data", e))?;
        self.read(id)
    }

    /// ArmoniK `GetCommonData` (not implemented by ArmoniK's agent today): asks the agent to
    /// place result `id` in the data folder.
    pub fn get_common_data(&self, id: &str) -> Result<(), TaskError> {
        agent::get_common_data(id).map_err(|e| TaskError::agent("get-common-data", e))
    }

    /// ArmoniK `GetDirectData` (not implemented by ArmoniK's agent today): asks the agent to
    /// place result `id` in the data folder.
    pub fn get_direct_data(&self, id: &str) -> Result<(), TaskError> {
        agent::get_direct_data(id).map_err(|e| TaskError::agent("get-direct-data", e))
    }

    /// Reads the file of result `id`.
    fn read(&self, id: &str) -> Result<Vec<u8>, TaskError> {
        check_id(id)?;
        let path = self.path_of(id);
        whole_files::read(id)
            .unwrap_or_else(|| fs::read(&path))
            .map_err(|e| TaskError::io(path, e))
    }
}

/// The task's data folder through the world's `data-folder` interface: a whole file per call
/// (WASI moves at most 64 KiB per read in wasmtime, and `std::fs` writes go through the
/// preview 1 adapter's output stream, a thread hand-off per 64 KiB). `None` when the host
/// cannot hand the file over whole (it holds more than the task's memory), and off wasm, where
/// there is no host: `std::fs` does it then. On wasm the folder is always the task's own (the
/// host's), whatever folder the handler was built with.
#[cfg(target_arch = "wasm32")]
mod whole_files {
    use crate::bindings::armonik::worker::data_folder::{self, FileError};

    fn io(error: FileError) -> std::io::Error {
        let kind = match error {
            FileError::NotFound(_) => std::io::ErrorKind::NotFound,
            FileError::InvalidName(_) => std::io::ErrorKind::InvalidInput,
            FileError::TooLarge(_) => std::io::ErrorKind::OutOfMemory,
            FileError::Io(_) => std::io::ErrorKind::Other,
        };
        let (FileError::NotFound(message)
        | FileError::InvalidName(message)
        | FileError::TooLarge(message)
        | FileError::Io(message)) = error;
        std::io::Error::new(kind, message)
    }

    pub(super) fn read(id: &str) -> Option<std::io::Result<Vec<u8>>> {
        match data_folder::read(id, u64::MAX) {
            Err(FileError::TooLarge(_)) => None,
            read => Some(read.map_err(io)),
        }
    }

    pub(super) fn write(id: &str, data: &[u8]) -> Option<std::io::Result<()>> {
        Some(data_folder::write(id, data).map_err(io))
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod whole_files {
    pub(super) fn read(_id: &str) -> Option<std::io::Result<Vec<u8>>> {
        None
    }

    pub(super) fn write(_id: &str, _data: &[u8]) -> Option<std::io::Result<()>> {
        None
    }
}

/// Checks that `id` names a file directly in the data folder.
fn check_id(id: &str) -> Result<(), TaskError> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\\', '\0']) {
        return Err(TaskError::InvalidId(id.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn handler(folder: &Path) -> TaskHandler {
        TaskHandler::new(TaskContext {
            session_id: "s".into(),
            task_id: "t".into(),
            options: TaskOptions::default(),
            payload_id: "p".into(),
            data_dependencies: vec!["d1".into(), "d2".into()],
            expected_output_ids: vec!["o".into()],
            data_folder: folder.to_string_lossy().into_owned(),
            data_chunk_max_size: -1,
        })
    }

    #[test]
    fn reads_files_and_checks_ids() {
        let dir = std::env::temp_dir().join(format!("armonik-wasm-sdk-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("p"), b"payload").unwrap();
        fs::write(dir.join("d2"), b"two").unwrap();
        let h = handler(&dir);
        assert_eq!(h.payload().unwrap(), b"payload");
        assert_eq!(h.data_dependency("d2").unwrap(), b"two");
        assert!(matches!(
            h.data_dependency("p"),
            Err(TaskError::NotADependency(_))
        ));
        assert!(matches!(h.data_dependency("d1"), Err(TaskError::Io { .. })));
        assert!(matches!(h.read("../p"), Err(TaskError::InvalidId(_))));
        assert_eq!(h.first_expected_result().unwrap(), "o");
        assert_eq!(h.data_chunk_max_size(), 0);
        assert_eq!(h.path_of("x"), dir.join("x"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn task_options_builder() {
        let o = TaskOptions::default()
            .with_option("a", "1")
            .with_option("b", "2")
            .with_option("a", "3");
        assert_eq!(o.option("a"), Some("3"));
        assert_eq!(o.options.len(), 2);
        assert_eq!(o.option("c"), None);
    }
}
