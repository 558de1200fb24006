//! Nothing a task does can hurt the host or lose data: hostile guests from `guests/hostile`
//! against the real `armonik-wasm serve`, with the official `armonik` crate playing ArmoniK.

mod common;

use std::time::{Duration, Instant};

use armonik::Output;
use armonik::worker::health_check::Response as ServingStatus;
use common::*;
use tonic::Code;

/// The worker process's resident memory, in MiB.
fn rss_mib(worker: &Worker) -> u64 {
    proc_status_kib(worker.pid(), "VmRSS:") / 1024
}

async fn hostile(harness: &Harness, mode: &str) -> Result<Output, tonic::Status> {
    let folder = TaskFolder::new();
    harness
        .run_task(folder.process_request().payload(mode).build())
        .await
}

async fn next_task_runs(harness: &Harness) {
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("env").build();
    let output = request.expected_output_keys[0].clone();
    let result = harness.run_task(request).await;
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
    assert!(folder.contains(&output));
}

#[tokio::test]
async fn endless_allocation_stops_at_the_memory_limit() {
    let harness = Harness::start_with("hostile", &["--memory-limit-mib", "256"]).await;
    let status = hostile(&harness, "alloc").await.expect_err("stopped");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        status.message().contains("memory limit exceeded"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("268435456"),
        "{}",
        status.message()
    );
    let rss = rss_mib(&harness.worker);
    assert!(rss < 512, "host RSS {rss} MiB after a 256 MiB task");
    next_task_runs(&harness).await;
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow_trap() {
    let harness = Harness::start("hostile").await;
    let status = hostile(&harness, "recurse").await.expect_err("stopped");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        status.message().contains("call stack exhausted"),
        "{}",
        status.message()
    );
    next_task_runs(&harness).await;
}

/// Runs the hostile guest's `residue` task with `heap_mib` MiB of fresh heap: it must find its
/// static data and that heap zero, as in a new instance (and then fills both).
async fn assert_pristine_memory(harness: &Harness, round: usize, heap_mib: usize) {
    let payload = format!("residue {heap_mib}");
    let report = report_of(harness, &TaskFolder::new(), &payload, round).await;
    assert_eq!(report, "static=0 heap=0", "round {round}, {heap_mib} MiB");
}

/// Runs a task of `payload` in `folder`, which must complete; the text of its output.
async fn report_of(harness: &Harness, folder: &TaskFolder, payload: &str, round: usize) -> String {
    let request = folder.process_request().payload(payload).build();
    let output = request.expected_output_keys[0].clone();
    let result = harness.run_task(request).await;
    assert!(
        matches!(result, Ok(Output::Ok)),
        "round {round}: {result:?}"
    );
    String::from_utf8(folder.read(&output)).expect("report")
}

#[tokio::test]
async fn no_task_sees_memory_an_earlier_task_wrote() {
    // Pooled memories are reused: the first 16 MiB of each is reset in place (copied back
    // from the image or zeroed), the rest given back to the kernel (src/sandbox/mod.rs).
    // Every task must still start from the component's pristine memory, in its data and in
    // fresh heap on either side of that line (6 MiB of heap stays below it, 24 MiB crosses
    // it), traps included. One slot, so every task reuses the previous task's memory, and
    // each arrives while the previous one may still be torn down (after its reply): it waits
    // for the slot, never fails.
    let harness = Harness::start_with(
        "hostile",
        &["--max-concurrent-tasks", "1", "--no-instantiate-ahead"],
    )
    .await;
    for round in 0..8 {
        if round == 2 || round == 5 {
            let trapped = hostile(&harness, "unreachable").await;
            assert_eq!(trapped.err().map(|s| s.code()), Some(Code::Internal));
        }
        assert_pristine_memory(&harness, round, [6, 24][round % 2]).await;
    }
}

/// After a task, the worker makes the next instance of its component while it waits
/// (src/sandbox/ahead.rs); the next task binds its own folder, ids and agent to it. Each such
/// task still starts from the component's pristine memory and writes to its own folder, and
/// its summary record says it ran in an instance made ahead; with `--no-instantiate-ahead`,
/// none does.
#[tokio::test]
async fn tasks_run_in_fresh_instances_made_ahead_of_them() {
    for (flags, expected) in [(&[][..], 3), (&["--no-instantiate-ahead"][..], 0)] {
        let mut args = vec!["--max-concurrent-tasks", "1"];
        args.extend_from_slice(flags);
        let harness = Harness::start_with("hostile", &args).await;
        for round in 0..4 {
            assert_pristine_memory(&harness, round, [6, 24][round % 2]).await;
            // The time ArmoniK's agent takes between two tasks, at least.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let log = harness.worker.log();
        let made_ahead = log
            .lines()
            .filter(|l| l.contains("task finished") && l.contains("instance_made_ahead=true"))
            .count();
        assert_eq!(made_ahead, expected, "{flags:?}:\n{log}");
    }
}

/// A component whose start function (`_initialize`, run at instantiation, as C reactors
/// have) looks for a file in `/data`: wasi-libc lists the preopens then and keeps the
/// answer, so an instance made ahead with no folder would never reach the task's. The
/// empty folder preopened while making one gives the start function a descriptor, which
/// marks the component as one to instantiate with each task: every task finds its folder.
#[tokio::test]
async fn a_start_function_that_reads_the_data_folder_gets_each_tasks_folder() {
    let harness = Harness::start_with("initfs", &["--max-concurrent-tasks", "1"]).await;
    for round in 0..4 {
        let folder = TaskFolder::new();
        folder.write("config", "x");
        let report = report_of(&harness, &folder, "p", round).await;
        assert!(
            report.contains("found=1") && report.contains("payload=ok"),
            "round {round}: {report}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log = harness.worker.log();
    assert!(!log.contains("instance_made_ahead=true"), "{log}");
}

/// A component whose start function calls `data-folder` (`guests/initfolder` reads `config`
/// through it): an instance made ahead has no folder then, so its read is refused (`io`) and
/// the call marks it; the worker drops that instance and instantiates the component with each
/// task from then on, so every task's start reads its own folder's `config`.
#[tokio::test]
async fn a_start_function_that_calls_data_folder_gets_each_tasks_folder() {
    let harness = Harness::start_custom(
        &guest("initfolder"),
        Transport::Unix,
        &["--max-concurrent-tasks", "1"],
        &[("RUST_LOG", "info,armonik_wasm::sandbox::ahead=debug")],
    )
    .await;
    for round in 0..4 {
        let folder = TaskFolder::new();
        folder.write("config", format!("round {round}"));
        let report = report_of(&harness, &folder, "p", round).await;
        assert_eq!(
            report,
            format!("start-read=ok round {round}"),
            "round {round}\n{}",
            harness.worker.log()
        );
        // The time ArmoniK's agent takes between two tasks, at least: an instance is made.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log = harness.worker.log();
    assert!(!log.contains("instance_made_ahead=true"), "{log}");
    assert!(
        log.contains("a component's instantiation used WASI resources, the agent or data-folder"),
        "no instance was made ahead and refused:\n{log}"
    );
}

#[tokio::test]
async fn nothing_outside_the_data_folder_is_read_or_written() {
    let harness = Harness::start("hostile").await;
    let outside = tempfile::tempdir().expect("temp dir");
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "host secret").expect("secret");
    let escape_target = std::path::Path::new("/tmp/armonik-wasm-escape");
    let existed = escape_target.exists();

    let folder = TaskFolder::new();
    std::os::unix::fs::symlink(&secret, folder.path().join("link")).expect("plant a symlink");
    let request = folder.process_request().payload("escape").build();
    let output = request.expected_output_keys[0].clone();
    let result = harness.run_task(request).await;
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
    let report = String::from_utf8(folder.read(&output)).expect("report");
    for line in report.lines() {
        assert!(line.contains(": err "), "escaped: {line}\n{report}");
    }
    assert!(report.contains("link: err"), "{report}");
    assert!(!report.contains("host secret"));
    assert_eq!(
        escape_target.exists(),
        existed,
        "a file appeared outside the folder"
    );
}

#[tokio::test]
async fn no_environment_no_arguments_no_network() {
    let harness = Harness::start_custom(
        &guest("hostile"),
        Transport::Unix,
        &[],
        &[("HOME", "/root"), ("SECRET_TOKEN", "s3cr3t")],
    )
    .await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("env").build();
    let output = request.expected_output_keys[0].clone();
    let result = harness.run_task(request).await;
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
    let report = String::from_utf8(folder.read(&output)).expect("report");
    assert!(report.contains("vars=0"), "{report}");
    assert!(report.contains("args=0"), "{report}");
    assert!(report.contains("home=unset"), "{report}");
    assert!(report.contains("tcp=err"), "{report}");
}

#[tokio::test]
async fn a_notified_symlink_out_of_the_folder_is_refused() {
    let harness = Harness::start("probe").await;
    let outside = tempfile::tempdir().expect("temp dir");
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "host secret").expect("secret");
    let folder = TaskFolder::new();
    std::os::unix::fs::symlink(&secret, folder.path().join("planted")).expect("symlink");
    // `planted` is the task's own expected output: only its kind of file is at fault.
    let request = folder
        .process_request()
        .payload("notify-missing planted")
        .expected_output("planted")
        .build();
    match harness.run_task(request).await {
        Ok(Output::Error { details }) => assert!(details.contains("planted"), "{details}"),
        other => panic!("expected Output.error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_gigabyte_of_output_streams_to_disk_without_host_memory() {
    let harness = Harness::start("hostile").await;
    let folder = TaskFolder::new();
    assert_room_for(folder.path(), 1 << 30);
    let request = folder.process_request().payload("huge-output 1024").build();
    let output = request.expected_output_keys[0].clone();
    let result = harness.run_task(request).await;
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
    let size = std::fs::metadata(folder.path().join(&output))
        .expect("output")
        .len();
    assert_eq!(size, 1 << 30);
    let rss = rss_mib(&harness.worker);
    assert!(rss < 256, "host RSS {rss} MiB after writing 1 GiB");
}

#[tokio::test]
async fn the_agent_going_down_mid_task_is_unavailable() {
    let mut harness = Harness::start("hostile").await;
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .payload("sleep-then-notify 1000")
        .build();
    harness.agent.bind_request(&request);
    let client = harness.client.clone();
    let task = tokio::spawn(async move { client.process(request).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    harness.agent.stop();
    let started = Instant::now();
    let status = task.await.expect("joined").expect_err("no agent");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded wait");
}

#[tokio::test]
async fn a_cancelled_process_call_stops_the_guest() {
    let harness = Harness::start_with("hostile", &["--max-concurrent-tasks", "1"]).await;
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .payload("loop")
        .max_duration(Duration::from_secs(600))
        .build();
    // The agent gives up after 500 ms (its deadline, or the task was cancelled).
    let result = harness
        .client
        .process_with_deadline(request, Some(Duration::from_millis(500)))
        .await;
    assert!(result.is_err(), "{result:?}");
    // The only slot is free again within moments: the loop was dropped, not left running.
    let started = Instant::now();
    loop {
        let folder = TaskFolder::new();
        let request = folder.process_request().payload("env").build();
        match harness.run_task(request).await {
            Ok(Output::Ok) => break,
            Err(status) if status.code() == Code::Unavailable => {
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "the cancelled guest still holds its slot"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn sigterm_lets_the_running_task_finish_then_exits_cleanly() {
    let harness = Harness::start("hostile").await;
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .payload("sleep-then-notify 1500")
        .build();
    let output = request.expected_output_keys[0].clone();
    harness.agent.bind_request(&request);
    let client = harness.client.clone();
    let task = tokio::spawn(async move { client.process(request).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    harness.worker.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = harness.client.health_check().await;
    assert!(
        matches!(health, Ok(ServingStatus::NotServing)),
        "{health:?}"
    );
    let result = task.await.expect("joined");
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
    assert_eq!(folder.read(&output), b"late");

    let Harness {
        mut worker, agent, ..
    } = harness;
    let status = worker.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        worker.log()
    );
    let socket = worker.dir().join("armonik_worker.sock");
    assert!(!socket.exists(), "socket file left behind");
    drop(agent);
}
