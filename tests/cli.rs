//! The binary as a shell pipeline sees it: output streams closed early, and `submit` without a
//! control plane (unreachable or silent endpoint, bad arguments), each ending with one clear
//! line and a non-zero exit code, never a panic, within a bounded time.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{armonik_wasm, armonik_wasm_command, free_port, guest, path};

/// Exit code when stdout or stderr closed early (128 + SIGPIPE, as a shell reports it).
const CLOSED: i32 = 141;

/// What a panic leaves on stderr.
fn assert_no_panic(stderr: &str) {
    for text in ["panicked", "RUST_BACKTRACE", "Broken pipe"] {
        assert!(!stderr.contains(text), "{text} in: {stderr}");
    }
}

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
    let cases: [(&[&str], &str); 7] = [
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
        (&["--max-duration=-1"], "--max-duration must be"),
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

/// `armonik-wasm <args>` with `envs` added: how it exited, and its standard error.
fn with_env(args: &[&str], envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let output = armonik_wasm_command(args)
        .envs(envs.iter().copied())
        .output()
        .expect("armonik-wasm runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status, stderr)
}

#[test]
fn on_off_variables_take_the_usual_spellings_and_refuse_the_rest() {
    let echo = guest("echo");
    let inspect =
        |variable: &str, value: &str| with_env(&["inspect", path(&echo)], &[(variable, value)]);
    for (variable, flag) in [
        ("ArmonikWasm__NoPooling", "--no-pooling"),
        ("ArmonikWasm__NoInstantiateAhead", "--no-instantiate-ahead"),
    ] {
        // What operators write: .NET's `True`, shell's `1`, and their negations.
        for value in [
            "true", "True", "TRUE", "1", "yes", "on", "false", "False", "0", "no", "off",
        ] {
            let (status, stderr) = inspect(variable, value);
            assert!(status.success(), "{variable}={value}: {status}: {stderr}");
        }
        for value in ["maybe", "2", "enabled"] {
            let (status, stderr) = inspect(variable, value);
            assert_eq!(status.code(), Some(2), "{variable}={value}: {stderr}");
            assert_no_panic(&stderr);
            assert!(
                stderr.contains(&format!("invalid value '{value}' for '{flag}'")),
                "{variable}={value}: {stderr}"
            );
        }
    }
}

/// A command's arguments, its environment, and what its error must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Settings out of their range stop the command at once with the flag named, never a worker
/// that looks healthy and refuses every task (0 tasks at once), a panic on overflow (a pool
/// of 4,294,967,295 tasks), a silent fall-back (a memory above wasm32's 4 GiB) or a default
/// time budget of nothing.
#[test]
fn settings_out_of_range_are_refused_with_the_flag_named() {
    let echo = guest("echo");
    let echo = path(&echo);
    let cases: [Case; 9] = [
        (
            &["inspect", echo, "--memory-limit-mib", "0"],
            &[],
            "invalid value '0' for '--memory-limit-mib",
        ),
        (
            &["inspect", echo],
            &[("ArmonikWasm__MemoryLimitMiB", "4097")],
            "invalid value '4097' for '--memory-limit-mib",
        ),
        (
            &[
                "inspect",
                echo,
                "--keep-resident-mib",
                "18446744073709551615",
            ],
            &[],
            "for '--keep-resident-mib",
        ),
        (
            &["serve", "--max-concurrent-tasks", "0"],
            &[],
            "invalid value '0' for '--max-concurrent-tasks",
        ),
        (
            &["serve"],
            &[("ArmonikWasm__MaxConcurrentTasks", "4294967295")],
            "invalid value '4294967295' for '--max-concurrent-tasks",
        ),
        (
            &["run", echo, "--parallelism", "0"],
            &[],
            "invalid value '0' for '--parallelism",
        ),
        (
            &["dev", "--parallelism", "100000"],
            &[],
            "invalid value '100000' for '--parallelism",
        ),
        (
            &["run", echo, "--default-max-duration", "0"],
            &[],
            "--default-max-duration must be more than 0 seconds",
        ),
        (
            &["run", echo],
            &[("ArmonikWasm__DefaultMaxDurationSeconds", "-1")],
            "--default-max-duration must be a positive number of seconds",
        ),
    ];
    for (args, envs, expected) in cases {
        let (status, stderr) = with_env(args, envs);
        assert!(!status.success(), "{args:?} {envs:?}: {stderr}");
        assert_no_panic(&stderr);
        assert!(stderr.contains(expected), "{args:?} {envs:?}: {stderr}");
    }
}

/// `--isolation` (`ArmonikWasm__Isolation`) takes any case, as the other named settings do,
/// and .NET's spelling `InProcess`.
#[test]
fn isolation_takes_any_case() {
    // A bad socket type stops `serve` right after its settings were read: reaching it means
    // the isolation was taken.
    let serve = |isolation: &str| {
        with_env(
            &["serve", "--worker-socket-type", "pipe"],
            &[("ArmonikWasm__Isolation", isolation)],
        )
        .1
    };
    for isolation in [
        "in-process",
        "InProcess",
        "inprocess",
        "IN-PROCESS",
        "process",
        "Process",
    ] {
        let stderr = serve(isolation);
        assert!(
            stderr.contains("unknown socket type"),
            "{isolation}: {stderr}"
        );
    }
    let stderr = serve("proc");
    assert!(
        stderr.contains("invalid value 'proc' for '--isolation"),
        "{stderr}"
    );
}
