//! `armonik-wasm submit` against a small fake of ArmoniK's control plane (the `armonik` crate's
//! server traits), until `armonik-wasm dev` can play it: the calls `submit` makes, in order,
//! with what ArmoniK needs (the code as a data dependency named by `LibraryBlobId`), and what
//! it does with the events, the outputs and a failed task.
//!
//! The fake "runs" a root task by copying its payload to its first output, or fails it when
//! the payload starts with `fail`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use armonik::server::{
    EventsService, EventsServiceExt, RequestContext, ResultsService, ResultsServiceExt,
    SessionsService, SessionsServiceExt, TasksService, TasksServiceExt,
};
use armonik::{ResultStatus, TaskOptions, TaskStatus, events, results, sessions, tasks};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tonic::Status;

use common::{Ran, armonik_wasm_command, guest, path};

#[derive(Default)]
struct State {
    results: HashMap<String, results::Raw>,
    data: HashMap<String, Vec<u8>>,
    tasks: HashMap<String, tasks::Raw>,
    /// Chunks of each upload, to check the files were streamed.
    upload_chunks: Vec<usize>,
    submitted_options: Option<TaskOptions>,
    closed: bool,
}

#[derive(Clone)]
struct Fake {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<events::Update>,
}

const CHUNK: usize = 1000;

impl Fake {
    fn new() -> Self {
        Self {
            state: Arc::default(),
            events: broadcast::channel(1024).0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state")
    }

    fn new_result(&self, session_id: &str, name: &str, status: ResultStatus) -> results::Raw {
        let raw = results::Raw {
            session_id: session_id.to_owned(),
            name: name.to_owned(),
            result_id: uuid::Uuid::new_v4().to_string(),
            status,
            ..Default::default()
        };
        self.state()
            .results
            .insert(raw.result_id.clone(), raw.clone());
        raw
    }

    fn set_result(&self, id: &str, status: ResultStatus, data: Option<Vec<u8>>) {
        let mut state = self.state();
        if let Some(data) = data {
            state.data.insert(id.to_owned(), data);
        }
        if let Some(raw) = state.results.get_mut(id) {
            raw.status = status.clone();
        }
        drop(state);
        let _ = self.events.send(events::Update::ResultStatusUpdate(
            events::ResultStatusUpdate {
                result_id: id.to_owned(),
                status,
            },
        ));
    }

    fn set_task(&self, id: &str, status: TaskStatus, error: Option<String>) {
        if let Some(task) = self.state().tasks.get_mut(id) {
            task.status = status.clone();
            if let Some(error) = error {
                task.output = tasks::Output::Error(error);
            }
        }
        let _ = self
            .events
            .send(events::Update::TaskStatusUpdate(events::TaskStatusUpdate {
                task_id: id.to_owned(),
                status,
            }));
    }

    /// What a worker would do with the task, a little later.
    async fn run(self, task: tasks::Raw) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        self.set_task(&task.task_id, TaskStatus::Processing, None);
        let payload = self
            .state()
            .data
            .get(&task.payload_id)
            .cloned()
            .unwrap_or_default();
        if payload.starts_with(b"fail") {
            self.set_task(
                &task.task_id,
                TaskStatus::Error,
                Some(String::from_utf8_lossy(&payload).into_owned()),
            );
            for id in &task.expected_output_ids {
                self.set_result(id, ResultStatus::Aborted, None);
            }
        } else {
            self.set_result(
                &task.expected_output_ids[0],
                ResultStatus::Completed,
                Some(payload),
            );
            self.set_task(&task.task_id, TaskStatus::Completed, None);
        }
    }
}

macro_rules! unimplemented_methods {
    ($($module:ident :: $method:ident),* $(,)?) => {
        $(
            async fn $method(
                self: Arc<Self>,
                _: $module::$method::Request,
                _: RequestContext,
            ) -> Result<$module::$method::Response, Status> {
                Err(Status::unimplemented(stringify!($method)))
            }
        )*
    };
}

impl SessionsService for Fake {
    async fn create(
        self: Arc<Self>,
        request: sessions::create::Request,
        _: RequestContext,
    ) -> Result<sessions::create::Response, Status> {
        if request.default_task_options.max_retries < 1 {
            return Err(Status::invalid_argument("max_retries must be 1 or more"));
        }
        Ok(sessions::create::Response {
            session_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    async fn close(
        self: Arc<Self>,
        _: sessions::close::Request,
        _: RequestContext,
    ) -> Result<sessions::close::Response, Status> {
        self.state().closed = true;
        Ok(sessions::close::Response::default())
    }

    unimplemented_methods!(
        sessions::list,
        sessions::get,
        sessions::cancel,
        sessions::pause,
        sessions::resume,
        sessions::purge,
        sessions::delete,
        sessions::stop_submission,
    );
}

impl ResultsService for Fake {
    async fn get_service_configuration(
        self: Arc<Self>,
        _: results::get_service_configuration::Request,
        _: RequestContext,
    ) -> Result<results::get_service_configuration::Response, Status> {
        Ok(results::get_service_configuration::Response {
            data_chunk_max_size: CHUNK as i32,
        })
    }

    async fn create_metadata(
        self: Arc<Self>,
        request: results::create_metadata::Request,
        _: RequestContext,
    ) -> Result<results::create_metadata::Response, Status> {
        let results = request
            .results
            .iter()
            .map(|r| self.new_result(&request.session_id, &r.name, ResultStatus::Created))
            .collect();
        Ok(results::create_metadata::Response { results })
    }

    async fn create(
        self: Arc<Self>,
        request: results::create::Request,
        _: RequestContext,
    ) -> Result<results::create::Response, Status> {
        let mut created = Vec::new();
        for item in request.results {
            let raw = self.new_result(&request.session_id, &item.name, ResultStatus::Completed);
            self.state().data.insert(raw.result_id.clone(), item.data);
            created.push(raw);
        }
        Ok(results::create::Response { results: created })
    }

    async fn get(
        self: Arc<Self>,
        request: results::get::Request,
        _: RequestContext,
    ) -> Result<results::get::Response, Status> {
        match self.state().results.get(&request.id) {
            Some(result) => Ok(results::get::Response {
                result: result.clone(),
            }),
            None => Err(Status::not_found(request.id)),
        }
    }

    async fn download(
        self: Arc<Self>,
        request: results::download::Request,
        _: RequestContext,
    ) -> Result<impl Stream<Item = Result<results::download::Response, Status>> + Send, Status>
    {
        let data = self
            .state()
            .data
            .get(&request.result_id)
            .cloned()
            .ok_or_else(|| Status::not_found(request.result_id))?;
        let chunks: Vec<_> = data
            .chunks(CHUNK)
            .map(|c| {
                Ok(results::download::Response {
                    data_chunk: c.to_vec(),
                })
            })
            .collect();
        Ok(futures::stream::iter(chunks))
    }

    async fn upload(
        self: Arc<Self>,
        request: impl Stream<Item = Result<results::upload::Request, Status>> + Send + 'static,
        _: RequestContext,
    ) -> Result<results::upload::Response, Status> {
        let mut request = std::pin::pin!(request);
        let Some(Ok(results::upload::Request::Identifier { result_id, .. })) = request.next().await
        else {
            return Err(Status::invalid_argument("identifier first"));
        };
        let mut data = Vec::new();
        while let Some(chunk) = request.next().await {
            match chunk? {
                results::upload::Request::DataChunk(chunk) => {
                    if chunk.len() > CHUNK {
                        return Err(Status::invalid_argument("chunk too large"));
                    }
                    self.state().upload_chunks.push(chunk.len());
                    data.extend(chunk);
                }
                _ => return Err(Status::invalid_argument("identifier twice")),
            }
        }
        self.set_result(&result_id, ResultStatus::Completed, Some(data));
        let result = self.state().results[&result_id].clone();
        Ok(results::upload::Response { result })
    }

    unimplemented_methods!(
        results::list,
        results::get_owner_task_id,
        results::import,
        results::delete_data,
    );
}

impl TasksService for Fake {
    async fn submit(
        self: Arc<Self>,
        request: tasks::submit::Request,
        _: RequestContext,
    ) -> Result<tasks::submit::Response, Status> {
        let mut items = Vec::new();
        for item in request.items {
            let task = tasks::Raw {
                task_id: uuid::Uuid::new_v4().to_string(),
                session_id: request.session_id.clone(),
                payload_id: item.payload_id.clone(),
                data_dependencies: item.data_dependencies.clone(),
                expected_output_ids: item.expected_output_keys.clone(),
                status: TaskStatus::Submitted,
                ..Default::default()
            };
            {
                let mut state = self.state();
                state.submitted_options = item.task_options.clone();
                for id in &task.expected_output_ids {
                    if let Some(result) = state.results.get_mut(id) {
                        result.owner_task_id = task.task_id.clone();
                    }
                }
                state.tasks.insert(task.task_id.clone(), task.clone());
            }
            let _ = self.events.send(events::Update::NewTask(events::NewTask {
                task_id: task.task_id.clone(),
                payload_id: task.payload_id.clone(),
                status: TaskStatus::Submitted,
                expected_output_keys: task.expected_output_ids.clone(),
                data_dependencies: task.data_dependencies.clone(),
                ..Default::default()
            }));
            items.push(tasks::submit::ResponseItem {
                task_id: task.task_id.clone(),
                expected_output_ids: task.expected_output_ids.clone(),
                data_dependencies: task.data_dependencies.clone(),
                payload_id: task.payload_id.clone(),
            });
            tokio::spawn(Fake::clone(&self).run(task));
        }
        Ok(tasks::submit::Response { items })
    }

    async fn get(
        self: Arc<Self>,
        request: tasks::get::Request,
        _: RequestContext,
    ) -> Result<tasks::get::Response, Status> {
        match self.state().tasks.get(&request.task_id) {
            Some(task) => Ok(tasks::get::Response { task: task.clone() }),
            None => Err(Status::not_found(request.task_id)),
        }
    }

    unimplemented_methods!(
        tasks::list,
        tasks::list_detailed,
        tasks::cancel,
        tasks::get_result_ids,
        tasks::count_status,
    );
}

impl EventsService for Fake {
    async fn subscribe(
        self: Arc<Self>,
        request: events::subscribe::Request,
        _: RequestContext,
    ) -> Result<impl Stream<Item = Result<events::subscribe::Response, Status>> + Send, Status>
    {
        let receiver = self.events.subscribe();
        // Replays what exists, as Core does, then streams the changes.
        let replay: Vec<events::Update> = self
            .state()
            .results
            .values()
            .map(|r| {
                events::Update::NewResult(events::NewResult {
                    result_id: r.result_id.clone(),
                    owner_id: r.owner_task_id.clone(),
                    status: r.status.clone(),
                })
            })
            .collect();
        let live = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(update) => return Some((update, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let session_id = request.session_id;
        Ok(futures::stream::iter(replay)
            .chain(live)
            .map(move |update| {
                Ok(events::subscribe::Response {
                    session_id: session_id.clone(),
                    update,
                })
            }))
    }
}

/// The fake, served on a free TCP port of 127.0.0.1 from a runtime of its own.
fn serve(fake: &Fake) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let fake = fake.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            tonic::transport::Server::builder()
                .add_service(fake.clone().sessions_server())
                .add_service(fake.clone().results_server())
                .add_service(fake.clone().tasks_server())
                .add_service(fake.events_server())
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .expect("serve");
        });
    });
    endpoint
}

fn submit(endpoint: &str, args: &[&str]) -> Ran {
    let mut all = vec!["submit", "--endpoint", endpoint];
    all.extend_from_slice(args);
    let output = armonik_wasm_command(&all)
        .output()
        .expect("armonik-wasm starts");
    Ran {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn submit_streams_the_inputs_follows_the_events_and_downloads_the_output() {
    let fake = Fake::new();
    let endpoint = serve(&fake);
    let dir = tempfile::tempdir().expect("temp dir");
    let payload: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let payload_file = dir.path().join("payload.bin");
    std::fs::write(&payload_file, &payload).expect("payload");
    let dep = dir.path().join("dep.txt");
    std::fs::write(&dep, b"a dependency").expect("dep");
    let out = dir.path().join("out");
    let echo = guest("echo");
    let ran = submit(
        &endpoint,
        &[
            path(&echo),
            "--payload",
            path(&payload_file),
            "--dep",
            &format!("extra={}", path(&dep)),
            "--option",
            "Key=Value",
            "--outputs",
            path(&out),
        ],
    );
    assert!(ran.success, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(std::fs::read(out.join("output")).expect("output"), payload);
    assert!(ran.stdout.contains("output: 2500 bytes"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("1 tasks run (1 completed)"),
        "{}",
        ran.stdout
    );

    let state = fake.state();
    assert!(state.closed, "the session is closed at the end");
    // Every file went in chunks of at most the server's size: the component (95 KB) in many.
    let component_size = std::fs::metadata(&echo).expect("component").len() as usize;
    assert!(
        state.upload_chunks.len() >= component_size / CHUNK,
        "{:?}",
        state.upload_chunks
    );
    let options = state.submitted_options.clone().expect("task options");
    assert_eq!(options.options["ConventionVersion"], "v1");
    assert_eq!(options.options["Key"], "Value");
    let library = &options.options["LibraryBlobId"];
    let task = state.tasks.values().next().expect("the root task");
    assert_eq!(&task.data_dependencies[0], library, "the code comes first");
    assert_eq!(
        state.data[library],
        std::fs::read(&echo).expect("component")
    );
    assert_eq!(state.data[&task.data_dependencies[1]], b"a dependency");
    assert_eq!(state.results[&task.data_dependencies[1]].name, "extra");
}

#[test]
fn a_failed_root_task_fails_submit_with_its_error() {
    let fake = Fake::new();
    let endpoint = serve(&fake);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let ran = submit(
        &endpoint,
        &[
            path(&guest("echo")),
            "--payload-text",
            "fail: on purpose",
            "--outputs",
            path(&out),
        ],
    );
    assert!(!ran.success, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("output: not produced (aborted)"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stderr.contains("error: fail: on purpose"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stdout.contains("1 tasks run (1 error)"),
        "{}",
        ran.stdout
    );
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    assert!(!out.join("output").exists());
}

#[test]
fn a_session_the_control_plane_refuses_is_reported() {
    let fake = Fake::new();
    let endpoint = serve(&fake);
    let ran = submit(&endpoint, &[path(&guest("echo")), "--max-retries", "0"]);
    assert!(!ran.success);
    assert_eq!(ran.stderr.trim().lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("cannot create a session: max_retries must be 1 or more"),
        "{}",
        ran.stderr
    );
}
