//! `armonik-wasm serve` driven as ArmoniK drives a worker: the official `armonik` crate plays
//! the polling agent (Agent server + Process client) over real unix sockets (and TCP), with
//! real data folders and guests built from `guests/`.

mod common;

use std::os::unix::fs::FileTypeExt as _;
use std::time::{Duration, Instant};

use armonik::Output;
use armonik::worker::health_check::Response as ServingStatus;
use common::*;
use tonic::Code;

/// `Output.error`'s details, or a panic naming what came instead.
fn error_details(result: Result<Output, tonic::Status>) -> String {
    match result {
        Ok(Output::Error { details }) => details,
        other => panic!("expected Output.error, got {other:?}"),
    }
}

/// Asserts `Output.ok`; `context` (e.g. the worker's log) is shown otherwise.
fn assert_ok(result: Result<Output, tonic::Status>, context: &str) {
    match result {
        Ok(Output::Ok) => {}
        other => panic!("expected Output.ok, got {other:?}\n{context}"),
    }
}

fn fnv1a(data: &[u8]) -> String {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[tokio::test]
async fn echo_returns_the_payload_byte_for_byte() {
    let harness = Harness::start("echo").await;
    let big: Vec<u8> = (0..5 * 1024 * 1024 + 7)
        .map(|i| (i * 31 % 256) as u8)
        .collect();
    for payload in [Vec::new(), vec![0, 255, 10, 13, 0], big] {
        let folder = TaskFolder::new();
        let request = folder.process_request().payload(payload.clone()).build();
        let output = request.expected_output_keys[0].clone();
        let session = request.session_id.clone();
        let result = harness.run_task(request).await;
        assert_ok(result, &harness.worker.log());
        assert_eq!(folder.read(&output), payload);
        let notifies = harness.agent.calls_to(methods::NOTIFY_RESULT_DATA);
        let last = notifies.last().expect("the guest notified its output");
        assert_eq!(last.token, folder.token(), "the host adds the task's token");
        assert_eq!(last.session_ids, vec![session]);
        assert!(last.is_ok());
    }
}

#[tokio::test]
async fn works_over_tcp_too() {
    let harness = Harness::start_tcp("echo").await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("over tcp").build();
    let output = request.expected_output_keys[0].clone();
    assert_ok(harness.run_task(request).await, "");
    assert_eq!(folder.read(&output), b"over tcp");
}

#[tokio::test]
async fn concat_reads_dependencies_in_order() {
    let harness = Harness::start("concat").await;
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .dependency("dep-b", "world")
        .dependency("dep-a", "hello ")
        .build();
    let output = request.expected_output_keys[0].clone();
    assert_ok(harness.run_task(request).await, "");
    assert_eq!(folder.read(&output), b"worldhello ");
}

#[tokio::test]
async fn fanout_creates_results_and_delegates_its_output() {
    let harness = Harness::start("fanout").await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("fanout 3").build();
    let output = request.expected_output_keys[0].clone();
    let session = request.session_id.clone();
    assert_ok(harness.run_task(request).await, "");

    // Ok without writing the output: it was delegated to the aggregation task.
    assert!(!folder.contains(&output));
    let submitted = harness.agent.submitted_tasks();
    assert_eq!(submitted.len(), 4, "3 parts and 1 aggregation");
    let aggregation = submitted
        .iter()
        .find(|t| t.creation.expected_output_keys == vec![output.clone()])
        .expect("a subtask produces the root's output");
    assert_eq!(aggregation.creation.data_dependencies.len(), 3);
    let payloads: Vec<Vec<u8>> = harness
        .agent
        .created_results()
        .into_iter()
        .filter_map(|r| r.data)
        .collect();
    for part in ["part 0", "part 1", "part 2", "sum"] {
        assert!(payloads.contains(&part.as_bytes().to_vec()), "{part}");
    }
    for call in harness.agent.calls() {
        assert_eq!(call.token, folder.token(), "{}", call.method);
        assert!(call.session_ids.iter().all(|s| *s == session), "{call:?}");
        assert!(call.is_ok(), "{call:?}");
    }
}

#[tokio::test]
async fn subtasks_of_a_shipped_component_run_it_too() {
    // No default component: the root runs from its library blob and submits subtasks that
    // name no component; they inherit the parent's selection (ArmoniK would give them only
    // the session's options).
    let agent = FakeAgent::start();
    let agent_address = agent.address().to_arg();
    let mut worker = Worker::spawn_with(
        &[
            "serve",
            "--worker-address",
            "{dir}/w.sock",
            "--agent-address",
            &agent_address,
        ],
        &[],
    );
    let client = worker
        .wait_serving(Address::Unix(worker.dir().join("w.sock")))
        .await;
    let fanout = std::fs::read(guest("fanout")).expect("fanout.wasm");
    let folder = TaskFolder::new();
    let mut request = folder
        .process_request()
        .payload("fanout 2")
        .dependency("lib", fanout)
        .option("ConventionVersion", "v1")
        .option("LibraryBlobId", "lib")
        .build();
    request.task_options.priority = 7;
    agent.bind_request(&request);
    assert_ok(client.process(request).await, &worker.log());
    let submitted = agent.submitted_tasks();
    assert_eq!(submitted.len(), 3, "2 parts and 1 aggregation");
    for task in &submitted {
        let options = task
            .request_task_options
            .as_ref()
            .expect("request options carry the selection");
        assert_eq!(
            options.options.get("ConventionVersion").map(String::as_str),
            Some("v1")
        );
        assert_eq!(
            options.options.get("LibraryBlobId").map(String::as_str),
            Some("lib")
        );
        assert_eq!(options.priority, 7, "the parent's priority");
        assert!(
            !task.creation.data_dependencies.contains(&"lib".to_owned()),
            "the blob is fetched by the subtask's host, not made a dependency"
        );
    }
}

#[tokio::test]
async fn every_agent_operation_reaches_the_agent_with_token_and_session() {
    let harness = Harness::start("probe").await;
    harness.agent.add_resource("res-1", "resource data");
    let folder = TaskFolder::new();
    let script = "ctx\nread dep-1\nmetadata a b\ncreate inline some text\nnotify extra-out hello\n\
                  submit dep-1 dep-1 -\ncreate-tasks subpayload - -\nresource res-1\n\
                  resource missing\ncommon res-1\ndirect res-1";
    let request = folder
        .process_request()
        .payload(script)
        .dependency("dep-1", "dependency")
        .expected_output("extra-out")
        .option("k", "v")
        .max_duration(Duration::from_secs(120))
        .build();
    let output = request.expected_output_keys[0].clone();
    let session = request.session_id.clone();
    assert_ok(harness.run_task(request.clone()).await, "");
    let report = String::from_utf8(folder.read(&output)).expect("utf-8 report");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 11, "{report}");

    let ctx = lines[0];
    for field in [
        format!("session_id={session}"),
        format!("task_id={}", request.task_id),
        format!("payload_id={}", request.payload_id),
        "data_dependencies=dep-1".to_owned(),
        format!("expected_output_ids={output}"),
        "data_folder=/data".to_owned(),
        "data_chunk_max_size=2097152".to_owned(),
        "options=k=v".to_owned(),
        "max_duration_ms=120000".to_owned(),
    ] {
        assert!(ctx.contains(&field), "{field} missing in {ctx}");
    }
    assert_eq!(lines[1], format!("read dep-1 10 {}", fnv1a(b"dependency")));
    assert!(
        lines[2].starts_with("ok a=") && lines[2].contains(" b="),
        "{}",
        lines[2]
    );
    assert!(lines[3].starts_with("ok inline="), "{}", lines[3]);
    assert_eq!(lines[4], "ok extra-out");
    assert!(lines[5].starts_with("ok "), "{}", lines[5]);
    assert!(lines[6].starts_with("ok "), "{}", lines[6]);
    assert_eq!(lines[7], format!("ok 13 {}", fnv1a(b"resource data")));
    assert!(lines[8].starts_with("err not-found"), "{}", lines[8]);
    assert!(lines[9].starts_with("err internal"), "{}", lines[9]);
    assert!(lines[10].starts_with("err internal"), "{}", lines[10]);

    let created = harness.agent.created_tasks();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].payload, b"subpayload");
    let calls = harness.agent.calls();
    let methods: Vec<&str> = calls.iter().map(|c| c.method).collect();
    for method in [
        methods::CREATE_RESULTS_METADATA,
        methods::CREATE_RESULTS,
        methods::NOTIFY_RESULT_DATA,
        methods::SUBMIT_TASKS,
        methods::CREATE_TASK,
        methods::GET_RESOURCE_DATA,
        methods::GET_COMMON_DATA,
        methods::GET_DIRECT_DATA,
    ] {
        assert!(
            methods.contains(&method),
            "{method} never called: {methods:?}"
        );
    }
    for call in &calls {
        assert_eq!(call.token, folder.token(), "{}", call.method);
        assert!(call.session_ids.iter().all(|s| *s == session), "{call:?}");
    }
}

#[tokio::test]
async fn guest_error_becomes_output_error() {
    let harness = Harness::start("fail").await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("bad input: x < 0").build();
    let details = error_details(harness.run_task(request).await);
    assert!(details.contains("bad input: x < 0"), "{details}");
}

#[tokio::test]
async fn expected_output_never_produced_is_an_error_naming_it() {
    let harness = Harness::start("probe").await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("skip-output").build();
    let output = request.expected_output_keys[0].clone();
    let details = error_details(harness.run_task(request).await);
    assert!(details.contains(&output), "{details}");
    assert!(details.contains("expected outputs"), "{details}");
}

#[tokio::test]
async fn notified_result_without_file_is_an_error_naming_it() {
    let harness = Harness::start("probe").await;
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .payload("notify-missing ghost-result")
        .expected_output("ghost-result")
        .build();
    let details = error_details(harness.run_task(request).await);
    assert!(details.contains("ghost-result"), "{details}");
}

#[tokio::test]
async fn trap_is_a_retryable_status_with_backtrace_and_the_next_task_runs() {
    let harness = Harness::start("hostile").await;
    for mode in ["panic", "unreachable", "divide-by-zero", "out-of-bounds"] {
        let folder = TaskFolder::new();
        let request = folder.process_request().payload(mode).build();
        let status = harness
            .run_task(request)
            .await
            .expect_err("a trap is a gRPC error");
        assert_eq!(status.code(), Code::Internal, "{mode}: {status:?}");
        assert!(status.message().contains("trapped"), "{mode}: {status:?}");
        assert!(
            status.message().contains("wasm backtrace"),
            "{mode}: no backtrace in {}",
            status.message()
        );
    }
    let log = harness.worker.log();
    assert!(
        log.contains("panicked"),
        "the guest's stderr reaches the log"
    );

    let folder = TaskFolder::new();
    let request = folder.process_request().payload("env").build();
    assert_ok(harness.run_task(request).await, "");
}

#[tokio::test]
async fn infinite_loop_stops_at_max_duration_while_health_stays_serving() {
    let harness = Harness::start("hostile").await;
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .payload("loop")
        .max_duration(Duration::from_secs(2))
        .build();
    let client = harness.client.clone();
    let started = Instant::now();
    let task = tokio::spawn(async move { client.process(request).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health = harness.client.health_check().await;
    assert_eq!(
        health.ok(),
        Some(ServingStatus::Serving),
        "HealthCheck during a task"
    );
    let status = task
        .await
        .expect("task joined")
        .expect_err("the loop is stopped");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let folder = TaskFolder::new();
    let request = folder.process_request().payload("ok").build();
    let harness_echo = harness; // the same worker serves the next task
    let details = error_details(harness_echo.run_task(request).await);
    assert!(details.contains("unknown mode"), "{details}");
}

#[tokio::test]
async fn component_shipped_as_a_data_dependency_runs() {
    // No default component: every task brings its own (ArmoniK's dynamic-worker convention).
    let agent = FakeAgent::start();
    let agent_address = agent.address().to_arg();
    let mut worker = Worker::spawn_with(
        &[
            "serve",
            "--worker-address",
            "{dir}/w.sock",
            "--agent-address",
            &agent_address,
        ],
        &[],
    );
    let client = worker
        .wait_serving(Address::Unix(worker.dir().join("w.sock")))
        .await;
    let echo = std::fs::read(guest("echo")).expect("echo.wasm");

    for _ in 0..2 {
        let folder = TaskFolder::new();
        let request = folder
            .process_request()
            .payload("shipped")
            .dependency("lib-blob", echo.clone())
            .option("ConventionVersion", "v1")
            .option("LibraryBlobId", "lib-blob")
            .build();
        let output = request.expected_output_keys[0].clone();
        agent.bind_request(&request);
        assert_ok(client.process(request).await, &worker.log());
        assert_eq!(folder.read(&output), b"shipped");
    }

    let other_world = std::fs::read(guest("wrong_world")).expect("wrong_world.wasm");
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "other-world",
            other_world,
            "does not fit the armonik:worker/worker world",
        ),
        (
            "junk",
            b"not wasm at all".to_vec(),
            "not a WebAssembly component",
        ),
        (
            "core",
            b"\0asm\x01\x00\x00\x00".to_vec(),
            "core WebAssembly module",
        ),
        (
            "broken",
            b"\0asm\x0d\x00\x01\x00\xff\xff".to_vec(),
            "not a valid component",
        ),
        ("none", Vec::new(), ""),
    ];
    for (name, bytes, expected) in cases {
        let folder = TaskFolder::new();
        let builder = folder.process_request().option("ConventionVersion", "v1");
        let request = if name == "none" {
            builder.build()
        } else {
            builder
                .dependency("lib", bytes)
                .option("LibraryBlobId", "lib")
                .build()
        };
        agent.bind_request(&request);
        let details = error_details(client.process(request).await);
        let expected = if name == "none" {
            "LibraryBlobId"
        } else {
            expected
        };
        assert!(details.contains(expected), "{name}: {details}");
    }

    // A blob that is not a dependency of the task is fetched with GetResourceData, never read
    // from what is already at its name: here the agent has no such result.
    let folder = TaskFolder::new();
    folder.write("stray", echo.clone());
    let request = folder
        .process_request()
        .option("ConventionVersion", "v1")
        .option("LibraryBlobId", "stray")
        .build();
    agent.bind_request(&request);
    let details = error_details(client.process(request).await);
    assert!(
        details.contains("LibraryBlobId=stray names no result"),
        "{details}"
    );
    assert!(!folder.contains("stray"), "the planted file was cleared");

    // Known to the agent: fetched once, then the compiled component serves every task.
    agent.add_resource("lib-remote", echo.clone());
    agent.clear_records();
    for _ in 0..2 {
        let folder = TaskFolder::new();
        let request = folder
            .process_request()
            .payload("fetched")
            .option("ConventionVersion", "v1")
            .option("LibraryBlobId", "lib-remote")
            .build();
        let output = request.expected_output_keys[0].clone();
        agent.bind_request(&request);
        assert_ok(client.process(request).await, &worker.log());
        assert_eq!(folder.read(&output), b"fetched");
    }
    assert_eq!(agent.calls_to(methods::GET_RESOURCE_DATA).len(), 1);

    // An agent that fails the fetch: retried (UNAVAILABLE), not an error of the task.
    agent.inject_error(methods::GET_RESOURCE_DATA, Code::Internal, "storage down");
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .option("ConventionVersion", "v1")
        .option("LibraryBlobId", "lib-other")
        .build();
    agent.bind_request(&request);
    let status = client
        .process(request)
        .await
        .expect_err("a failed fetch is retried");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // And a task without the convention has no component to run.
    let folder = TaskFolder::new();
    let details = error_details(client.process(folder.process_request().build()).await);
    assert!(details.contains("no default component"), "{details}");
}

#[tokio::test]
async fn agent_down_is_unavailable() {
    let mut harness = Harness::start("echo").await;
    harness.agent.stop();
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("x").build();
    let status = harness
        .client
        .process(request)
        .await
        .expect_err("no agent, no result");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // The agent comes back: the worker reconnects on its own.
    harness.agent.restart();
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("y").build();
    assert_ok(harness.run_task(request).await, "");
}

#[tokio::test]
async fn tasks_past_the_concurrency_bound_are_refused_not_queued() {
    let harness = Harness::start_with("hostile", &["--max-concurrent-tasks", "1"]).await;
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .payload("loop")
        .max_duration(Duration::from_secs(3))
        .build();
    let client = harness.client.clone();
    let first = tokio::spawn(async move { client.process(request).await });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let folder = TaskFolder::new();
    let request = folder.process_request().payload("env").build();
    let status = harness
        .client
        .process(request)
        .await
        .expect_err("the slot is taken");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let first = first.await.expect("joined").expect_err("loop stopped");
    assert_eq!(first.code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn configuration_comes_from_armonik_environment_keys() {
    let agent = FakeAgent::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("worker.sock");
    // A stale socket file from a previous run (bound, then left behind) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("stale socket"));
    let echo = guest("echo");
    let mut worker = Worker::spawn_with(
        &["serve"],
        &[
            ("ArmonikWasm__Component", echo.to_str().expect("utf-8 path")),
            (
                "ComputePlane__WorkerChannel__Address",
                socket.to_str().expect("utf-8"),
            ),
            (
                "ComputePlane__WorkerChannel__SocketType",
                "unixdomainsocket",
            ),
            (
                "ComputePlane__AgentChannel__Address",
                &agent.address().to_arg(),
            ),
            ("ComputePlane__AgentChannel__SocketType", "UnixDomainSocket"),
        ],
    );
    let client = worker.wait_serving(Address::Unix(socket.clone())).await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("env keys").build();
    let output = request.expected_output_keys[0].clone();
    agent.bind_request(&request);
    assert_ok(client.process(request).await, "");
    assert_eq!(folder.read(&output), b"env keys");

    // SIGTERM: the socket file is removed and the process exits 0.
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{:?}\n{}",
        status,
        worker.log()
    );
    assert!(!socket.exists());
}

/// A worker address that names something other than a stale socket (a typo, another
/// program's file, the socket of a worker that is serving): `serve` does not start, and
/// leaves it as it was.
#[tokio::test]
async fn a_worker_address_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("precious.txt");
    std::fs::write(&file, b"precious").expect("file");
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).expect("folder");
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&file, &link).expect("link");
    let dangling = dir.path().join("dangling.sock");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).expect("link");
    let socket = dir.path().join("real.sock");
    let _live = std::os::unix::net::UnixListener::bind(&socket).expect("socket");
    let socket_link = dir.path().join("socket-link.sock");
    std::os::unix::fs::symlink(&socket, &socket_link).expect("link");
    let fifo = dir.path().join("fifo.sock");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.as_ref().is_ok_and(|s| s.success()), "mkfifo: {made:?}");
    let cases = [
        (&file, "a regular file"),
        (&fifo, "a special file"),
        (&folder, "a folder"),
        (&link, "a symbolic link"),
        (&dangling, "a symbolic link"),
        (&socket_link, "a symbolic link"),
    ];
    for (address, what) in cases {
        let mut worker = Worker::spawn_with(&["serve", "--worker-address", path(address)], &[]);
        let status = worker.wait_exit(Duration::from_secs(20)).await;
        let log = worker.log();
        assert!(status.is_some_and(|s| !s.success()), "{address:?}: {log}");
        assert!(
            log.contains(&format!("is {what}, not a socket")),
            "{address:?}: {log}"
        );
        assert!(!log.contains("panicked"), "{log}");
    }
    assert_eq!(std::fs::read(&file).expect("file"), b"precious");
    assert!(folder.is_dir());
    assert!(fifo.symlink_metadata().expect("fifo").file_type().is_fifo());
    for link in [&link, &dangling, &socket_link] {
        assert!(link.symlink_metadata().expect("link").is_symlink());
    }
    assert!(
        socket
            .symlink_metadata()
            .expect("socket")
            .file_type()
            .is_socket()
    );

    // A socket a process listens on (another worker given the same address) is not taken.
    let mut worker = Worker::spawn_with(&["serve", "--worker-address", path(&socket)], &[]);
    let status = worker.wait_exit(Duration::from_secs(20)).await;
    let log = worker.log();
    assert!(status.is_some_and(|s| !s.success()), "{log}");
    assert!(
        log.contains("is the socket of a process that is listening on it"),
        "{log}"
    );
    let _still_served = std::os::unix::net::UnixStream::connect(&socket).expect("still served");
}

#[tokio::test]
async fn bad_start_up_settings_fail_with_a_clear_message() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["serve", "--component", "/nonexistent.wasm"],
            "cannot read the component",
        ),
        (
            &["serve", "--components-dir", "/nonexistent-components"],
            "cannot open the components folder /nonexistent-components (--components-dir, ArmonikWasm__ComponentsDir)",
        ),
        (
            &["serve", "--worker-socket-type", "pipe"],
            "invalid value 'pipe' for '--worker-socket-type",
        ),
        (
            &[
                "serve",
                "--worker-socket-type",
                "tcp",
                "--worker-address",
                "localhost",
            ],
            "http://host:port",
        ),
        (
            &["serve", "--component", "{dir}/worker.log"],
            "not a WebAssembly component",
        ),
    ];
    for (args, message) in cases {
        let mut worker = Worker::spawn_with(args, &[]);
        let status = worker.wait_exit(Duration::from_secs(20)).await;
        assert!(status.is_some_and(|s| !s.success()), "{args:?} should fail");
        assert!(worker.log().contains(message), "{args:?}: {}", worker.log());
    }
}

#[tokio::test]
async fn agent_calls_after_the_deadline_never_reach_the_agent() {
    let harness = Harness::start("hostile").await;
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .payload("sleep-then-notify 3000")
        .max_duration(Duration::from_secs(1))
        .build();
    let status = harness.run_task(request).await.expect_err("stopped");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // Give a guest that escaped the deadline the time to make its late call.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        harness.agent.calls().is_empty(),
        "late calls reached the agent: {:?}",
        harness.agent.calls()
    );
}

#[tokio::test]
async fn an_endless_max_duration_is_served_not_a_crash() {
    // ArmoniK's own default is 10,000 years; the fuzzer found that ~i64::MAX seconds
    // overflowed the deadline.
    let harness = Harness::start("echo").await;
    for seconds in [315_576_000_000, i64::MAX] {
        let folder = TaskFolder::new();
        let mut request = folder.process_request().payload("forever").build();
        request.task_options.max_duration = prost_types::Duration { seconds, nanos: 0 };
        let output = request.expected_output_keys[0].clone();
        harness.agent.bind_request(&request);
        // The harness's client would turn such a duration into its own deadline: no deadline.
        let result = harness.client.process_with_deadline(request, None).await;
        assert_ok(result, &harness.worker.log());
        assert_eq!(folder.read(&output), b"forever");
    }
}
