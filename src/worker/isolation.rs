//! `serve --isolation process`: each task in a fresh child process of this binary, an OS
//! process boundary around the wasm sandbox.
//!
//! The worker keeps everything but the guest: it selects and compiles the component (its
//! caches stay warm across tasks), writes the compiled artifact once into a sealed memory file
//! (see `Artifact`), and applies the outcome table to what the child reports. The child (`armonik-wasm
//! task-process`, hidden) maps that artifact (so it only instantiates), connects to ArmoniK's
//! agent itself, runs the task in its sandbox, prints a [`Report`] on stdout and exits. The
//! request, which holds the communication token, travels on the child's stdin, never in its
//! arguments. Killing the child (deadline, cancelled call, worker exit) ends the guest and
//! its agent calls with it.
//!
//! Starting a process, its runtime and its engine costs several milliseconds, so the worker
//! keeps one child started ahead, waiting on its stdin with the last task's component already
//! mapped: it has run nothing, so each task still gets a process no task used before.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::agent::bridge::Ledger;
use crate::agent::grpc::GrpcAgent;
use crate::host_files::Folder;
use crate::proto::v1::worker::ProcessRequest;
use crate::sandbox::components::Prepared;
use crate::sandbox::{DEFAULT_KEEP_RESIDENT, Finished, RunError, RunStats, Sandbox, SandboxConfig};
use crate::telemetry::logs::LogFormat;
use crate::worker::config::{ChannelAddress, SocketType};
use crate::worker::task_runner::{Assignment, chunk_size, execute};
use wasmtime::component::Component;

/// Time a child gets past the task's deadline to report it (it stops its guest at the
/// deadline itself) before it is killed.
const REPORT_MARGIN: Duration = Duration::from_secs(2);

/// The hidden subcommand a child runs.
pub const SUBCOMMAND: &str = "task-process";

/// Runs tasks in child processes.
pub struct ProcessIsolation {
    executable: PathBuf,
    /// Arguments every child gets: agent channel, sandbox settings, log format.
    arguments: Vec<String>,
    /// Compiled artifacts by component digest, written once each.
    artifacts: Mutex<HashMap<String, Artifact>>,
    /// The child started ahead for the next task.
    spare: Mutex<Option<tokio::process::Child>>,
}

/// A compiled component in a memory file (`memfd`) sealed once written: nothing of it is on
/// disk, so nothing is left behind however the worker ends (killed outright, by the OOM killer
/// or an operator), and nothing can change it after it was written (it is native code that
/// children map and run). Children open it through `/proc/<worker pid>/fd/<fd>`, which only
/// processes of the worker's user may do.
struct Artifact {
    _file: std::fs::File,
    path: PathBuf,
}

impl Artifact {
    /// `bytes` in a new sealed memory file named after `digest`.
    ///
    /// # Errors
    /// The kernel refuses a memory file or a seal, or `bytes` cannot be written to it.
    fn new(digest: &str, bytes: &[u8]) -> std::io::Result<Self> {
        use rustix::fs::{MemfdFlags, SealFlags};
        use std::io::Write as _;
        use std::os::fd::AsRawFd as _;
        let name = format!("armonik-wasm-{digest}");
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        // Never executable as a program either, where the kernel knows the flag (6.3+).
        let fd = rustix::fs::memfd_create(&name, flags | MemfdFlags::NOEXEC_SEAL)
            .or_else(|_| rustix::fs::memfd_create(&name, flags))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(bytes)?;
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
        )?;
        let path = format!("/proc/{}/fd/{}", std::process::id(), file.as_raw_fd()).into();
        Ok(Self { _file: file, path })
    }
}

/// What a child reads on its stdin before the request: one JSON line.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Header {
    /// The task's compiled component.
    artifact: PathBuf,
    /// The task's time budget, in milliseconds.
    max_duration_ms: u64,
    /// What is left of it, in milliseconds.
    remaining_ms: u64,
}

impl ProcessIsolation {
    /// Children of this executable, calling the agent at `agent` and sandboxed as `sandbox`
    /// says; `log_format` is the worker's (`text`, `json`, `clef`), so their records read
    /// like its own.
    ///
    /// # Errors
    /// The executable cannot be found, or `/proc` is not there (children open the compiled
    /// components through it, see `Artifact`).
    pub fn new(
        agent: &ChannelAddress,
        sandbox: &SandboxConfig,
        log_format: LogFormat,
    ) -> anyhow::Result<Self> {
        let executable = std::env::current_exe()?;
        std::fs::read_dir(format!("/proc/{}/fd", std::process::id())).map_err(|error| {
            anyhow::anyhow!(
                "--isolation process needs /proc: task processes open the compiled components \
                 through /proc/<worker pid>/fd ({error})"
            )
        })?;
        let agent_address = match agent {
            ChannelAddress::Unix(path) => path.display().to_string(),
            ChannelAddress::Tcp { uri, .. } => uri.clone(),
        };

        let mut arguments = vec![
            format!("--log-format={}", value_name(&log_format)),
            SUBCOMMAND.to_owned(),
            format!("--agent-address={agent_address}"),
            format!("--agent-socket-type={}", value_name(&agent.socket_type())),
            format!("--memory-limit-bytes={}", sandbox.memory_limit),
        ];
        if !sandbox.pooling {
            arguments.push("--no-pooling".into());
        }
        if !sandbox.instantiate_ahead {
            arguments.push("--no-instantiate-ahead".into());
        }
        Ok(Self {
            executable,
            arguments,
            artifacts: Mutex::default(),
            spare: Mutex::default(),
        })
    }

    /// Runs `assignment` with `component` in a fresh child process until `deadline`.
    pub async fn run(
        &self,
        component: &Prepared,
        assignment: Assignment,
        deadline: Instant,
    ) -> Finished {
        match self.run_child(component, assignment, deadline).await {
            Ok(finished) => finished,
            Err(outcome) => Finished {
                outcome: Err(outcome),
                ledger: Ledger::default(),
                stats: RunStats::default(),
            },
        }
    }

    /// A child waiting for its task, with `preload` mapped.
    fn spawn(&self, preload: &std::path::Path) -> std::io::Result<tokio::process::Child> {
        tokio::process::Command::new(&self.executable)
            .args(&self.arguments)
            .arg(format!("--preload={}", preload.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropped when the task ends early (deadline, cancelled call) or the worker
            // stops: the guest goes too.
            .kill_on_drop(true)
            .spawn()
            .map(|mut child| {
                if let Some(stderr) = child.stderr.take() {
                    tokio::spawn(relay(stderr));
                }
                child
            })
    }

    /// The spare child if it is still alive, else a new one; and a new spare for the next
    /// task, which starts while this one runs.
    fn take_child(&self, artifact: &std::path::Path) -> Result<tokio::process::Child, RunError> {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        let ready = spare
            .take()
            .and_then(|mut child| matches!(child.try_wait(), Ok(None)).then_some(child));
        let child = match ready {
            Some(child) => child,
            None => self.spawn(artifact).map_err(|error| {
                RunError::Setup(format!("cannot start the task's process: {error}"))
            })?,
        };
        match self.spawn(artifact) {
            Ok(next) => *spare = Some(next),
            Err(error) => tracing::warn!(%error, "cannot start a task process ahead"),
        }
        Ok(child)
    }

    async fn run_child(
        &self,
        component: &Prepared,
        assignment: Assignment,
        deadline: Instant,
    ) -> Result<Finished, RunError> {
        let artifact = self.artifact(component)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut child = self.take_child(&artifact)?;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let header = Header {
            artifact,
            max_duration_ms: millis(assignment.max_duration),
            remaining_ms: millis(remaining),
        };
        let mut input = serde_json::to_vec(&header).map_err(|error| {
            RunError::Setup(format!("cannot brief the task's process: {error}"))
        })?;
        input.push(b'\n');
        assignment.request.encode(&mut input).map_err(|error| {
            RunError::Setup(format!("cannot brief the task's process: {error}"))
        })?;
        let talk = async {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(&input).await?;
            }
            // The report is one line; the reply need not wait for the process to exit.
            let mut report = Vec::new();
            if let Some(stdout) = child.stdout.take() {
                tokio::io::BufReader::new(stdout)
                    .read_until(b'\n', &mut report)
                    .await?;
            }
            Ok::<_, std::io::Error>(report)
        };
        let report = match tokio::time::timeout_at(deadline + REPORT_MARGIN, talk).await {
            Err(_elapsed) => return Err(RunError::Deadline(assignment.max_duration)),
            Ok(Err(error)) => {
                return Err(RunError::Trap(format!("lost the task's process: {error}")));
            }
            Ok(Ok(report)) => report,
        };
        match serde_json::from_slice::<Report>(&report) {
            Ok(report) => {
                // It exits by itself (its last guest lines still to log); reaped meanwhile.
                tokio::spawn(async move {
                    let _ = child.wait().await;
                });
                Ok(report.into())
            }
            // Killed (by the OOM killer, an operator) or crashed: as a trap, retried.
            Err(_) => {
                let status = child.wait().await.map_or_else(
                    |error| format!("an unknown status ({error})"),
                    |status| status.to_string(),
                );
                Err(RunError::Trap(format!(
                    "the task's process ended with {status} without a report"
                )))
            }
        }
    }

    /// Where a child opens the compiled artifact of `component`, written on first use.
    fn artifact(&self, component: &Prepared) -> Result<PathBuf, RunError> {
        let mut artifacts = self.artifacts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(artifact) = artifacts.get(&component.digest) {
            return Ok(artifact.path.clone());
        }
        let setup = |error: String| {
            RunError::Setup(format!(
                "cannot hand the component to the task's process: {error}"
            ))
        };
        let bytes = component
            .pre
            .instance_pre()
            .component()
            .serialize()
            .map_err(|e| setup(format!("{e:#}")))?;
        let artifact =
            Artifact::new(&component.digest, &bytes).map_err(|e| setup(e.to_string()))?;
        let path = artifact.path.clone();
        artifacts.insert(component.digest.clone(), artifact);
        Ok(path)
    }
}

/// Passes a child's log records (the guest's lines among them) on to the worker's stderr, a
/// whole line per write under the worker's own lock: written by several processes straight
/// to the pipe a container's stderr is, records longer than the pipe's atomic size would
/// interleave.
async fn relay(stderr: tokio::process::ChildStderr) {
    use std::io::Write as _;
    let mut lines = tokio::io::BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let _ = std::io::stderr().lock().write_all(&line);
            }
        }
    }
}

/// Settings of a task process (given by the worker, never by hand).
#[derive(Debug, clap::Args)]
pub struct TaskProcessArgs {
    /// A compiled component to map while waiting for the task (the last task's: usually the
    /// next one's too), one of the worker's artifacts.
    #[arg(long)]
    preload: Option<PathBuf>,
    /// Where the agent listens.
    #[arg(long)]
    agent_address: String,
    /// How the agent's channel is carried.
    #[arg(long, value_enum)]
    agent_socket_type: SocketType,
    /// Linear memory the task may use, in bytes.
    #[arg(long)]
    memory_limit_bytes: usize,
    /// Allocate on demand, as the worker does.
    #[arg(long)]
    no_pooling: bool,
    /// Do not make the preloaded component's instance while waiting, as the worker says.
    #[arg(long)]
    no_instantiate_ahead: bool,
}

/// The child's side: gets ready, reads its header line (artifact, time budget) and the
/// request on stdin, runs the task, prints the [`Report`] on stdout.
///
/// # Errors
/// The input cannot be read or decoded, the artifact cannot be loaded, or the report cannot
/// be written: the worker then reports a trap (the task is retried).
pub async fn task_process(args: TaskProcessArgs) -> anyhow::Result<()> {
    // A worker killed outright (no chance to kill its children) takes its task with it:
    // ArmoniK retries the task, which must not go on writing under the old token. Linux
    // sends this when the thread that started the child ends: the worker starts children
    // from its guest thread, which lives as long as it does.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
    let ahead = args.preload.is_some() && !args.no_instantiate_ahead;
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        // Room for the preloaded component's instance made ahead and, should the task need
        // another component, that one's: a task never waits for the other or fails for it.
        max_concurrent_tasks: if ahead { 2 } else { 1 },
        memory_limit: args.memory_limit_bytes,
        pooling: !args.no_pooling,
        // One task per process: nothing comes after it (the preloaded component's instance
        // is made ahead below, while the child waits for its task).
        instantiate_ahead: false,
        // No memory is reset for a next task: the process ends with its task.
        keep_resident: DEFAULT_KEEP_RESIDENT,
    })?);
    let load = |path: &std::path::Path| -> anyhow::Result<_> {
        // SAFETY: the artifact is the worker's own: it serialized it from a component it
        // compiled into a memory file only its user can open, sealed against any change, and
        // named it to this process (see `Artifact`). wasmtime checks that it was made by a
        // compatible engine (the worker passes its settings).
        let component =
            unsafe { Component::deserialize_file(sandbox.engine(), path) }.map_err(|error| {
                anyhow::anyhow!(
                    "cannot load the compiled component {}: {error:#}",
                    path.display()
                )
            })?;
        sandbox.prepare(&component)
    };
    let preloaded = match &args.preload {
        Some(path) => Some((path.clone(), load(path)?)),
        None => None,
    };
    if let (true, Some((_, pre))) = (ahead, &preloaded) {
        sandbox.make_ahead(pre);
    }
    let agent_address = ChannelAddress::parse(&args.agent_address, args.agent_socket_type)?;
    let agent = Arc::new(GrpcAgent::connect_lazy(&agent_address)?);
    // The task's calls find the connection made, or wait for it on the same channel.
    tokio::spawn({
        let agent = agent.clone();
        async move { agent.connect_now().await }
    });

    // Ready: now wait for the task.
    let mut input = Vec::new();
    tokio::io::stdin().read_to_end(&mut input).await?;
    let received = Instant::now();
    let split = input
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| anyhow::anyhow!("no header line on stdin"))?;
    let header: Header = serde_json::from_slice(&input[..split])?;
    let request = ProcessRequest::decode(&input[split + 1..])?;
    let deadline = received + Duration::from_millis(header.remaining_ms);
    let pre = match preloaded {
        Some((path, pre)) if path == header.artifact => pre,
        _ => load(&header.artifact)?,
    };
    let data_folder = match Folder::open_shared(std::path::Path::new(&request.data_folder)) {
        Ok(folder) => Arc::new(folder),
        Err(error) => {
            let report = Report::from(Finished {
                outcome: Err(RunError::Setup(format!(
                    "cannot open the data folder {}: {error}",
                    request.data_folder
                ))),
                ledger: Ledger::default(),
                stats: RunStats::default(),
            });
            return print_report(&report);
        }
    };
    let assignment = Assignment {
        chunk_size: chunk_size(&request),
        request,
        max_duration: Duration::from_millis(header.max_duration_ms),
    };
    let finished = execute(&sandbox, &pre, agent, assignment, data_folder, deadline).await;
    print_report(&Report::from(finished))
}

/// Writes the report as one line (JSON escapes newlines inside strings).
fn print_report(report: &Report) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, report)?;
    stdout.write_all(b"\n")?;
    stdout.flush()?;
    Ok(())
}

/// What a task process tells the worker: a [`Finished`], as JSON on its stdout.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Report {
    outcome: ReportOutcome,
    notified: Vec<String>,
    created: Vec<String>,
    delegated: Vec<String>,
    agent_unavailable: Option<String>,
    /// Per call: the Agent service's method, the gRPC code, nanoseconds.
    agent_calls: Vec<(String, i32, u64)>,
    instantiation_ns: u64,
    made_ahead: bool,
    memory_peak: usize,
}

/// The guest's result, or why it has none ([`RunError`]).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum ReportOutcome {
    Returned,
    Failed(String),
    Deadline(u64),
    Trap(String),
    Setup(String),
}

impl From<Finished> for Report {
    fn from(finished: Finished) -> Self {
        let outcome = match finished.outcome {
            Ok(Ok(())) => ReportOutcome::Returned,
            Ok(Err(details)) => ReportOutcome::Failed(details),
            Err(RunError::Deadline(budget)) => {
                ReportOutcome::Deadline(u64::try_from(budget.as_millis()).unwrap_or(u64::MAX))
            }
            Err(RunError::Trap(message)) => ReportOutcome::Trap(message),
            Err(RunError::Setup(message)) => ReportOutcome::Setup(message),
        };
        let ledger = finished.ledger;
        Self {
            outcome,
            notified: ledger.notified.into_iter().collect(),
            created: ledger.created.into_iter().collect(),
            delegated: ledger.delegated.into_iter().collect(),
            agent_unavailable: ledger.agent_unavailable,
            agent_calls: ledger
                .agent_calls
                .into_iter()
                .map(|(operation, code, elapsed)| {
                    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
                    (operation, i32::from(code), nanos)
                })
                .collect(),
            made_ahead: finished.stats.made_ahead,
            instantiation_ns: u64::try_from(finished.stats.instantiation.as_nanos())
                .unwrap_or(u64::MAX),
            memory_peak: finished.stats.memory_peak,
        }
    }
}

impl From<Report> for Finished {
    fn from(report: Report) -> Self {
        let outcome = match report.outcome {
            ReportOutcome::Returned => Ok(Ok(())),
            ReportOutcome::Failed(details) => Ok(Err(details)),
            ReportOutcome::Deadline(ms) => Err(RunError::Deadline(Duration::from_millis(ms))),
            ReportOutcome::Trap(message) => Err(RunError::Trap(message)),
            ReportOutcome::Setup(message) => Err(RunError::Setup(message)),
        };
        Self {
            outcome,
            ledger: Ledger {
                notified: report.notified.into_iter().collect(),
                created: report.created.into_iter().collect(),
                delegated: report.delegated.into_iter().collect(),
                agent_unavailable: report.agent_unavailable,
                agent_calls: report
                    .agent_calls
                    .into_iter()
                    .map(|(operation, code, nanos)| {
                        (
                            operation,
                            tonic::Code::from_i32(code),
                            Duration::from_nanos(nanos),
                        )
                    })
                    .collect(),
            },
            stats: RunStats {
                instantiation: Duration::from_nanos(report.instantiation_ns),
                memory_peak: report.memory_peak,
                made_ahead: report.made_ahead,
            },
        }
    }
}

/// How a setting is spelt on a task process's command line.
fn value_name(value: &impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|value| value.get_name().to_owned())
        .unwrap_or_default()
}
