//! `armonik-wasm dev` as a test peer: started on a free port, killed on drop.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{Ran, armonik_wasm, armonik_wasm_command, path, startup_timeout};

/// `armonik-wasm dev` on a free port with its own data folder; killed on drop.
pub struct Dev {
    child: Child,
    /// Where its control plane listens (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    /// Its stderr (its log).
    log: PathBuf,
    /// The folder it was started in, when [`start_in_temp`](Self::start_in_temp) made one.
    _dir: Option<tempfile::TempDir>,
}

impl Dev {
    /// Starts one keeping its results in `data_dir`.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts one in a temporary folder of its own, removed when it is dropped.
    pub fn start_in_temp() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut dev = Self::start_with(&dir.path().join("data"), &[]);
        dev._dir = Some(dir);
        dev
    }

    /// Starts one keeping its results in `data_dir`, with `extra` arguments; its log goes
    /// to `<data_dir>.log`.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let mut args = vec![
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            path(data_dir),
        ];
        args.extend_from_slice(extra);
        // Next to the data folder, so that a test's temporary folder holds both.
        let log = data_dir.with_extension("log");
        let mut child = armonik_wasm_command(&args)
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("dev's log"))
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
                let _ = child.wait();
                panic!(
                    "armonik-wasm dev did not print `listening on http://...`:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Self {
            child,
            endpoint,
            log,
            _dir: None,
        }
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Runs `armonik-wasm submit` against it.
    pub fn submit(&self, args: &[&str]) -> Ran {
        let mut all = vec!["submit", "--endpoint", &self.endpoint];
        all.extend_from_slice(args);
        armonik_wasm(&all)
    }

    /// Asks it to stop (SIGTERM), without waiting.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits up to `timeout` for it to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client of the official `armonik` crate connected to it.
    pub async fn client(&self) -> armonik::Client {
        let channel = tonic::transport::Channel::from_shared(self.endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("dev answers");
        armonik::Client::with_channel(channel)
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
