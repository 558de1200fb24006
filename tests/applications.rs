//! Components by application (`--components-dir`): a task whose options name an application
//! and a version runs that component, through `serve` and ArmoniK's Worker contract (the
//! `armonik` crate plays the polling agent). Versions dropped in while it runs are used;
//! names from a client never reach outside the folder.

mod common;

use std::path::{Path, PathBuf};

use armonik::{Output, TaskOptions};
use common::{Address, FakeAgent, Harness, TaskFolder, Worker, guest};

/// `serve` with only a components folder (no default component).
async fn serve_applications(dir: &Path) -> Harness {
    let agent = FakeAgent::start();
    let Address::Unix(agent_socket) = agent.address().clone() else {
        unreachable!("FakeAgent::start listens on a unix socket");
    };
    let mut worker = Worker::spawn_with(
        &[
            "serve",
            "--worker-address",
            "{dir}/w.sock",
            "--agent-address",
            common::path(&agent_socket),
            "--components-dir",
            common::path(dir),
            // Every load compiles, so the log counts them.
            "--no-cache",
        ],
        &[],
    );
    let client = worker
        .wait_serving(Address::Unix(worker.dir().join("w.sock")))
        .await;
    Harness {
        client,
        worker,
        agent,
    }
}

/// Puts guest `name` at `dir/<application>/<version>.wasm` as an operator would: written
/// aside, then renamed into place.
fn install(dir: &Path, application: &str, version: &str, name: &str) -> PathBuf {
    let folder = dir.join(application);
    std::fs::create_dir_all(&folder).expect("application folder");
    let target = folder.join(format!("{version}.wasm"));
    let staging = folder.join(format!(".{version}.wasm.new"));
    std::fs::copy(guest(name), &staging).expect("copy the component");
    std::fs::rename(&staging, &target).expect("rename into place");
    target
}

fn application(name: &str, version: &str) -> TaskOptions {
    TaskOptions {
        application_name: name.into(),
        application_version: version.into(),
        ..TaskOptions::default()
    }
}

/// Runs a task naming `name`/`version` with `payload`; its `Output`, and its first output's
/// bytes if it completed.
async fn run(
    harness: &Harness,
    name: &str,
    version: &str,
    payload: &str,
) -> (Output, Option<Vec<u8>>) {
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .task_options(application(name, version))
        .payload(payload)
        .build();
    let output = request.expected_output_keys[0].clone();
    let result = harness
        .run_task(request)
        .await
        .unwrap_or_else(|status| panic!("{name} {version}: {status:?}"));
    let data = folder.try_read(&output);
    (result, data)
}

fn error_details(output: &Output) -> &str {
    match output {
        Output::Error { details } => details,
        Output::Ok => panic!("the task completed"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_run_the_component_their_application_and_version_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    install(dir.path(), "echo-app", "1.0", "echo");
    let harness = serve_applications(dir.path()).await;

    let (output, data) = run(&harness, "echo-app", "1.0", "hello").await;
    assert!(matches!(output, Output::Ok), "{output:?}");
    assert_eq!(data.as_deref(), Some(&b"hello"[..]));

    // An unknown version: what was looked for and what exists.
    let (output, _) = run(&harness, "echo-app", "2.0", "x").await;
    let details = error_details(&output);
    assert!(
        details.contains("no version `2.0` of application `echo-app`"),
        "{details}"
    );
    assert!(details.contains("versions there: 1.0"), "{details}");

    // Dropped in while serving: the next task that names it runs it.
    install(dir.path(), "echo-app", "2.0", "fail");
    let (output, _) = run(&harness, "echo-app", "2.0", "failed on purpose").await;
    assert_eq!(error_details(&output), "failed on purpose");
    let (output, _) = run(&harness, "echo-app", "1.0", "still 1.0").await;
    assert!(matches!(output, Output::Ok), "{output:?}");

    // A version replaced in place (renamed over): the new file runs.
    install(dir.path(), "echo-app", "1.0", "fail");
    let (output, _) = run(&harness, "echo-app", "1.0", "replaced").await;
    assert_eq!(error_details(&output), "replaced");

    // An unknown application, a missing version: what exists.
    let (output, _) = run(&harness, "nope", "1.0", "x").await;
    let details = error_details(&output);
    assert!(details.contains("no application `nope`"), "{details}");
    assert!(
        details.contains("applications there: echo-app"),
        "{details}"
    );
    let (output, _) = run(&harness, "echo-app", "", "x").await;
    let details = error_details(&output);
    assert!(details.contains("without a version"), "{details}");
    assert!(details.contains("versions there: 1.0, 2.0"), "{details}");

    // No application and no default component.
    let folder = TaskFolder::new();
    let result = harness
        .run_task(folder.process_request().payload("x").build())
        .await;
    let output = result.unwrap_or_else(|status| panic!("{status:?}"));
    assert!(
        error_details(&output).contains("nor an application_name"),
        "{output:?}"
    );
    // A compiled component is reused while its file is unchanged.
    let log = harness.worker.log();
    assert_eq!(log.matches("component compiled").count(), 2, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn names_from_clients_stay_inside_the_components_folder() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("components");
    std::fs::create_dir(&dir).expect("components folder");
    install(&dir, "echo-app", "1.0", "echo");
    // Outside the folder, where `..` would lead.
    install(root.path(), "outside", "1.0", "echo");
    std::fs::copy(guest("echo"), root.path().join("escape.wasm")).expect("copy");
    // Links planted inside: to an application folder, to a version file, to outside.
    std::os::unix::fs::symlink(dir.join("echo-app"), dir.join("linked-app")).expect("symlink");
    std::os::unix::fs::symlink(
        dir.join("echo-app/1.0.wasm"),
        dir.join("echo-app/linked.wasm"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(root.path().join("outside"), dir.join("out")).expect("symlink");
    // A FIFO where a version should be: opening it must not wait for a writer.
    let fifo = dir.join("echo-app/fifo.wasm");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(matches!(made, Ok(s) if s.success()), "{made:?}");
    let harness = serve_applications(&dir).await;

    for (name, version) in [
        ("echo-app", "fifo"),
        ("..", "outside/1.0"),
        ("../outside", "1.0"),
        ("echo-app/../..", "escape"),
        ("echo-app", "../../escape"),
        ("echo-app", "../1.0"),
        ("linked-app", "1.0"),
        ("out", "1.0"),
        ("echo-app", "linked"),
        (".", "echo-app/1.0"),
        ("echo-app\0", "1.0"),
        ("echo-app", "1.0\0"),
    ] {
        let (output, data) = run(&harness, name, version, "escaped").await;
        assert!(
            matches!(output, Output::Error { .. }),
            "{name:?} {version:?} ran: {output:?}"
        );
        assert_eq!(data, None, "{name:?} {version:?}");
        let details = error_details(&output);
        assert!(
            details.contains("no application") || details.contains("no version"),
            "{name:?} {version:?}: {details}"
        );
    }
    // The folder still serves what it holds.
    let (output, data) = run(&harness, "echo-app", "1.0", "inside").await;
    assert!(matches!(output, Output::Ok), "{output:?}");
    assert_eq!(data.as_deref(), Some(&b"inside"[..]));
}

#[test]
fn a_missing_components_folder_stops_serve_at_start() {
    let ran = common::armonik_wasm(&[
        "serve",
        "--components-dir",
        "/nonexistent/components",
        "--worker-address",
        "/nonexistent/w.sock",
    ]);
    assert!(!ran.success, "{}", ran.all());
    assert!(
        ran.stderr.contains("/nonexistent/components"),
        "{}",
        ran.all()
    );
}
