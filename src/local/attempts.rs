//! The life of an attempt in the embedded agent, as ArmoniK's polling agent leads it
//! (ArmoniK.Core `Common/src/Pollster/TaskHandler.cs`): a ready task gets a token and a data
//! folder holding its payload and dependencies; when it ends, what it did is committed (its
//! results, their data, its subtasks, in that order) if it returned ok, else discarded, and it
//! is retried, failed or cancelled.

use std::io;

use tonic::{Code, Status};

use super::agent::{CHUNK_SIZE, LocalAgent};
use super::graph::{Attempt, Graph};
use super::records::{ResultState, SessionStatus, TaskState};
use crate::host_files::{Folder, Leftovers};
use crate::proto::v1::worker::{ProcessReply, ProcessRequest};
use crate::proto::v1::{Configuration, output};

/// A task ready to be handed to the task runner.
pub struct Dispatch {
    /// The request for `Worker.Process`.
    pub request: ProcessRequest,
    /// Its data folder (`request.data_folder`) held open, with the task folders' spares.
    pub data_folder: Folder,
}

/// A task picked to run ([`LocalAgent::pick_next`]): its attempt is recorded, its data folder
/// taken, but its payload and dependencies are not copied in yet ([`LocalAgent::fill`]).
/// Dropped without `fill` and `finish`, its task would stay running.
#[must_use]
pub struct Start {
    /// What the task runner gets once the folder is filled.
    dispatch: Dispatch,
    /// The files the folder kept from its previous attempt, for the inputs.
    leftovers: Leftovers,
    /// The generation of copies when the attempt began (`TaskFolders::copies`).
    copies: u64,
}

impl Start {
    /// The attempt's communication token.
    pub fn token(&self) -> &str {
        &self.dispatch.request.communication_token
    }

    /// The task's id.
    pub fn task_id(&self) -> &str {
        &self.dispatch.request.task_id
    }

    /// How many files `fill` copies: the payload and each data dependency.
    pub fn inputs(&self) -> usize {
        1 + self.dispatch.request.data_dependencies.len()
    }
}

impl LocalAgent {
    /// Starts the oldest task whose dependencies are all completed, in one step, as the
    /// scheduler does in its loop and the attempt's own task (`pick_next`, then `fill`, and
    /// `unfilled` when that fails). `None` if no task is ready.
    ///
    /// # Errors
    /// As `pick_next` and `fill`.
    #[cfg(test)]
    pub(crate) fn start_next(&self) -> io::Result<Option<Dispatch>> {
        let Some(start) = self.pick_next()? else {
            return Ok(None);
        };
        let token = start.token().to_owned();
        self.fill(start)
            .inspect_err(|error| {
                self.unfilled(&token, error);
            })
            .map(Some)
    }

    /// Picks the oldest task whose dependencies are all completed, marks it running, and
    /// records its attempt with a new token and an empty data folder. `None` if no task is
    /// ready. The copies are left to [`fill`](Self::fill), outside the graph's lock: several
    /// attempts' copies (a fan-in's 10,000 inputs) are then made beside the other tasks.
    ///
    /// # Errors
    /// A data folder cannot be made.
    pub fn pick_next(&self) -> io::Result<Option<Start>> {
        let mut graph = self.lock();
        // The oldest ready task still pending; one of a paused session waits for its resume.
        let task_id = loop {
            let Some(id) = graph.readiness.pop() else {
                return Ok(None);
            };
            let Some(task) = graph
                .tasks
                .get(&id)
                .filter(|t| t.state == TaskState::Pending)
            else {
                continue;
            };
            match graph.sessions.get(&task.session_id).map(|s| s.status) {
                Some(SessionStatus::Running | SessionStatus::Closed) => break id,
                Some(SessionStatus::Paused) => {
                    let session = task.session_id.clone();
                    graph.readiness.park(&session, id);
                }
                // Cancelled, purged or deleted: its tasks are being cancelled.
                _ => {}
            }
        };
        let token = uuid::Uuid::new_v4().to_string();
        let Some(task) = graph.tasks.get(&task_id) else {
            return Ok(None);
        };
        // Taken before any copy, which may read data deleted meanwhile (see `give_back`).
        let copies = self.folders.copies();
        let (folder, leftovers) = match self.folders.take() {
            Ok(taken) => taken,
            Err(error) => {
                // Ready again, for when a folder can be made.
                graph.readiness.put_back(task_id);
                return Err(error);
            }
        };
        let data_folder = match folder.try_clone() {
            Ok(data_folder) => data_folder,
            Err(error) => {
                drop(leftovers);
                self.folders.give_back(folder, false, copies);
                graph.readiness.put_back(task_id);
                return Err(error);
            }
        };
        let request = ProcessRequest {
            communication_token: token.clone(),
            session_id: task.session_id.clone(),
            task_id: task.id.clone(),
            task_options: Some(task.options.clone()),
            expected_output_keys: task.expected_outputs.clone(),
            payload_id: task.payload_id.clone(),
            data_dependencies: task.data_dependencies.clone(),
            data_folder: folder.path().to_string_lossy().into_owned(),
            configuration: Some(Configuration {
                data_chunk_max_size: CHUNK_SIZE as i32,
            }),
        };
        graph.set_task_state(&task_id, TaskState::Running, None);
        graph
            .attempts
            .insert(token, Attempt::new(task_id, folder, copies));
        Ok(Some(Start {
            dispatch: Dispatch {
                request,
                data_folder,
            },
            leftovers,
            copies,
        }))
    }

    /// Copies the picked task's payload and dependencies into its data folder, as files named
    /// by result id (a result completed without data is an empty file, as in ArmoniK), over
    /// the files the folder kept from its previous attempt first; those not used go to the
    /// spares, so the guest finds nothing else.
    ///
    /// # Errors
    /// A copy fails (I/O, or a stored file that is not a regular file). The attempt is still
    /// recorded: end it with [`unfilled`](Self::unfilled).
    pub fn fill(&self, start: Start) -> io::Result<Dispatch> {
        let Start {
            dispatch,
            mut leftovers,
            copies,
        } = start;
        let request = &dispatch.request;
        let folder = &dispatch.data_folder;
        let inputs = std::iter::once(&request.payload_id).chain(&request.data_dependencies);
        self.folders.copy_inputs(
            &self.store,
            inputs.map(String::as_str),
            folder,
            &mut leftovers,
        )?;
        self.folders.settle(leftovers, folder, copies)?;
        Ok(dispatch)
    }

    /// Ends the attempt with `token`, whose folder could not be filled (`error`), as an
    /// attempt that failed before its guest ran (an agent error, which ArmoniK retries): its
    /// task is retried or fails, saying why. Returns the task's new state.
    pub fn unfilled(&self, token: &str, error: &io::Error) -> TaskState {
        let task_id = self.lock().attempts.get(token).map(|a| a.task_id.clone());
        tracing::warn!(task_id, %error, "cannot copy a task's inputs into its data folder");
        let status = Status::internal(format!(
            "cannot copy the task's payload and dependencies into its data folder: {error}"
        ));
        self.finish(token, &Err(status))
    }

    /// Applies the outcome of the attempt with `token`, as ArmoniK's post-processing does, and
    /// takes back its data folder. Returns the task's new state.
    ///
    /// `outcome` is `Ok` only once the attempt's guest returned (the task runner replies
    /// after it), so its folder may serve again; after an `Err` it is removed.
    pub fn finish(&self, token: &str, outcome: &Result<ProcessReply, Status>) -> TaskState {
        let mut graph = self.lock();
        let Some(mut attempt) = graph.attempts.remove(token) else {
            return TaskState::Error;
        };
        let copies = attempt.copies;
        let task_id = attempt.task_id.clone();
        let cancelling = graph
            .tasks
            .get(&task_id)
            .is_some_and(|t| t.state == TaskState::Cancelling);
        let output = outcome
            .as_ref()
            .map(|reply| reply.output.as_ref().and_then(|o| o.r#type.clone()));
        let state = match output {
            // Whatever it did, a task cancelled while running commits nothing (ArmoniK.Core
            // `Common/src/Pollster/TaskHandler.cs` drops its output).
            _ if cancelling => {
                self.discard(&attempt);
                graph.set_task_state(&task_id, TaskState::Cancelled, None);
                TaskState::Cancelled
            }
            Ok(Some(output::Type::Ok(_))) => match self.store_notified(&graph, &attempt) {
                Ok(sizes) => {
                    self.commit(&mut graph, &mut attempt, &sizes);
                    TaskState::Completed
                }
                Err(message) => {
                    self.discard(&attempt);
                    graph.fail(&task_id, TaskState::Error, message)
                }
            },
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
        // After the commit, which moves the notified files out of it; outside the graph's lock,
        // as emptying the folder is the attempt's own business.
        drop(graph);
        self.folders
            .give_back(attempt.folder, outcome.is_ok(), copies);
        state
    }

    /// Marks every task still pending as cancelled: nothing will ever produce what it waits
    /// for. Called once no task is running or ready.
    pub fn cancel_stuck(&self) {
        let mut graph = self.lock();
        let stuck: Vec<(String, String)> = graph
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Pending)
            .map(|task| {
                let missing: Vec<&str> = task
                    .data_dependencies
                    .iter()
                    .filter(|d| {
                        graph
                            .results
                            .get(*d)
                            .is_none_or(|r| r.state != ResultState::Completed)
                    })
                    .map(String::as_str)
                    .collect();
                let why = format!("its dependencies {} are never produced", missing.join(", "));
                (task.id.clone(), why)
            })
            .collect();
        for (id, why) in stuck {
            graph.fail(&id, TaskState::Cancelled, why);
        }
    }

    /// Moves each file the attempt notified into the store, before anything of the attempt
    /// is committed: all of them, or none and an error saying why.
    fn store_notified(&self, graph: &Graph, attempt: &Attempt) -> Result<Vec<u64>, String> {
        let mut sizes = Vec::with_capacity(attempt.notified.len());
        for (n, id) in attempt.notified.iter().enumerate() {
            let moved = if graph
                .results
                .get(id)
                .is_some_and(|r| r.state == ResultState::Completed)
            {
                Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "it is already completed, and a completed result never changes",
                ))
            } else {
                self.store.take_in(&attempt.folder, id)
            };
            match moved {
                Ok(size) => sizes.push(size),
                Err(error) => {
                    for stored in &attempt.notified[..n] {
                        let _ = self.store.remove(stored);
                    }
                    return Err(format!("cannot store the notified result {id}: {error}"));
                }
            }
        }
        Ok(sizes)
    }

    /// Makes what the attempt did visible, in ArmoniK's order (ArmoniK.Core
    /// `Common/src/Pollster/TaskHandler.cs` `PostProcessing`): results, their data, subtasks
    /// (taking over the outputs they are delegated), then the task's own completion.
    /// `sizes` are those of the notified files, in order.
    fn commit(&self, graph: &mut Graph, attempt: &mut Attempt, sizes: &[u64]) {
        for (id, result) in std::mem::take(&mut attempt.results) {
            graph.insert_result(id, result);
        }
        for (id, size) in attempt.notified.iter().zip(sizes) {
            graph.set_result_state(id, ResultState::Completed, *size);
        }
        for task in std::mem::take(&mut attempt.tasks) {
            for output in &task.expected_outputs {
                graph.set_owner(output, &task.id);
            }
            graph.add_task(task);
        }
        graph.set_task_state(&attempt.task_id, TaskState::Completed, None);
        self.changed.notify_one();
    }

    /// Drops the data of results the attempt created with data.
    fn discard(&self, attempt: &Attempt) {
        for (id, _) in &attempt.results {
            if let Err(error) = self.store.remove(id) {
                tracing::warn!(result_id = %id, %error, "cannot remove a discarded result's data");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::agent::Agent;
    use crate::proto::v1::agent::{self as pb, NotifyResultDataRequest};
    use crate::proto::v1::{Empty, Output, TaskOptions};

    /// A commit is all or nothing: when one notified file cannot be stored (here it was never
    /// written), the task fails, and the result stored before it is taken back.
    #[tokio::test]
    async fn a_commit_that_cannot_store_every_notified_result_stores_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let agent = LocalAgent::new(dir.path(), None).expect("agent");
        let session = agent.create_session(TaskOptions::default(), Vec::new());
        let payload = agent
            .create_result(&session, "payload", b"")
            .expect("payload");
        let (written, missing) = (
            agent
                .create_result_metadata(&session, "written")
                .expect("result"),
            agent
                .create_result_metadata(&session, "missing")
                .expect("result"),
        );
        let task = crate::local::client::TaskCreation {
            payload_id: payload,
            expected_outputs: vec![written.clone(), missing.clone()],
            ..Default::default()
        };
        agent
            .submit_tasks(&session, None, vec![task])
            .expect("submit");
        let request = agent.start_next().expect("start").expect("a task").request;
        let folder = Path::new(&request.data_folder);
        std::fs::write(folder.join(&written), b"data").expect("output");
        let notify = NotifyResultDataRequest {
            ids: [&written, &missing]
                .map(|id| pb::notify_result_data_request::ResultIdentifier {
                    session_id: request.session_id.clone(),
                    result_id: id.clone(),
                })
                .into(),
            communication_token: request.communication_token.clone(),
        };
        agent.notify_result_data(notify).await.expect("owned");
        let ok = ProcessReply {
            output: Some(Output {
                r#type: Some(output::Type::Ok(Empty {})),
            }),
        };
        let state = agent.finish(&request.communication_token, &Ok(ok));
        assert_eq!(state, TaskState::Error);
        for id in [&written, &missing] {
            assert_eq!(agent.result(id).map(|r| r.1), Some(ResultState::Aborted));
            assert!(agent.open_data(id).is_err(), "{id} was stored");
        }
    }

    /// Ends the attempt of `request` as its worker would on success.
    fn finish_ok(agent: &LocalAgent, request: &ProcessRequest) -> TaskState {
        let ok = ProcessReply {
            output: Some(Output {
                r#type: Some(output::Type::Ok(Empty {})),
            }),
        };
        agent.finish(&request.communication_token, &Ok(ok))
    }

    /// An input that cannot be copied (here the store's file of the payload became a
    /// directory) fails the attempt, not the whole graph: the task is retried as after any
    /// agent error, then fails saying why, its output is aborted, and its folder is removed,
    /// with the files an earlier attempt left in it.
    #[test]
    fn an_input_that_cannot_be_copied_fails_the_attempt_and_is_retried() {
        let dir = tempfile::tempdir().expect("temp dir");
        let agent = LocalAgent::new(dir.path(), None).expect("agent");
        let options = TaskOptions {
            max_retries: 1,
            ..TaskOptions::default()
        };
        let session = agent.create_session(options, Vec::new());
        // An attempt that returned: its folder keeps its files for the next attempt.
        let earlier = agent
            .create_result(&session, "earlier", b"input")
            .expect("payload");
        let task = crate::local::client::TaskCreation {
            payload_id: earlier,
            ..Default::default()
        };
        agent
            .submit_tasks(&session, None, vec![task])
            .expect("submit");
        let request = agent.start_next().expect("start").expect("a task").request;
        std::fs::write(Path::new(&request.data_folder).join("left"), b"x").expect("write");
        assert_eq!(finish_ok(&agent, &request), TaskState::Completed);
        // Larger than what the store keeps in memory: a file of its own.
        let payload = agent
            .create_result(&session, "payload", &[1; 100 << 10])
            .expect("payload");
        let stored = dir.path().join("results").join(&payload);
        std::fs::remove_file(&stored).expect("the payload is a file");
        std::fs::create_dir(&stored).expect("a directory in its place");
        let output = agent
            .create_result_metadata(&session, "output")
            .expect("output");
        let task = crate::local::client::TaskCreation {
            payload_id: payload,
            expected_outputs: vec![output.clone()],
            ..Default::default()
        };
        agent
            .submit_tasks(&session, None, vec![task])
            .expect("submit");
        for attempt in 0..2 {
            assert!(agent.start_next().is_err(), "attempt {attempt} started");
        }
        assert!(agent.start_next().expect("nothing left").is_none());
        let tasks = agent.tasks();
        let states: Vec<TaskState> = tasks.iter().map(|t| t.state).collect();
        assert_eq!(
            states,
            [TaskState::Completed, TaskState::Retried, TaskState::Error]
        );
        let message = tasks[2].message.as_deref().unwrap_or_default();
        assert!(
            message.contains("cannot copy the task's payload"),
            "{message}"
        );
        assert_eq!(
            agent.result(&output).map(|r| r.1),
            Some(ResultState::Aborted)
        );
        assert!(agent.lock().attempts.is_empty());
        let left = std::fs::read_dir(dir.path().join("tasks"))
            .expect("task folders")
            .count();
        assert_eq!(left, 0, "a failed attempt's folder is left");
    }

    /// An attempt's input copies stay in its folder, once it ended, for the next attempt in
    /// that folder: the library blob's copy is written where it was, the payload over the
    /// earlier payload's file, and the attempt finds its inputs and nothing else. No copy
    /// passes through the spares.
    #[test]
    fn input_copies_stay_in_place_for_the_next_attempt() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let agent = LocalAgent::new(dir.path(), None).expect("agent");
        let session = agent.create_session(TaskOptions::default(), Vec::new());
        let blob = agent
            .create_result(&session, "blob", &[7; 4096])
            .expect("blob");
        let files = |folder: &Path| {
            let mut files: Vec<(String, u64)> = std::fs::read_dir(folder)
                .expect("list")
                .map(|entry| {
                    let entry = entry.expect("entry");
                    let name = entry.file_name().into_string().expect("UTF-8");
                    (name, entry.metadata().expect("stat").ino())
                })
                .collect();
            files.sort();
            files
        };
        let mut attempts = Vec::new();
        // The second payload of the blob's size: only the blob's reservation keeps it off the
        // blob's file.
        for (n, bytes) in [b"first".as_slice(), &[9; 4096]].into_iter().enumerate() {
            let payload = agent
                .create_result(&session, &format!("payload-{n}"), bytes)
                .expect("payload");
            let task = crate::local::client::TaskCreation {
                payload_id: payload.clone(),
                data_dependencies: vec![blob.clone()],
                ..Default::default()
            };
            agent
                .submit_tasks(&session, None, vec![task])
                .expect("submit");
            let request = agent.start_next().expect("start").expect("a task").request;
            let folder = std::path::PathBuf::from(&request.data_folder);
            let inputs = files(&folder);
            let mut names = vec![blob.as_str(), payload.as_str()];
            names.sort_unstable();
            assert!(inputs.iter().map(|(name, _)| name).eq(names), "{inputs:?}");
            assert_eq!(std::fs::read(folder.join(&payload)).expect("read"), bytes);
            assert_eq!(finish_ok(&agent, &request), TaskState::Completed);
            assert_eq!(files(&folder), inputs, "the copies stay in place");
            let inode = |id: &str| inputs.iter().find(|(name, _)| name == id).map(|f| f.1);
            attempts.push((folder, inode(&blob), inode(&payload)));
        }
        let [(first, blob_1, payload_1), (second, blob_2, payload_2)] = &attempts[..] else {
            unreachable!("two attempts");
        };
        assert_eq!(first, second, "the folder serves again");
        assert_eq!(blob_1, blob_2, "the blob is written where it was");
        assert_eq!(
            payload_1, payload_2,
            "the payload over the earlier one's file"
        );
        let spares = std::fs::read_dir(dir.path().join("spares"))
            .expect("spares")
            .count();
        assert_eq!(spares, 0, "no copy passed through the spares");
    }
}
