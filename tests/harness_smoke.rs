//! Checks of the test harness itself (`tests/common`), none of which needs the host to work:
//! guest build, the fake agent driven by the `armonik` crate's Agent client over its socket,
//! the task folder / request builder, and the worker client against an in-process worker.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use armonik::agent::create_tasks::{
    InitRequest, Request as CreateTask, Response, Status as Creation,
};
use armonik::server::RequestContext;
use armonik::worker::{health_check, process};
use armonik::{DataChunk, InitTaskRequest, Output, ResultStatus, TaskOptions, TaskRequestHeader};
use common::*;
use tonic::Code;

fn status(error: armonik::client::RequestError) -> tonic::Status {
    request_error_status(error)
}

fn bound_agent() -> (FakeAgent, TaskFolder) {
    let agent = FakeAgent::start();
    let folder = TaskFolder::new();
    agent.bind(folder.token(), "session-1", folder.path());
    (agent, folder)
}

#[test]
fn guests_build_as_components() {
    for name in GUESTS {
        let path = guest(name);
        let bytes = std::fs::read(&path).expect("guest file is readable");
        assert!(
            bytes.starts_with(&COMPONENT_HEADER),
            "{} does not start with the component header: {:02x?}",
            path.display(),
            &bytes[..bytes.len().min(8)]
        );
    }
}

#[tokio::test]
async fn fake_agent_unary_calls_with_the_right_token() {
    let (agent, folder) = bound_agent();
    let token = folder.token();
    let mut client = agent.client().await;

    let metadata = client
        .create_results_metadata(token, "session-1", ["a", "b"])
        .await
        .expect("CreateResultsMetaData");
    assert_eq!(metadata.len(), 2);
    assert_eq!(metadata[0].name, "a");
    assert_eq!(metadata[1].name, "b");
    assert_ne!(metadata[0].result_id, metadata[1].result_id);
    for result in &metadata {
        assert_eq!(result.session_id, "session-1");
        assert_eq!(result.status, ResultStatus::Created);
        assert!(uuid::Uuid::parse_str(&result.result_id).is_ok());
        assert!(result.created_at.is_some());
    }

    let created = client
        .create_results(token, "session-1", [("inline", b"data".to_vec())])
        .await
        .expect("CreateResults");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].name, "inline");
    assert!(
        !folder.contains(&created[0].result_id),
        "CreateResults writes nothing to disk"
    );

    let notified = client
        .notify_result_data(token, "session-1", [metadata[0].result_id.clone()])
        .await
        .expect("NotifyResultData");
    assert_eq!(notified, vec![metadata[0].result_id.clone()]);

    let submitted = client
        .submit_tasks(
            token,
            "session-1",
            Some(TaskOptions::default()),
            [armonik::agent::submit_tasks::RequestItem {
                expected_output_keys: vec![metadata[1].result_id.clone()],
                data_dependencies: vec![created[0].result_id.clone()],
                payload_id: created[0].result_id.clone(),
                task_options: None,
            }],
        )
        .await
        .expect("SubmitTasks");
    assert_eq!(submitted.len(), 1);
    assert_eq!(submitted[0].payload_id, created[0].result_id);
    assert_eq!(
        submitted[0].expected_output_ids,
        vec![metadata[1].result_id.clone()]
    );

    // Recorded state.
    let calls = agent.calls();
    let names: Vec<_> = calls.iter().map(|call| call.method).collect();
    assert_eq!(
        names,
        [
            methods::CREATE_RESULTS_METADATA,
            methods::CREATE_RESULTS,
            methods::NOTIFY_RESULT_DATA,
            methods::SUBMIT_TASKS
        ]
    );
    for call in &calls {
        assert!(call.is_ok(), "{call:?}");
        assert_eq!(call.token, token);
        assert_eq!(call.bound_token.as_deref(), Some(token));
        assert!(!call.session_ids.is_empty());
        assert!(
            call.session_ids.iter().all(|id| id == "session-1"),
            "{call:?}"
        );
    }
    assert!(matches!(
        &calls[2].request,
        AgentRequest::NotifyResultData(request) if request.result_ids == notified
    ));
    assert_eq!(agent.notified_ids(), notified);
    let results = agent.created_results();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].data, None);
    assert_eq!(results[2].data.as_deref(), Some(&b"data"[..]));
    let tasks = agent.submitted_tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].task_id, submitted[0].task_id);
    assert_eq!(tasks[0].creation.payload_id, created[0].result_id);
    assert!(tasks[0].request_task_options.is_some());

    agent.clear_records();
    assert!(agent.calls().is_empty());
    assert!(agent.notified_ids().is_empty());
}

#[tokio::test]
async fn fake_agent_notify_records_every_session_id() {
    let (agent, folder) = bound_agent();
    let mut client = agent.client().await;
    // A raw request whose ids carry different session ids (the crate's typed request cannot).
    let mut raw = armonik::api::v3::agent::agent_client::AgentClient::new(
        connect_channel(agent.address()).await.expect("connect"),
    );
    raw.notify_result_data(armonik::api::v3::agent::NotifyResultDataRequest {
        ids: vec![
            armonik::api::v3::agent::notify_result_data_request::ResultIdentifier {
                session_id: "session-1".into(),
                result_id: "r1".into(),
            },
            armonik::api::v3::agent::notify_result_data_request::ResultIdentifier {
                session_id: String::new(),
                result_id: "r2".into(),
            },
        ],
        communication_token: folder.token().into(),
    })
    .await
    .expect("NotifyResultData");
    client
        .notify_result_data(folder.token(), "session-1", ["r3"])
        .await
        .expect("NotifyResultData");
    let calls = agent.calls_to(methods::NOTIFY_RESULT_DATA);
    assert_eq!(calls[0].session_ids, ["session-1", ""]);
    assert_eq!(calls[1].session_ids, ["session-1"]);
    assert_eq!(agent.notified_ids(), ["r1", "r2", "r3"]);
}

#[tokio::test]
async fn fake_agent_rejects_a_wrong_or_missing_token() {
    let (agent, _folder) = bound_agent();
    let mut client = agent.client().await;

    let wrong = client
        .create_results_metadata("not-the-token", "session-1", ["a"])
        .await
        .map_err(status)
        .expect_err("a wrong token is rejected");
    assert_eq!(wrong.code(), Code::InvalidArgument);
    assert_eq!(wrong.message(), "Wrong communication token");

    let missing = client
        .notify_result_data("", "session-1", ["x"])
        .await
        .map_err(status)
        .expect_err("an empty token is rejected");
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(missing.message(), "Missing communication token");

    let data = client
        .call(armonik::agent::get_common_data::Request {
            communication_token: "nope".into(),
            result_id: "x".into(),
        })
        .await
        .map_err(status)
        .expect_err("a wrong token is rejected before anything else");
    assert_eq!(data.code(), Code::InvalidArgument);

    let calls = agent.calls();
    assert_eq!(calls.len(), 3);
    assert!(
        calls
            .iter()
            .all(|call| call.code() == Code::InvalidArgument)
    );
    assert!(agent.notified_ids().is_empty());
    assert!(agent.created_results().is_empty());
}

#[tokio::test]
async fn fake_agent_unbound_is_unavailable() {
    let agent = FakeAgent::start();
    let folder = TaskFolder::new();
    let mut client = agent.client().await;

    let unbound = client
        .submit_tasks(folder.token(), "session-1", None, [])
        .await
        .map_err(status)
        .expect_err("no task is bound");
    assert_eq!(unbound.code(), Code::Unavailable);
    assert_eq!(unbound.message(), "No task is accepting request");

    agent.bind(folder.token(), "session-1", folder.path());
    client
        .submit_tasks(folder.token(), "session-1", None, [])
        .await
        .expect("bound now");
    agent.unbind();
    let late = client
        .notify_result_data(folder.token(), "session-1", ["x"])
        .await
        .map_err(status)
        .expect_err("unbound again");
    assert_eq!(late.code(), Code::Unavailable);

    // The next task's token makes the previous one wrong.
    let next = TaskFolder::new();
    agent.bind(next.token(), "session-1", next.path());
    let stale = client
        .notify_result_data(folder.token(), "session-1", ["x"])
        .await
        .map_err(status)
        .expect_err("stale token");
    assert_eq!(stale.code(), Code::InvalidArgument);
    assert_eq!(stale.message(), "Wrong communication token");

    let calls = agent.calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[0].bound_token, None);
    assert_eq!(calls[3].bound_token.as_deref(), Some(next.token()));
}

#[tokio::test]
async fn fake_agent_resource_and_unimplemented_data() {
    let (agent, folder) = bound_agent();
    agent.add_resource("resource-1", b"resource bytes".to_vec());
    let mut client = agent.client().await;

    let response = client
        .call(armonik::agent::get_resource_data::Request {
            communication_token: folder.token().into(),
            result_id: "resource-1".into(),
        })
        .await
        .expect("GetResourceData");
    assert_eq!(response.result_id, "resource-1");
    assert_eq!(folder.read("resource-1"), b"resource bytes");

    let unknown = client
        .call(armonik::agent::get_resource_data::Request {
            communication_token: folder.token().into(),
            result_id: "unknown".into(),
        })
        .await
        .map_err(status)
        .expect_err("unknown resource");
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(!folder.contains("unknown"));

    for result in [
        client
            .call(armonik::agent::get_common_data::Request {
                communication_token: folder.token().into(),
                result_id: "resource-1".into(),
            })
            .await
            .map(|_| ()),
        client
            .call(armonik::agent::get_direct_data::Request {
                communication_token: folder.token().into(),
                result_id: "resource-1".into(),
            })
            .await
            .map(|_| ()),
    ] {
        let error = result.map_err(status).expect_err("not implemented");
        assert_eq!(error.code(), Code::Unimplemented);
    }
    let methods: Vec<_> = agent.calls().iter().map(|call| call.method).collect();
    assert_eq!(
        methods,
        [
            methods::GET_RESOURCE_DATA,
            methods::GET_RESOURCE_DATA,
            methods::GET_COMMON_DATA,
            methods::GET_DIRECT_DATA
        ]
    );
}

fn init(token: &str) -> CreateTask {
    CreateTask::InitRequest {
        communication_token: token.into(),
        request: InitRequest {
            task_options: Some(TaskOptions {
                priority: 3,
                ..TaskOptions::default()
            }),
        },
    }
}

fn header(token: &str, outputs: &[&str], deps: &[&str]) -> CreateTask {
    CreateTask::InitTaskRequest {
        communication_token: token.into(),
        request: InitTaskRequest::Header(TaskRequestHeader {
            expected_output_keys: outputs.iter().map(|s| (*s).to_owned()).collect(),
            data_dependencies: deps.iter().map(|s| (*s).to_owned()).collect(),
        }),
    }
}

fn chunk(token: &str, data: &[u8]) -> CreateTask {
    CreateTask::DataChunk {
        communication_token: token.into(),
        chunk: DataChunk::Data(data.to_vec()),
    }
}

fn complete(token: &str) -> CreateTask {
    CreateTask::DataChunk {
        communication_token: token.into(),
        chunk: DataChunk::Complete,
    }
}

fn last(token: &str) -> CreateTask {
    CreateTask::InitTaskRequest {
        communication_token: token.into(),
        request: InitTaskRequest::LastTask,
    }
}

#[tokio::test]
async fn fake_agent_create_task_stream_reassembly() {
    let (agent, folder) = bound_agent();
    let token = folder.token().to_owned();
    let mut client = agent.client().await;
    let t = token.as_str();
    let messages = vec![
        init(t),
        header(t, &["out-1"], &["dep-1"]),
        chunk(t, b"hello "),
        chunk(t, b"world"),
        complete(t),
        header(t, &["out-2"], &[]),
        chunk(t, b""),
        complete(t),
        last(t),
    ];
    let statuses = client
        .create_tasks(futures::stream::iter(messages))
        .await
        .expect("CreateTask");
    assert_eq!(statuses.len(), 2);

    let created = agent.created_tasks();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].payload, b"hello world");
    assert_eq!(created[0].expected_output_keys, ["out-1"]);
    assert_eq!(created[0].data_dependencies, ["dep-1"]);
    assert_eq!(created[0].session_id, "session-1");
    assert_eq!(
        created[0]
            .task_options
            .as_ref()
            .map(|options| options.priority),
        Some(3)
    );
    assert_eq!(created[1].payload, b"");
    assert_eq!(created[1].expected_output_keys, ["out-2"]);
    for (status, task) in statuses.iter().zip(&created) {
        match status {
            Creation::TaskInfo {
                task_id,
                payload_id,
                expected_output_keys,
                ..
            } => {
                assert_eq!(task_id, &task.task_id);
                assert_eq!(payload_id, &task.payload_id);
                assert_eq!(expected_output_keys, &task.expected_output_keys);
            }
            Creation::Error(error) => panic!("unexpected creation error {error}"),
        }
        // Core writes each payload into the task folder.
        assert_eq!(folder.read(&task.payload_id), task.payload);
    }

    let calls = agent.calls_to(methods::CREATE_TASK);
    assert_eq!(calls.len(), 1);
    assert!(calls[0].is_ok());
    assert_eq!(calls[0].token, token);
    assert!(matches!(&calls[0].request, AgentRequest::CreateTask(m) if m.len() == 9));
}

#[tokio::test]
async fn fake_agent_create_task_errors() {
    let (agent, folder) = bound_agent();
    let t = folder.token().to_owned();
    let t = t.as_str();
    let mut client = agent.client().await;

    // Token problems are reported in the reply, not as a status (the crate's `create_tasks`
    // would turn that into INTERNAL, so use the raw call).
    let reply = client
        .call(futures::stream::iter(vec![
            init("wrong"),
            header("wrong", &[], &[]),
            chunk("wrong", b"x"),
            complete("wrong"),
            last("wrong"),
        ]))
        .await
        .expect("a reply");
    assert!(
        matches!(&reply, Response::Error { error, .. } if error == "Wrong communication token"),
        "{reply:?}"
    );
    let reply = client
        .call(futures::stream::iter(vec![init(""), last("")]))
        .await
        .expect("a reply");
    assert!(
        matches!(&reply, Response::Error { error, .. } if error == "Missing communication token"),
        "{reply:?}"
    );
    let via_helper = client
        .create_tasks(futures::stream::iter(vec![init("wrong"), last("wrong")]))
        .await
        .map_err(status)
        .expect_err("the crate maps reply.error to a status");
    assert_eq!(via_helper.code(), Code::Internal);

    // Grammar violations are UNKNOWN (Core throws InvalidOperationException).
    for messages in [
        vec![init(t), header(t, &[], &[]), complete(t), last(t)], // no data chunk
        vec![init(t), header(t, &[], &[]), chunk(t, b"x"), last(t)], // no data_complete
        vec![init(t), last(t)],                                   // no task
        vec![header(t, &[], &[]), chunk(t, b"x"), complete(t), last(t)], // no InitRequest
    ] {
        let error = client
            .call(futures::stream::iter(messages))
            .await
            .map_err(status)
            .expect_err("invalid grammar");
        assert_eq!(error.code(), Code::Unknown, "{error:?}");
    }
    // A stream ending early.
    let reply = client
        .call(futures::stream::iter(vec![
            init(t),
            header(t, &[], &[]),
            chunk(t, b"x"),
        ]))
        .await
        .expect("a reply");
    assert!(
        matches!(&reply, Response::Error { error, .. } if error == "Missing message in request"),
        "{reply:?}"
    );

    // Unbound: also a reply error.
    agent.unbind();
    let reply = client
        .call(futures::stream::iter(vec![
            init(t),
            header(t, &[], &[]),
            chunk(t, b"x"),
            complete(t),
            last(t),
        ]))
        .await
        .expect("a reply");
    assert!(
        matches!(&reply, Response::Error { error, .. } if error == "No task is accepting request"),
        "{reply:?}"
    );

    assert!(agent.created_tasks().is_empty());
    assert_eq!(folder.files(), Vec::<String>::new());
    let calls = agent.calls_to(methods::CREATE_TASK);
    assert_eq!(calls.len(), 9);
    assert!(
        matches!(&calls[0].outcome, Outcome::ReplyError(e) if e == "Wrong communication token")
    );
    assert_eq!(calls[3].code(), Code::Unknown);
}

#[tokio::test]
async fn fake_agent_injected_faults() {
    let (agent, folder) = bound_agent();
    let mut client = agent.client().await;
    agent.inject_error(
        methods::SUBMIT_TASKS,
        Code::FailedPrecondition,
        "no more tasks",
    );
    agent.inject_delay(methods::NOTIFY_RESULT_DATA, Duration::from_millis(300));

    let error = client
        .submit_tasks(folder.token(), "session-1", None, [])
        .await
        .map_err(status)
        .expect_err("injected");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(error.message(), "no more tasks");

    let start = std::time::Instant::now();
    client
        .notify_result_data(folder.token(), "session-1", ["x"])
        .await
        .expect("delayed but fine");
    assert!(start.elapsed() >= Duration::from_millis(300));

    agent.clear_faults();
    client
        .submit_tasks(folder.token(), "session-1", None, [])
        .await
        .expect("no fault any more");
    assert_eq!(agent.calls().len(), 3);
}

#[tokio::test]
async fn fake_agent_stop_and_restart() {
    let (mut agent, folder) = bound_agent();
    let Address::Unix(socket) = agent.address().clone() else {
        panic!("unix by default")
    };
    let mut client = agent.client().await;
    client
        .notify_result_data(folder.token(), "session-1", ["before"])
        .await
        .expect("running");

    agent.stop();
    assert!(!agent.is_running());
    assert!(!socket.exists(), "the socket is removed");
    let down = client
        .notify_result_data(folder.token(), "session-1", ["during"])
        .await
        .map_err(status)
        .expect_err("agent down");
    // On an established connection the first call may see the broken pipe (UNKNOWN "transport
    // error") rather than UNAVAILABLE.
    assert!(
        matches!(down.code(), Code::Unavailable | Code::Unknown),
        "{down:?}"
    );
    assert!(connect_channel(agent.address()).await.is_err());

    agent.restart();
    assert!(socket.exists());
    let mut client = agent.client().await;
    client
        .notify_result_data(folder.token(), "session-1", ["after"])
        .await
        .expect("running again, still bound");
    assert_eq!(agent.notified_ids(), ["before", "after"]);
}

#[tokio::test]
async fn fake_agent_over_tcp() {
    let agent = FakeAgent::start_tcp();
    let Address::Tcp(addr) = agent.address().clone() else {
        panic!("tcp")
    };
    assert_ne!(addr.port(), 0);
    assert_eq!(agent.address().socket_type(), "tcp");
    assert_eq!(agent.address().to_arg(), format!("http://{addr}"));
    let folder = TaskFolder::new();
    agent.bind(folder.token(), "s", folder.path());
    let mut client = agent.client().await;
    let results = client
        .create_results_metadata(folder.token(), "s", ["x"])
        .await
        .expect("over TCP");
    assert_eq!(results[0].session_id, "s");
}

#[test]
fn task_folder_and_request_builder() {
    let folder = TaskFolder::new();
    assert_eq!(
        folder.path().file_name().and_then(|name| name.to_str()),
        Some(folder.token())
    );
    assert!(folder.path().is_absolute());

    let request = folder
        .process_request()
        .payload(b"payload".to_vec())
        .build();
    assert_eq!(request.communication_token, folder.token());
    assert_eq!(request.data_folder, folder.path().display().to_string());
    assert_eq!(request.configuration.data_chunk_max_size, 2 * 1024 * 1024);
    assert_eq!(request.expected_output_keys.len(), 1);
    assert!(request.data_dependencies.is_empty());
    assert_eq!(request.task_options.max_duration.seconds, 300);
    assert_eq!(folder.read(&request.payload_id), b"payload");
    for id in [&request.session_id, &request.task_id, &request.payload_id] {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }

    let request = folder
        .process_request()
        .token("t")
        .session_id("s")
        .task_id("task###1")
        .payload_id("p")
        .without_payload_file()
        .dependency("d1", b"one".to_vec())
        .expected_output_keys(["o1", "o2"])
        .option("key", "value")
        .max_duration(Duration::from_millis(1500))
        .max_retries(4)
        .data_chunk_max_size(1024)
        .build();
    assert_eq!(request.communication_token, "t");
    assert_eq!(request.session_id, "s");
    assert_eq!(request.task_id, "task###1");
    assert_eq!(request.payload_id, "p");
    assert!(!folder.contains("p"));
    assert_eq!(request.data_dependencies, ["d1"]);
    assert_eq!(folder.read("d1"), b"one");
    assert_eq!(request.expected_output_keys, ["o1", "o2"]);
    assert_eq!(
        request.task_options.options.get("key").map(String::as_str),
        Some("value")
    );
    assert_eq!(request.task_options.max_duration.seconds, 1);
    assert_eq!(request.task_options.max_duration.nanos, 500_000_000);
    assert_eq!(request.task_options.max_retries, 4);
    assert_eq!(request.configuration.data_chunk_max_size, 1024);

    folder.write("w", b"x");
    assert_eq!(folder.try_read("w").as_deref(), Some(&b"x"[..]));
    assert_eq!(folder.try_read("nope"), None);
}

/// An in-process worker to check [`WorkerClient`]: payload `sleep` sleeps 2 s; it records the
/// `grpc-timeout` header it sees.
#[derive(Default)]
struct InProcessWorker {
    timeouts: Mutex<Vec<Option<String>>>,
}

impl armonik::server::WorkerService for InProcessWorker {
    async fn health_check(
        self: Arc<Self>,
        _request: health_check::Request,
        _context: RequestContext,
    ) -> Result<health_check::Response, tonic::Status> {
        Ok(health_check::Response::Serving)
    }

    async fn process(
        self: Arc<Self>,
        request: process::Request,
        context: RequestContext,
    ) -> Result<process::Response, tonic::Status> {
        let timeout = context
            .headers()
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        self.timeouts.lock().expect("not poisoned").push(timeout);
        let payload =
            std::fs::read(std::path::Path::new(&request.data_folder).join(&request.payload_id))
                .map_err(|error| tonic::Status::internal(error.to_string()))?;
        let output = match payload.as_slice() {
            b"sleep" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Output::Ok
            }
            b"fail" => Output::Error {
                details: "asked to fail".into(),
            },
            _ => Output::Ok,
        };
        Ok(process::Response { output })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_client_against_an_in_process_worker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("worker.sock");
    let service = Arc::new(InProcessWorker::default());
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    let server = tokio::spawn({
        let service = service.clone();
        async move {
            tonic::transport::Server::builder()
                .add_service(
                    armonik::api::v3::worker::worker_server::WorkerServer::from_arc(service),
                )
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
                .await
        }
    });

    let client = WorkerClient::connect(&Address::Unix(socket))
        .await
        .expect("connect");
    assert_eq!(
        client.health_check().await.expect("health"),
        ServingStatus::Serving
    );

    let folder = TaskFolder::new();
    let ok = folder.process_request().payload(b"hi".to_vec()).build();
    assert_eq!(client.process(ok).await.expect("process"), Output::Ok);
    let fail = folder.process_request().payload(b"fail".to_vec()).build();
    assert_eq!(
        client.process(fail.clone()).await.expect("process"),
        Output::Error {
            details: "asked to fail".into()
        }
    );
    let raw = client.process_raw(fail).await.expect("process_raw");
    assert!(raw.output.is_some());

    // Deadline = max_duration: DEADLINE_EXCEEDED after ~500 ms; HealthCheck still answers.
    let slow = folder
        .process_request()
        .payload(b"sleep".to_vec())
        .max_duration(Duration::from_millis(500))
        .build();
    let start = std::time::Instant::now();
    let (timed_out, health) = tokio::join!(client.process(slow), client.health_check());
    let timed_out = timed_out.expect_err("deadline");
    assert!(
        matches!(timed_out.code(), Code::DeadlineExceeded),
        "{timed_out:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert_eq!(
        health.expect("health during process"),
        ServingStatus::Serving
    );

    let timeouts = service.timeouts.lock().expect("not poisoned").clone();
    assert_eq!(timeouts.len(), 4);
    assert_eq!(timeouts[0].as_deref(), Some("300000m"));
    assert_eq!(timeouts[3].as_deref(), Some("500000u"));
    server.abort();
}
