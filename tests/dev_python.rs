//! The official, unmodified ArmoniK Python client (`armonik` on PyPI, pinned by
//! `.ci/install-polyglot-tools` into its tools venv) against `armonik-wasm dev`: each test starts
//! its own `dev`, runs one workflow script of `tests/python/` with the venv's Python, and
//! asserts on its exit status and output.
//!
//! The scripts check what ArmoniK promises (`check` in `tests/python/common.py`, every failed
//! check listed, not only the first) and exit non-zero if any failed; they print the facts the
//! tests here assert on as well. Without the venv or the package every test fails, saying to run
//! `.ci/install-polyglot-tools`.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::dev::Dev;
use common::python::python;
use common::{guest, proc_status_kib, repo_dir};

/// The guests the scripts run (`ARMONIK_GUESTS/<name>.wasm`).
const SCRIPT_GUESTS: [&str; 4] = ["echo", "fail", "fanout", "hostile"];

// ---------------------------------------------------------------------------------------------
// `armonik-wasm dev`
// ---------------------------------------------------------------------------------------------

/// A dev for one workflow; the first call builds every guest the scripts run.
fn start_dev() -> Dev {
    let guests = SCRIPT_GUESTS.map(guest);
    assert!(guests.iter().all(|g| g.parent() == guests[0].parent()));
    Dev::start_in_temp()
}

/// Runs workflow scripts against a dev.
trait RunScript {
    /// Runs `tests/python/<script> <args>` against this dev, killed after `timeout`.
    fn run(&self, script: &str, args: &[&str], timeout: Duration) -> Script;
}

impl RunScript for Dev {
    fn run(&self, script: &str, args: &[&str], timeout: Duration) -> Script {
        let file = repo_dir().join("tests").join("python").join(script);
        let guests = guest("echo").parent().expect("guest folder").to_owned();
        let mut child = Command::new(python())
            .arg(&file)
            .args(args)
            .env(
                "ARMONIK_ENDPOINT",
                self.endpoint.trim_start_matches("http://"),
            )
            .env("ARMONIK_GUESTS", &guests)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", python().display()));
        let stdout = read_all(child.stdout.take().expect("stdout"));
        let stderr = read_all(child.stderr.take().expect("stderr"));
        let started = Instant::now();
        let (status, timed_out) = loop {
            if let Some(status) = child.try_wait().expect("python's status") {
                break (Some(status), false);
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break (None, true);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let script = Script {
            name: format!("{script} {}", args.join(" ")),
            success: status.is_some_and(|s| s.success()),
            timed_out,
            elapsed: started.elapsed(),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
            dev_log: self.log_tail(),
        };
        eprintln!(
            "{} took {:.1} s",
            script.name.trim(),
            script.elapsed.as_secs_f64()
        );
        script
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// What one script did.
struct Script {
    name: String,
    success: bool,
    timed_out: bool,
    elapsed: Duration,
    stdout: String,
    stderr: String,
    dev_log: String,
}

impl Script {
    /// Everything, for failure messages.
    fn all(&self) -> String {
        format!(
            "--- {}{} after {:.1} s\n--- stdout:\n{}\n--- stderr:\n{}\n--- dev's log (end):\n{}",
            self.name.trim(),
            if self.timed_out {
                " HUNG: killed"
            } else if self.success {
                " passed"
            } else {
                " failed"
            },
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr,
            self.dev_log
        )
    }

    /// Asserts that every check of the script passed, and that its output says each of
    /// `facts`.
    fn assert_passed(&self, facts: &[&str]) {
        assert!(
            self.success && self.stdout.contains("PASS"),
            "{}",
            self.all()
        );
        for fact in facts {
            assert!(
                self.stdout.contains(fact),
                "`{fact}` missing:\n{}",
                self.all()
            );
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Workflows
// ---------------------------------------------------------------------------------------------

#[test]
fn a_session_keeps_its_default_options_and_is_listed() {
    let dev = start_dev();
    dev.run("session.py", &[], MINUTE).assert_passed(&[
        "ok: get_session returns the session",
        "ok: priority kept (3)",
        "ok: list_sessions lists it",
    ]);
}

#[test]
fn a_streamed_component_echoes_0_b_1_kib_and_5_mib_byte_exact() {
    let dev = start_dev();
    dev.run("echo.py", &["0", "1024", "5242880"], 2 * MINUTE)
        .assert_passed(&[
            "echoed 0\n",
            "echoed 1024\n",
            "echoed 5242880\n",
            "ok: 5242880 B: byte-exact",
        ]);
}

#[test]
fn a_graph_of_subtasks_sums_its_parts() {
    let dev = start_dev();
    // 0² + 1² + ... + 9² through 10 parts and one sum.
    dev.run("fanout.py", &["10"], 2 * MINUTE)
        .assert_passed(&["sum: 285\n", "ok: 12 tasks in the session"]);
}

#[test]
fn a_failing_task_errors_aborts_its_output_and_the_wait_raises() {
    let dev = start_dev();
    dev.run("fail.py", &[], MINUTE).assert_passed(&[
        "wait: raised: RuntimeError",
        "ok: the task is ERROR",
        "ok: its output carries the message ('bad input: x < 0')",
        "ok: its output is ABORTED",
    ]);
}

#[test]
fn a_trapping_task_is_retried_twice_then_errors() {
    let dev = start_dev();
    dev.run("retry.py", &["unreachable"], 2 * MINUTE)
        .assert_passed(&[
            "wait: raised: RuntimeError",
            "ok: the output is ABORTED",
            "ok: three attempts",
        ]);
}

#[test]
fn a_thousand_tasks_in_one_submit_all_complete() {
    let dev = start_dev();
    dev.run("many.py", &["1000"], 5 * MINUTE).assert_passed(&[
        "ok: 1000 tasks submitted in one call",
        "ok: every output is its payload",
        "counts: {'COMPLETED': 1000}",
    ]);
}

#[test]
fn a_64_mib_payload_is_echoed_byte_exact() {
    let dev = start_dev();
    dev.run("echo.py", &["67108864"], 3 * MINUTE)
        .assert_passed(&["echoed 67108864\n", "ok: 67108864 B: byte-exact"]);
}

#[test]
fn cancelling_a_session_cancels_its_running_task() {
    let dev = start_dev();
    dev.run("cancel.py", &[], 2 * MINUTE).assert_passed(&[
        "ok: the task ends CANCELLED",
        "ok: its output is ABORTED",
        "ok: the session is CANCELLED",
        "wait: raised: RuntimeError",
    ]);
}

#[test]
fn tasks_are_listed_and_counted_with_filters_sorting_and_paging() {
    let dev = start_dev();
    dev.run("filters.py", &[], 2 * MINUTE).assert_passed(&[
        "ok: Kind == a | Kind == b: 5 tasks",
        "ok: created_at > before b: 3 tasks",
        "ok: pages 0, 1, 2 of size 2",
        "ok: count_tasks_by_status: {'COMPLETED': 5, 'ERROR': 1}",
    ]);
}

#[test]
fn bad_input_gets_a_clear_grpc_status_and_dev_keeps_answering() {
    let dev = start_dev();
    dev.run("bad_input.py", &[], 2 * MINUTE).assert_passed(&[
        "ok: get_session(unknown): StatusCode.NOT_FOUND",
        "ok: get_result(unknown): StatusCode.NOT_FOUND",
        "ok: upload_result_data(completed result): StatusCode.FAILED_PRECONDITION",
        "ok: submit_tasks(closed session): StatusCode.FAILED_PRECONDITION",
        "ok: create_session(priority=0): StatusCode.INVALID_ARGUMENT",
        "ok: not a component: its message says so",
        "ok: a task after all that completes",
    ]);
}

#[test]
fn a_1_gib_result_streams_through_dev_in_little_memory() {
    let dev = start_dev();
    let script = dev.run("big_result.py", &["1073741824"], 5 * MINUTE);
    let peak_kib = proc_status_kib(dev.pid(), "VmHWM:");
    eprintln!("dev's peak RSS: {} MiB", peak_kib / 1024);
    script.assert_passed(&["ok: downloaded 1073741824 B", "ok: byte-exact"]);
    assert!(
        peak_kib < 300 * 1024,
        "dev's peak RSS is {} MiB for a 1 GiB result: results must stream through files\n{}",
        peak_kib / 1024,
        script.all()
    );
}
