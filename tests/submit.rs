//! `armonik-wasm submit` end to end, against `armonik-wasm dev` (ArmoniK's control plane in one
//! process): a task whose output comes back, and one whose error does.

mod common;

use common::dev::Dev;
use common::{guest, path};

#[test]
fn a_submitted_task_runs_and_its_output_comes_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = Dev::start(&dir.path().join("dev"));
    let out = dir.path().join("out");
    // Larger than a chunk of the upload, so the payload file travels in several messages.
    let payload: Vec<u8> = (0..5 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    let payload_file = dir.path().join("payload.bin");
    std::fs::write(&payload_file, &payload).expect("payload");
    let ran = dev.submit(&[
        path(&guest("echo")),
        "--payload",
        path(&payload_file),
        "--outputs",
        path(&out),
    ]);
    assert!(ran.success, "{}", ran.all());
    assert_eq!(std::fs::read(out.join("output")).expect("output"), payload);
    assert!(
        ran.stdout
            .contains(&format!("output: {} bytes", payload.len())),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("1 tasks run (1 completed)"),
        "{}",
        ran.stdout
    );

    let ran = dev.submit(&[
        path(&guest("echo")),
        "--payload-text",
        "hello from submit",
        "--outputs",
        path(&out),
    ]);
    assert!(ran.success, "{}", ran.all());
    assert_eq!(
        std::fs::read_to_string(out.join("output")).expect("output"),
        "hello from submit"
    );
    assert!(
        ran.stdout.contains("output: hello from submit"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_failing_task_fails_the_command_with_its_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = Dev::start(&dir.path().join("dev"));
    let out = dir.path().join("out");
    let ran = dev.submit(&[
        path(&guest("fail")),
        "--payload-text",
        "fails on purpose",
        "--outputs",
        path(&out),
    ]);
    assert!(!ran.success, "{}", ran.all());
    assert!(
        ran.stdout.contains("output: not produced (aborted)"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stderr.contains("error: fails on purpose"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    assert!(!out.join("output").exists());
}
