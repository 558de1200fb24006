//! Soak: 10,000 tasks in a row through `armonik-wasm serve`; the host's memory and open file
//! descriptors must stay flat. Slow, so ignored by default:
//!
//! ```sh
//! cargo test --release --test soak -- --ignored --nocapture
//! ```

mod common;

use armonik::Output;
use common::*;

const TASKS: usize = 10_000;
const SAMPLE_EVERY: usize = 1_000;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count()
}

#[tokio::test]
#[ignore = "10,000 tasks: run with --ignored"]
async fn ten_thousand_tasks_leave_memory_and_descriptors_flat() {
    let harness = Harness::start("echo").await;
    let pid = harness.worker.pid();
    let mut samples = Vec::new();
    let started = std::time::Instant::now();
    for i in 1..=TASKS {
        let folder = TaskFolder::new();
        let request = folder
            .process_request()
            .payload(format!("task {i}"))
            .build();
        let output = request.expected_output_keys[0].clone();
        let result = harness.run_task(request).await;
        assert!(matches!(result, Ok(Output::Ok)), "task {i}: {result:?}");
        assert_eq!(folder.read(&output), format!("task {i}").as_bytes());
        // Keep the agent's records from growing the test's own memory.
        harness.agent.clear_records();
        if i % SAMPLE_EVERY == 0 {
            let (rss, fds) = (proc_status_kib(pid, "VmRSS:"), open_fds(pid));
            println!(
                "after {i:>6} tasks: host RSS {:>7.1} MiB, open fds {fds}, {:.0} tasks/s",
                rss as f64 / 1024.0,
                i as f64 / started.elapsed().as_secs_f64()
            );
            samples.push((rss, fds));
        }
    }
    // The first thousand tasks warm the pools and caches; after that, nothing may grow.
    let (warm_rss, warm_fds) = samples[0];
    let (last_rss, last_fds) = samples[samples.len() - 1];
    assert!(
        last_rss <= warm_rss + 8 * 1024,
        "RSS grew from {warm_rss} KiB to {last_rss} KiB"
    );
    assert!(
        last_fds <= warm_fds + 2,
        "fds grew from {warm_fds} to {last_fds}"
    );
}
