//! `serve --isolation process`: each task in a child process of its own, with the outcome
//! table, deadlines and cancellation of the in-process mode, driven through ArmoniK's Worker
//! contract (the `armonik` crate plays the polling agent).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use armonik::Output;
use common::{Harness, TaskFolder, Transport, guest, metrics_address, metrics_sample, scrape};
use tonic::Code;

async fn isolated() -> Harness {
    // A small memory limit keeps `alloc` quick.
    Harness::start_with(
        "hostile",
        &["--isolation", "process", "--memory-limit-mib", "256"],
    )
    .await
}

/// The worker's children running a task: pids of processes whose parent is `worker` and
/// whose command line is a task process.
fn task_processes(worker: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Field 4, after the parenthesised command name.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            parent == Some(worker) && String::from_utf8_lossy(&cmdline).contains("task-process")
        })
        .collect()
}

/// Whether process `pid` holds a file of `folder` open (a task process holds its task's data
/// folder; the spare one, started ahead, holds none).
fn holds_open(pid: u32, folder: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.filter_map(Result::ok)
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| target.starts_with(folder))
    })
}

/// Waits until one of the worker's task processes runs the task of `folder`; its pid.
async fn wait_for_task_process(worker: u32, folder: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = task_processes(worker)
            .into_iter()
            .find(|&pid| holds_open(pid, folder))
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no task process runs the task");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the worker has no task process but the one started ahead for the next task.
async fn wait_only_the_spare(worker: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while task_processes(worker).len() > 1 {
        assert!(
            Instant::now() < deadline,
            "a task process outlived its task"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| stat.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread")]
async fn outcomes_are_those_of_the_in_process_mode() {
    let harness = isolated().await;
    let folder = TaskFolder::new();

    let request = folder.process_request().payload("write isolated").build();
    let output = request.expected_output_keys[0].clone();
    let result = harness.run_task(request).await;
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
    assert_eq!(folder.read(&output), b"isolated");

    let result = harness
        .run_task(folder.process_request().payload("no-such-mode").build())
        .await;
    assert!(
        matches!(&result, Ok(Output::Error { details }) if details.contains("unknown mode")),
        "{result:?}"
    );

    let trapped = harness
        .run_task(folder.process_request().payload("panic").build())
        .await;
    let status = trapped.expect_err("a trap is a status");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("trapped"), "{status:?}");

    // Memory limit: the child's sandbox has the worker's.
    let result = harness
        .run_task(folder.process_request().payload("alloc").build())
        .await;
    let status = result.expect_err("over the memory limit");
    assert!(status.message().contains("memory limit"), "{status:?}");

    let started = Instant::now();
    let late = harness
        .run_task(
            folder
                .process_request()
                .payload("loop")
                .max_duration(Duration::from_millis(300))
                .build(),
        )
        .await;
    let status = late.expect_err("past its deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    wait_only_the_spare(harness.worker.pid()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_answer_and_a_cancelled_call_kills_the_task_process() {
    let harness = isolated().await;
    let folder = TaskFolder::new();
    // Spins 3 s, then notifies: the notify must never reach the agent.
    let request = folder
        .process_request()
        .payload("sleep-then-notify 3000")
        .build();
    harness.agent.bind_request(&request);
    let client = harness.client.clone();
    let call = tokio::spawn(async move {
        client
            .process_with_deadline(request, Some(Duration::from_millis(1500)))
            .await
    });
    let child = wait_for_task_process(harness.worker.pid(), folder.path()).await;
    let started = Instant::now();
    let health = harness.client.health_check().await;
    assert!(health.is_ok(), "{health:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let result = call.await.expect("the call's task");
    assert!(result.is_err(), "the client gave up first: {result:?}");
    // Killed, whether or not the next spare has started yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(child) {
        assert!(
            Instant::now() < deadline,
            "the task process {child} still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_only_the_spare(harness.worker.pid()).await;
    // Past the time the guest would have notified.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        harness.agent.calls_to("NotifyResultData").is_empty(),
        "{:?}",
        harness.agent.calls()
    );
    harness.agent.unbind();

    // The worker serves the next task.
    let result = harness
        .run_task(folder.process_request().payload("write next").build())
        .await;
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_process_killed_from_outside_is_a_retried_failure() {
    let harness = isolated().await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("sleep 20000").build();
    harness.agent.bind_request(&request);
    let client = harness.client.clone();
    let call = tokio::spawn(async move { client.process(request).await });
    let child = wait_for_task_process(harness.worker.pid(), folder.path()).await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &child.to_string()])
        .status();
    assert!(matches!(killed, Ok(s) if s.success()), "{killed:?}");
    let result = call.await.expect("the call's task");
    let status = result.expect_err("a killed task process");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("signal: 9"), "{status:?}");
    harness.agent.unbind();
}

#[tokio::test(flavor = "multi_thread")]
async fn each_task_gets_a_process_no_task_used_before() {
    let harness = isolated().await;
    let mut pids = Vec::new();
    for _ in 0..3 {
        let folder = TaskFolder::new();
        let request = folder.process_request().payload("sleep 300").build();
        harness.agent.bind_request(&request);
        let client = harness.client.clone();
        let call = tokio::spawn(async move { client.process(request).await });
        pids.push(wait_for_task_process(harness.worker.pid(), folder.path()).await);
        let result = call.await.expect("the call's task");
        assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
        harness.agent.unbind();
    }
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{pids:?}");
    wait_only_the_spare(harness.worker.pid()).await;
    assert!(pids.iter().all(|&pid| gone(pid)), "{pids:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_that_is_down_makes_the_task_unavailable_not_lost() {
    let mut harness = isolated().await;
    harness.agent.stop();
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("write x").build();
    let result = harness.client.process(request).await;
    let status = result.expect_err("no agent to notify");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("agent"), "{status:?}");
    // Back up: the next task's process reaches it.
    harness.agent.restart();
    let result = harness
        .run_task(folder.process_request().payload("write y").build())
        .await;
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_calls_made_in_task_processes_reach_the_worker_metrics() {
    let harness = Harness::start_with(
        "hostile",
        &["--isolation", "process", "--metrics-address", "127.0.0.1:0"],
    )
    .await;
    let address = metrics_address(&harness.worker);
    let folder = TaskFolder::new();
    for _ in 0..2 {
        let result = harness
            .run_task(folder.process_request().payload("write x").build())
            .await;
        assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
    }
    let body = scrape(&address);
    let calls = r#"armonik_wasm_agent_calls_total{operation="NotifyResultData",code="OK"}"#;
    assert_eq!(metrics_sample(&body, calls), Some(2.0), "{body}");
    let outcomes = r#"armonik_wasm_tasks_total{outcome="completed"}"#;
    assert_eq!(metrics_sample(&body, outcomes), Some(2.0), "{body}");
}

/// A task process preloaded with the last task's component makes its instance while it waits
/// for its task (src/sandbox/ahead.rs), unless the worker was told not to.
#[tokio::test(flavor = "multi_thread")]
async fn task_processes_make_their_instance_ahead_unless_told_not_to() {
    for (flags, ahead) in [(&[][..], true), (&["--no-instantiate-ahead"][..], false)] {
        let mut args = vec!["--isolation", "process"];
        args.extend_from_slice(flags);
        let harness = Harness::start_with("hostile", &args).await;
        for round in 0..3 {
            let folder = TaskFolder::new();
            let request = folder.process_request().payload("write ahead").build();
            let result = harness.run_task(request).await;
            assert!(
                matches!(result, Ok(Output::Ok)),
                "round {round}: {result:?}"
            );
            // Time for the spare to start and make its instance, as between ArmoniK's tasks.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let log = harness.worker.log();
        assert_eq!(
            log.contains("instance_made_ahead=true"),
            ahead,
            "{flags:?}:\n{log}"
        );
    }
}

/// A worker killed outright (SIGKILL, as the OOM killer kills) leaves nothing in its temporary
/// directory, in either mode: task processes get compiled components in sealed memory files
/// (src/worker/isolation.rs), and the empty folder preopened while an instance is made ahead
/// is removed as soon as it is made (src/sandbox/ahead.rs).
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_outright_leaves_nothing_in_its_temporary_directory() {
    for flags in [&[][..], &["--isolation", "process"][..]] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let tmp_path = tmp.path().display().to_string();
        let mut harness = Harness::start_custom(
            &guest("hostile"),
            Transport::Unix,
            flags,
            &[("TMPDIR", tmp_path.as_str())],
        )
        .await;
        for round in 0..2 {
            let folder = TaskFolder::new();
            let request = folder.process_request().payload("write left").build();
            let result = harness.run_task(request).await;
            assert!(
                matches!(result, Ok(Output::Ok)),
                "{flags:?}, round {round}: {result:?}"
            );
        }
        // Time for the next instance or task process to be made, as between ArmoniK's tasks.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let children = task_processes(harness.worker.pid());
        assert_eq!(
            children.is_empty(),
            flags.is_empty(),
            "{flags:?}: task processes {children:?}"
        );
        harness.worker.kill();
        // Its task processes follow it (PR_SET_PDEATHSIG), and with them the last handles.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !children.iter().all(|&pid| gone(pid)) {
            assert!(
                Instant::now() < deadline,
                "{flags:?}: {children:?} outlived the worker"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("temp dir")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert!(left.is_empty(), "{flags:?}: left {left:?}");
    }
}
