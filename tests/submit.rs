//! `armonik-wasm submit` end to end, against `armonik-wasm dev` (ArmoniK's control plane in one
//! process): a task whose output comes back, and one whose error does.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Ran, armonik_wasm, armonik_wasm_command, guest, path, startup_timeout};

/// `armonik-wasm dev` on a free port with its own data folder; killed on drop.
struct Dev {
    child: Child,
    endpoint: String,
}

impl Dev {
    fn start(data_dir: &Path) -> Self {
        let mut child = armonik_wasm_command(&[
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            path(data_dir),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("armonik-wasm dev starts");
        let stdout = child.stdout.take().expect("stdout");
        // Read on a thread, so that a dev that never says where it listens fails the test in
        // time instead of hanging it; the thread keeps reading so dev never blocks on stdout.
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(endpoint) = line.strip_prefix("listening on ") {
                    let _ = sender.send(endpoint.trim().to_owned());
                }
            }
        });
        let endpoint = match receiver.recv_timeout(startup_timeout().max(Duration::from_secs(30))) {
            Ok(endpoint) => endpoint,
            Err(_) => {
                let _ = child.kill();
                panic!("armonik-wasm dev did not print `listening on http://...`");
            }
        };
        Self { child, endpoint }
    }

    fn submit(&self, args: &[&str]) -> Ran {
        let mut all = vec!["submit", "--endpoint", &self.endpoint];
        all.extend_from_slice(args);
        armonik_wasm(&all)
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
