//! Throughput of the local scheduler, alone (`run`) and behind ArmoniK's control plane (`dev`,
//! driven by ArmoniK's official Python client), measured in the same run so the ratio holds on
//! a noisy machine:
//!
//! 1. `run` of the fanout guest with `fanout N` (a root task, N parts, a sum over the N parts:
//!    N + 2 tasks), from the graph's start to its end;
//! 2. the same graph submitted to `dev` by the Python client, from the submission to the last
//!    task completion seen through the event stream;
//! 3. N no-op tasks (echo of an empty payload) submitted to `dev` in one call, from the
//!    submission until the Python client has seen every output completed through events.
//!
//! ```sh
//! cargo bench --bench scheduler             # N = 10,000
//! cargo bench --bench scheduler -- --quick  # N = 500, as in CI
//! ```
//!
//! Every task's folder and every result is a file: `TMPDIR` decides the file system both
//! modes use (ext4 allocates inodes of files deleted a moment ago slowly; tmpfs does not).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};

use common::dev::Dev;
use common::python::find_python;
use common::{armonik_wasm, guest, path, repo_dir};

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: usize = if quick { 500 } else { 10_000 };
    println!(
        "machine: {} CPUs; TMPDIR={}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into())
    );
    let fanout = guest("fanout");
    let echo = guest("echo");
    let work = tempfile::tempdir()?;
    // Compiled once into the on-disk cache here, so no measurement below pays for it.
    run_fanout(&fanout, 10, &work)?;

    println!(
        "\nscheduler: fanout {n} ({} tasks) and {n} no-op tasks",
        n + 2
    );
    let python = match find_python() {
        Ok(python) => Some(python),
        Err(error) => {
            println!(
                "  dev skipped: {}",
                error.lines().next().unwrap_or_default()
            );
            None
        }
    };
    // Two rounds, alternating, best of each: a noisy neighbour slows one round, not a mode.
    let (mut run_best, mut dev_best, mut many_best) = (f64::MAX, f64::MAX, f64::MAX);
    for round in 1..=2 {
        let run = run_fanout(&fanout, n, &work)?;
        println!("  round {round}: run fanout: {run:.3} s");
        run_best = run_best.min(run);
        if let Some(python) = &python {
            let dev = Dev::start(&work.path().join(format!("dev-{round}")));
            let endpoint = dev.endpoint.trim_start_matches("http://");
            let fanout_secs = client(python, endpoint, &fanout, "fanout", n)?;
            let many_secs = client(python, endpoint, &echo, "many", n)?;
            println!(
                "  round {round}: dev fanout: {fanout_secs:.3} s; dev {n} no-op tasks: {many_secs:.3} s"
            );
            dev_best = dev_best.min(fanout_secs);
            many_best = many_best.min(many_secs);
        }
    }
    let tasks = (n + 2) as f64;
    println!(
        "  run: {:.0} tasks/s (fanout {n}, best of 2)",
        tasks / run_best
    );
    if python.is_some() {
        println!(
            "  dev: {:.0} tasks/s (the same graph through the Python client), {:.2}x run's time (target ≤ 1.20x)",
            tasks / dev_best,
            dev_best / run_best
        );
        println!(
            "  dev: {:.0} tasks/s ({n} no-op tasks in one submit, all seen through events; target ≥ 2,000)",
            n as f64 / many_best
        );
    }
    Ok(())
}

/// `run` of `fanout n`: the graph's time in seconds, as `run` reports it.
fn run_fanout(wasm: &std::path::Path, n: usize, work: &tempfile::TempDir) -> anyhow::Result<f64> {
    let payload = format!("fanout {n}");
    let outputs = work.path().join("outputs");
    let ran = armonik_wasm(&[
        "run",
        path(wasm),
        "--payload-text",
        &payload,
        "--outputs",
        path(&outputs),
    ]);
    anyhow::ensure!(ran.success, "run failed: {}", ran.all());
    // "<n> tasks run (<n> completed) in <secs> s"
    let line = ran
        .stdout
        .lines()
        .find(|l| l.contains(" tasks run ("))
        .ok_or_else(|| anyhow::anyhow!("no summary line: {}", ran.stdout))?;
    anyhow::ensure!(
        line.starts_with(&format!("{} tasks run ({} completed)", n + 2, n + 2)),
        "{line}"
    );
    let seconds = line
        .rsplit(" in ")
        .next()
        .and_then(|s| s.trim_end_matches(" s").parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no time in `{line}`"))?;
    Ok(seconds)
}

/// `benches/dev_throughput.py` against a dev: the seconds it measured.
fn client(
    python: &std::path::Path,
    endpoint: &str,
    wasm: &std::path::Path,
    mode: &str,
    n: usize,
) -> anyhow::Result<f64> {
    let output = Command::new(python)
        .arg(repo_dir().join("benches").join("dev_throughput.py"))
        .args([endpoint, path(wasm), mode, &n.to_string()])
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "dev_throughput.py {mode} {n} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // "tasks=<n> seconds=<s>"
    stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("seconds="))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no time in `{stdout}`"))
}
