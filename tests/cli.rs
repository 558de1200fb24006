//! The binary as a shell pipeline sees it: output streams closed early, and `submit` without a
//! control plane (unreachable or silent endpoint, bad arguments), each ending with one clear
//! line and a non-zero exit code, never a panic, within a bounded time.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{armonik_wasm, armonik_wasm_command, assert_no_panic, free_port, guest, path};

/// Exit code when stdout or stderr closed early (128 + SIGPIPE, as a shell reports it).
const CLOSED: i32 = 141;

#[test]
fn inspect_into_a_reader_that_stops_after_one_line_ends_quietly() {
    let echo = guest("echo");
    // The reader closes after one line (`| head -1`)...
    let mut child = armonik_wasm_command(&["inspect", path(&echo)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("armonik-wasm starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    assert!(first.contains("a WebAssembly component"), "{first}");
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let status = child.wait().expect("exit");
    assert_no_panic(&stderr);
    // All of inspect's lines may fit in the pipe before the reader closes it.
    assert!(
        status.success() || status.code() == Some(CLOSED),
        "{status}: {stderr}"
    );

    // ...and one that is closed before the first line, so the write surely fails.
    let mut child = armonik_wasm_command(&["inspect", path(&echo)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("armonik-wasm starts");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("exit");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_no_panic(&stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(output.status.code(), Some(CLOSED), "{stderr}");
}

#[test]
fn run_with_stdout_closed_still_writes_its_outputs_and_cleans_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let work = dir.path().join("tmp");
    std::fs::create_dir(&work).expect("tmp dir");
    let mut child = armonik_wasm_command(&[
        "run",
        path(&guest("echo")),
        "--payload-text",
        "closed",
        "--outputs",
        path(&out),
    ])
    .env("TMPDIR", &work)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("armonik-wasm starts");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("exit");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_no_panic(&stderr);
    assert_eq!(output.status.code(), Some(CLOSED), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("output")).expect("output"),
        "closed"
    );
    // The work folder is gone, as after any run.
    let left = common::left_in_tmp(&work);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_error_to_a_closed_stderr_is_not_a_panic() {
    let mut child = armonik_wasm_command(&["inspect", "/nonexistent/component.wasm"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("armonik-wasm starts");
    drop(child.stderr.take());
    let status = child.wait().expect("exit");
    // 1 (the error, unseen), not 101 (a panic).
    assert_eq!(status.code(), Some(1), "{status}");
}

#[test]
fn submit_to_an_unreachable_endpoint_fails_in_one_line_at_once() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let ran = armonik_wasm(&[
        "submit",
        "--endpoint",
        &endpoint,
        path(&guest("echo")),
        "--payload-text",
        "hello",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!ran.success);
    assert_no_panic(&ran.stderr);
    assert_eq!(ran.stderr.trim().lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .starts_with("error: cannot connect to http://127.0.0.1:"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("refused"), "{}", ran.stderr);
}

#[test]
fn submit_to_an_endpoint_that_never_answers_gives_up_in_time() {
    // The kernel accepts the connection; nothing ever answers on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let started = Instant::now();
    let ran = armonik_wasm(&[
        "submit",
        "--endpoint",
        &endpoint,
        "--connect-timeout",
        "1s",
        path(&guest("echo")),
    ]);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    assert!(!ran.success);
    assert_no_panic(&ran.stderr);
    assert_eq!(ran.stderr.trim().lines().count(), 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("within 1 s"), "{}", ran.stderr);
    drop(listener);
}

#[test]
fn submit_refuses_bad_arguments_before_connecting() {
    // No control plane anywhere: each of these must fail on its own terms first.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let echo = guest("echo");
    let cases: [(&[&str], &str); 9] = [
        (
            &["--dep", "dir=/tmp"],
            "the file of --dep dir: /tmp is not a regular file",
        ),
        (
            &["--outputs", "/proc/no-such-folder"],
            "cannot create the outputs folder /proc/no-such-folder",
        ),
        (
            &["--dep", "no-equal-sign"],
            "--dep expects NAME=FILE, got `no-equal-sign`",
        ),
        (&["--dep", "=file"], "--dep expects NAME=FILE"),
        (
            &["--dep", "input=/nonexistent/input.bin"],
            "cannot read the file of --dep input: /nonexistent/input.bin",
        ),
        (&["--option", "LibraryBlobId=x"], "set by submit itself"),
        (
            &["--max-duration=-1"],
            "invalid value '-1' for '--max-duration <SECS>': -1 is negative",
        ),
        (
            &["--connect-timeout", "abc"],
            "invalid value 'abc' for '--connect-timeout <DURATION>': `abc` is not a duration",
        ),
        (
            &["--connect-timeout=nan"],
            "invalid value 'nan' for '--connect-timeout <DURATION>': `nan` is not a number of seconds",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["submit", "--endpoint", &endpoint, path(&echo)];
        args.extend_from_slice(extra);
        let ran = armonik_wasm(&args);
        assert!(!ran.success, "{extra:?}");
        assert_no_panic(&ran.stderr);
        assert!(ran.stderr.contains(expected), "{extra:?}: {}", ran.stderr);
        assert!(!ran.stderr.contains("cannot connect"), "{}", ran.stderr);
    }

    let ran = armonik_wasm(&[
        "submit",
        "--endpoint",
        &endpoint,
        "/nonexistent/component.wasm",
    ]);
    assert!(!ran.success);
    assert_no_panic(&ran.stderr);
    assert!(
        ran.stderr
            .contains("cannot read the component /nonexistent/component.wasm"),
        "{}",
        ran.stderr
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\x00\x00\x00").expect("file");
    let ran = armonik_wasm(&["submit", "--endpoint", &endpoint, path(&core)]);
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("core WebAssembly module"),
        "{}",
        ran.stderr
    );
}

#[test]
fn logs_into_a_pipe_carry_no_colour_codes() {
    // A failing task logs a warning; a container's log collector reads it through a pipe, as
    // here, and would store colour codes as text.
    let dir = tempfile::tempdir().expect("temp dir");
    let ran = armonik_wasm(&[
        "run",
        path(&guest("fail")),
        "--payload-text",
        "fails on purpose",
        "--outputs",
        path(dir.path()),
    ]);
    assert!(!ran.success);
    assert!(ran.stderr.contains("fails on purpose"), "{}", ran.stderr);
    assert!(!ran.stderr.contains('\x1b'), "{:?}", ran.stderr);
}
