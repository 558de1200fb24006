//! Integration-test harness for `armonik-wasm`, shared by the test binaries through `mod common;`.
//!
//! It plays ArmoniK's polling agent around the real `armonik-wasm serve` process:
//!
//! - [`guest`] builds the guest components (once per test process) and returns a `.wasm` path;
//! - [`FakeAgent`] is the Agent gRPC service of the polling agent (one bound task at a time, token
//!   checks, everything recorded), served on a real unix socket or TCP port from its own thread;
//! - [`Worker`] spawns `armonik-wasm serve`, waits until its HealthCheck answers, captures its log
//!   and kills it on drop;
//! - [`WorkerClient`] is the `armonik` crate's Worker client over that socket, with Core's
//!   deadline (`max_duration`) on `Process`;
//! - [`TaskFolder`] is a task's shared data folder plus a [`ProcessRequestBuilder`];
//! - [`Harness`] wires the three together and [`Harness::run_task`] mirrors Core's lifecycle of
//!   one task (bind, health check, `Process`, unbind).
//!
//! The behaviour mirrors ArmoniK.Core (`GrpcAgentService.cs`, `Agent.cs`, `TaskHandler.cs`); see
//! `/work/shared/armonik-worker-contract.md`. Prefer `#[tokio::test(flavor = "multi_thread")]`
//! for tests that talk to the worker: the fake agent runs on its own thread either way.
#![allow(dead_code)] // every test binary uses a different subset of the harness

pub mod dev;
pub mod polyglot;
pub mod python;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use armonik::agent;
use armonik::api::v3;
use armonik::reexports::tokio_stream::StreamExt as _;
use armonik::server::{AgentService, RequestContext};
use armonik::worker::process;
use armonik::{DataChunk, InitTaskRequest, Output, ResultStatus, TaskOptions, TaskRequestHeader};
use tonic::codegen::http;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

// ---------------------------------------------------------------------------------------------
// Guests
// ---------------------------------------------------------------------------------------------

/// The guest components of `<repo>/guests`, by crate/component name.
pub const GUESTS: [&str; 10] = [
    "echo",
    "initfs",
    "initfolder",
    "concat",
    "fanout",
    "fail",
    "probe",
    "hostile",
    "pricer",
    "wrong_world",
];

/// First 8 bytes of every WebAssembly *component* binary: `\0asm`, version 0x0d, layer 1.
pub const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// The repository root (`CARGO_MANIFEST_DIR` of the host crate).
pub fn repo_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Path of the built guest component `name` (one of [`GUESTS`]):
/// `<repo>/guests/target/wasm32-wasip2/release/<name>.wasm`.
///
/// The first call in a test process runs `cargo build --release --target wasm32-wasip2` on the
/// guest workspace (later and concurrent calls wait for it and reuse the result; concurrent test
/// binaries are serialized by cargo's own lock). Panics with the build's stderr if it fails, or
/// if the build did not produce `<name>.wasm`.
pub fn guest(name: &str) -> PathBuf {
    static BUILD: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILD.get_or_init(build_guests) {
        Ok(dir) => {
            let path = dir.join(format!("{name}.wasm"));
            assert!(
                path.is_file(),
                "guest `{name}` was not built: {} does not exist (known guests: {GUESTS:?})",
                path.display()
            );
            path
        }
        Err(error) => panic!("{error}"),
    }
}

fn build_guests() -> Result<PathBuf, String> {
    let guests = repo_dir().join("guests");
    let manifest = guests.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!(
            "the guest workspace {} does not exist",
            manifest.display()
        ));
    }
    let target_dir = guests.join("target");
    let output = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(&manifest)
        // Pinned so that the path returned by `guest` holds whatever the environment says.
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {}: {error}", env!("CARGO")))?;
    if !output.status.success() {
        return Err(format!(
            "building the guests ({}) failed with {}:\n{}",
            manifest.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(target_dir.join("wasm32-wasip2").join("release"))
}

// ---------------------------------------------------------------------------------------------
// Addresses and channels
// ---------------------------------------------------------------------------------------------

/// Which kind of socket a gRPC endpoint listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A unix domain socket (ArmoniK's default).
    Unix,
    /// TCP on 127.0.0.1.
    Tcp,
}

/// Where a gRPC endpoint (agent or worker) listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A unix domain socket path.
    Unix(PathBuf),
    /// A TCP address (always 127.0.0.1 here).
    Tcp(SocketAddr),
}

impl Address {
    /// The value for `--*-address` / `ComputePlane__*Channel__Address`: the socket path, or
    /// `http://127.0.0.1:PORT`.
    pub fn to_arg(&self) -> String {
        match self {
            Self::Unix(path) => path.display().to_string(),
            Self::Tcp(addr) => format!("http://{addr}"),
        }
    }

    /// The value for `--*-socket-type` / `ComputePlane__*Channel__SocketType`:
    /// `unixdomainsocket` or `tcp` (as ArmoniK.Infra writes them).
    pub fn socket_type(&self) -> &'static str {
        match self {
            Self::Unix(_) => "unixdomainsocket",
            Self::Tcp(_) => "tcp",
        }
    }

    /// The transport of this address.
    pub fn transport(&self) -> Transport {
        match self {
            Self::Unix(_) => Transport::Unix,
            Self::Tcp(_) => Transport::Tcp,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_arg())
    }
}

/// A free TCP port on 127.0.0.1 (bound then released, so another process may grab it first —
/// good enough for tests).
pub fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("cannot bind an ephemeral TCP port on 127.0.0.1")
        .port()
}

/// A tonic channel to `address`, connected now. Over a unix socket the URI (hence `:authority`)
/// is `http://localhost`, as Core and the SDKs do.
pub async fn connect_channel(address: &Address) -> Result<Channel, tonic::transport::Error> {
    match address {
        Address::Unix(path) => {
            let path = path.clone();
            Endpoint::from_static("http://localhost")
                .connect_timeout(Duration::from_secs(2))
                .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
        }
        Address::Tcp(addr) => {
            Endpoint::from_shared(format!("http://{addr}"))
                .expect("http://127.0.0.1:PORT is a valid URI")
                .connect_timeout(Duration::from_secs(2))
                .connect()
                .await
        }
    }
}

/// The `tonic::Status` inside an `armonik` client error.
pub fn request_error_status(error: armonik::client::RequestError) -> Status {
    match error {
        armonik::client::RequestError::Grpc { source, .. } => *source,
        other => Status::unknown(other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

/// The compilation cache shared by every command and worker the tests start, so each
/// component is compiled once per build folder.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("armonik-wasm-cache")
}

/// A path as a command-line argument.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Fails if `stderr` holds what a panic leaves there.
pub fn assert_no_panic(stderr: &str) {
    for text in ["panicked", "RUST_BACKTRACE", "Broken pipe"] {
        assert!(!stderr.contains(text), "{text} in: {stderr}");
    }
}

/// What one `armonik-wasm` command did.
pub struct Ran {
    /// Whether it exited with 0.
    pub success: bool,
    /// Its standard output, without colour codes.
    pub stdout: String,
    /// Its standard error, without colour codes.
    pub stderr: String,
}

impl Ran {
    /// Both outputs, for failure messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// `armonik-wasm <args>` as a user would run it (default log filter, stdin closed), with the
/// shared compilation cache; not started yet.
pub fn armonik_wasm_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_armonik-wasm"));
    command
        .args(args)
        .env("ARMONIK_WASM_CACHE_DIR", cache_dir())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// Runs `armonik-wasm <args>` to its end, as a user would (default log filter, stdin closed),
/// with the shared compilation cache.
pub fn armonik_wasm(args: &[&str]) -> Ran {
    let output = armonik_wasm_command(args)
        .output()
        .expect("armonik-wasm starts");
    Ran {
        success: output.status.success(),
        stdout: strip_ansi(&String::from_utf8_lossy(&output.stdout)),
        stderr: strip_ansi(&String::from_utf8_lossy(&output.stderr)),
    }
}

/// The wall times of the tasks whose summary record (`task finished`, text format) satisfies
/// `which`, in the log's order.
pub fn task_wall_times(log: &str, which: impl Fn(&str) -> bool) -> Vec<Duration> {
    log.lines()
        .filter(|line| line.contains("task finished") && which(line))
        .filter_map(|line| {
            let value = line.split("wall_seconds=").nth(1)?.split(' ').next()?;
            Duration::try_from_secs_f64(value.parse().ok()?).ok()
        })
        .collect()
}

/// `GET /metrics` over a plain socket, as Prometheus scrapes; the body.
pub fn scrape(address: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream =
        std::net::TcpStream::connect(address).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain"), "{head}");
    body.to_owned()
}

/// The value of the sample `name{labels}` (labels as written, in the exposition's order).
pub fn metrics_sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

/// The address of a worker's metrics endpoint, from its log (`--metrics-address ...:0`).
pub fn metrics_address(worker: &Worker) -> String {
    let log = worker.log();
    log.split("http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap_or_else(|| panic!("no metrics address in the log: {log}"))
        .to_owned()
}

/// A field of `/proc/<pid>/status` in KiB (`"VmRSS:"` resident memory, `"VmHWM:"` its peak).
pub fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("proc status")
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

/// The numeric fields of `/proc/<pid>/stat` after the command name (which is in parentheses
/// and may hold spaces), a field that is not a number read as 0: index 7 is the minor page
/// faults, 11 and 12 the user and system time in clock ticks (10 ms here). Summed over the
/// process's threads; none for a process that is gone.
pub fn proc_stat_fields(pid: u32) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

/// Minor page faults of this process so far: a copy-on-write memory image costs one per page
/// a task writes, unless the page stayed resident from the slot's previous task.
pub fn minor_page_faults() -> u64 {
    proc_stat_fields(std::process::id())
        .get(7)
        .copied()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Fake agent
// ---------------------------------------------------------------------------------------------

/// gRPC method names of the Agent service, as recorded in [`AgentCall::method`].
pub mod methods {
    /// `CreateTask` (legacy client stream).
    pub const CREATE_TASK: &str = "CreateTask";
    /// `CreateResultsMetaData`.
    pub const CREATE_RESULTS_METADATA: &str = "CreateResultsMetaData";
    /// `CreateResults`.
    pub const CREATE_RESULTS: &str = "CreateResults";
    /// `NotifyResultData`.
    pub const NOTIFY_RESULT_DATA: &str = "NotifyResultData";
    /// `SubmitTasks`.
    pub const SUBMIT_TASKS: &str = "SubmitTasks";
    /// `GetResourceData`.
    pub const GET_RESOURCE_DATA: &str = "GetResourceData";
    /// `GetCommonData`.
    pub const GET_COMMON_DATA: &str = "GetCommonData";
    /// `GetDirectData`.
    pub const GET_DIRECT_DATA: &str = "GetDirectData";
}

/// The task currently bound to the agent (Core: the `IAgent` given to `GrpcAgentService.Start`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundTask {
    /// The communication token every call must carry.
    pub token: String,
    /// The task's session (used by CreateTask, which carries no session id).
    pub session_id: String,
    /// The task's data folder, where GetResourceData and CreateTask write files.
    pub data_folder: PathBuf,
}

/// One request received by the fake agent, typed with the `armonik` crate's objects.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // test records: easy matching beats size
pub enum AgentRequest {
    /// `CreateTask`: every stream message read (up to and including `last_task`).
    CreateTask(Vec<agent::create_tasks::Request>),
    /// `CreateResultsMetaData`.
    CreateResultsMetaData(agent::create_results_metadata::Request),
    /// `CreateResults`.
    CreateResults(agent::create_results::Request),
    /// `NotifyResultData` (the crate keeps only the first id's session id; see
    /// [`AgentCall::session_ids`] for all of them).
    NotifyResultData(agent::notify_result_data::Request),
    /// `SubmitTasks`.
    SubmitTasks(agent::submit_tasks::Request),
    /// `GetResourceData`.
    GetResourceData(agent::get_resource_data::Request),
    /// `GetCommonData`.
    GetCommonData(agent::get_common_data::Request),
    /// `GetDirectData`.
    GetDirectData(agent::get_direct_data::Request),
}

/// How the fake agent answered a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A normal response.
    Ok,
    /// A gRPC error status.
    Status {
        /// Its code.
        code: Code,
        /// Its message.
        message: String,
    },
    /// CreateTask only: an OK response carrying `CreateTaskReply.error` (Core reports token and
    /// framing problems this way, not as a status).
    ReplyError(String),
}

/// One recorded call to the fake agent.
#[derive(Debug, Clone)]
pub struct AgentCall {
    /// The gRPC method name (see [`methods`]).
    pub method: &'static str,
    /// The request's communication token (CreateTask: the first message's).
    pub token: String,
    /// Every session id the request carried: one for CreateResults[MetaData]/SubmitTasks, one
    /// per result id for NotifyResultData, none for Get*Data and CreateTask.
    pub session_ids: Vec<String>,
    /// The full request.
    pub request: AgentRequest,
    /// The token of the task bound when the call arrived (`None`: no task was bound).
    pub bound_token: Option<String>,
    /// What the agent answered.
    pub outcome: Outcome,
}

impl AgentCall {
    /// Whether the call got a normal response (for CreateTask: without `reply.error`).
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// The gRPC code the caller saw (`Code::Ok` for a CreateTask reply error).
    pub fn code(&self) -> Code {
        match &self.outcome {
            Outcome::Status { code, .. } => *code,
            Outcome::Ok | Outcome::ReplyError(_) => Code::Ok,
        }
    }
}

/// A result created through CreateResultsMetaData (`data: None`) or CreateResults (`Some`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedResult {
    /// The metadata returned to the caller (fresh uuid result id, echoed session id and name).
    pub metadata: agent::ResultMetaData,
    /// The inline data of CreateResults (kept in memory, nothing is written to disk).
    pub data: Option<Vec<u8>>,
}

/// A task submitted through SubmitTasks.
#[derive(Debug, Clone)]
pub struct SubmittedTask {
    /// The fresh task id returned.
    pub task_id: String,
    /// The session id of the request.
    pub session_id: String,
    /// The task creation as requested (payload id, dependencies, expected outputs, options).
    pub creation: agent::submit_tasks::RequestItem,
    /// The request-level task options (applied to every task of the request).
    pub request_task_options: Option<TaskOptions>,
}

/// A task created through the legacy CreateTask stream.
#[derive(Debug, Clone)]
pub struct CreatedTask {
    /// The fresh task id returned.
    pub task_id: String,
    /// The fresh result id of its payload (the payload is also written to
    /// `<data_folder>/<payload_id>`, as Core does).
    pub payload_id: String,
    /// The reassembled payload bytes.
    pub payload: Vec<u8>,
    /// The header's expected output ids.
    pub expected_output_keys: Vec<String>,
    /// The header's data dependency ids.
    pub data_dependencies: Vec<String>,
    /// The stream's `InitRequest.task_options`.
    pub task_options: Option<TaskOptions>,
    /// The session of the bound task.
    pub session_id: String,
}

#[derive(Debug, Clone, Default)]
struct Fault {
    error: Option<(Code, String)>,
    delay: Option<Duration>,
}

#[derive(Debug, Default)]
struct AgentState {
    bound: Option<BoundTask>,
    resources: HashMap<String, Vec<u8>>,
    calls: Vec<AgentCall>,
    created_results: Vec<CreatedResult>,
    notified: Vec<String>,
    submitted: Vec<SubmittedTask>,
    created_tasks: Vec<CreatedTask>,
    faults: HashMap<&'static str, Fault>,
}

impl AgentState {
    /// Core's checks, in Core's order: a bound task (`GrpcAgentService`), then the token
    /// (`Agent.ThrowIfInvalidToken`).
    fn check(&self, token: &str) -> Result<BoundTask, Status> {
        let bound = self
            .bound
            .clone()
            .ok_or_else(|| Status::unavailable("No task is accepting request"))?;
        if token.is_empty() {
            return Err(Status::invalid_argument("Missing communication token"));
        }
        if token != bound.token {
            return Err(Status::invalid_argument("Wrong communication token"));
        }
        Ok(bound)
    }

    fn injected_error(&self, method: &str) -> Result<(), Status> {
        match self
            .faults
            .get(method)
            .and_then(|fault| fault.error.clone())
        {
            Some((code, message)) => Err(Status::new(code, message)),
            None => Ok(()),
        }
    }

    fn record<T>(
        &mut self,
        method: &'static str,
        token: String,
        session_ids: Vec<String>,
        request: AgentRequest,
        result: &Result<T, Status>,
    ) {
        let outcome = match result {
            Ok(_) => Outcome::Ok,
            Err(status) => Outcome::Status {
                code: status.code(),
                message: status.message().to_owned(),
            },
        };
        let bound_token = self.bound.as_ref().map(|bound| bound.token.clone());
        self.calls.push(AgentCall {
            method,
            token,
            session_ids,
            request,
            bound_token,
            outcome,
        });
    }
}

fn lock(state: &Mutex<AgentState>) -> MutexGuard<'_, AgentState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn now_timestamp() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

/// The `armonik::server::AgentService` implementation behind [`FakeAgent`].
struct AgentSvc {
    state: Arc<Mutex<AgentState>>,
}

impl AgentSvc {
    fn state(&self) -> MutexGuard<'_, AgentState> {
        lock(&self.state)
    }

    /// Applies an injected delay (outside the lock).
    async fn delay(&self, method: &str) {
        let delay = self
            .state()
            .faults
            .get(method)
            .and_then(|fault| fault.delay);
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }

    /// The unary pattern: delay, injected error, bound/token checks, `act`, record.
    async fn unary<T>(
        &self,
        method: &'static str,
        token: String,
        session_ids: Vec<String>,
        request: AgentRequest,
        act: impl FnOnce(&mut AgentState, BoundTask) -> Result<T, Status>,
    ) -> Result<T, Status> {
        self.delay(method).await;
        let mut state = self.state();
        let result = state
            .injected_error(method)
            .and_then(|()| state.check(&token))
            .and_then(|bound| act(&mut state, bound));
        state.record(method, token, session_ids, request, &result);
        result
    }
}

/// Session ids of every `ResultIdentifier` of a NotifyResultData request, captured before the
/// `armonik` crate's conversion keeps only the first one.
#[derive(Debug, Clone)]
struct NotifySessionIds(Vec<String>);

impl AgentService for AgentSvc {
    async fn create_results_metadata(
        self: Arc<Self>,
        request: agent::create_results_metadata::Request,
        _context: RequestContext,
    ) -> Result<agent::create_results_metadata::Response, Status> {
        let token = request.communication_token.clone();
        let session_id = request.session_id.clone();
        let names: Vec<String> = request.results.iter().map(|r| r.name.clone()).collect();
        self.unary(
            methods::CREATE_RESULTS_METADATA,
            token,
            vec![session_id.clone()],
            AgentRequest::CreateResultsMetaData(request),
            |state, _bound| {
                let results: Vec<agent::ResultMetaData> = names
                    .into_iter()
                    .map(|name| agent::ResultMetaData {
                        session_id: session_id.clone(),
                        result_id: new_id(),
                        name,
                        status: ResultStatus::Created,
                        created_at: Some(now_timestamp()),
                    })
                    .collect();
                state
                    .created_results
                    .extend(results.iter().map(|metadata| CreatedResult {
                        metadata: metadata.clone(),
                        data: None,
                    }));
                // Core leaves the response's communication token empty.
                Ok(agent::create_results_metadata::Response {
                    communication_token: String::new(),
                    results,
                })
            },
        )
        .await
    }

    async fn create_results(
        self: Arc<Self>,
        request: agent::create_results::Request,
        _context: RequestContext,
    ) -> Result<agent::create_results::Response, Status> {
        let token = request.communication_token.clone();
        let session_id = request.session_id.clone();
        let items = request.results.clone();
        self.unary(
            methods::CREATE_RESULTS,
            token,
            vec![session_id.clone()],
            AgentRequest::CreateResults(request),
            |state, _bound| {
                let mut results = Vec::with_capacity(items.len());
                for item in items {
                    // Core answers `Created` here too: results are completed in post-processing.
                    let metadata = agent::ResultMetaData {
                        session_id: session_id.clone(),
                        result_id: new_id(),
                        name: item.name,
                        status: ResultStatus::Created,
                        created_at: Some(now_timestamp()),
                    };
                    state.created_results.push(CreatedResult {
                        metadata: metadata.clone(),
                        data: Some(item.data),
                    });
                    results.push(metadata);
                }
                Ok(agent::create_results::Response {
                    communication_token: String::new(),
                    results,
                })
            },
        )
        .await
    }

    async fn notify_result_data(
        self: Arc<Self>,
        request: agent::notify_result_data::Request,
        context: RequestContext,
    ) -> Result<agent::notify_result_data::Response, Status> {
        let token = request.communication_token.clone();
        let session_ids = context
            .extensions()
            .get::<NotifySessionIds>()
            .map(|ids| ids.0.clone())
            .unwrap_or_else(|| vec![request.session_id.clone(); request.result_ids.len()]);
        let ids = request.result_ids.clone();
        self.unary(
            methods::NOTIFY_RESULT_DATA,
            token,
            session_ids,
            AgentRequest::NotifyResultData(request),
            |state, _bound| {
                state.notified.extend(ids.iter().cloned());
                Ok(agent::notify_result_data::Response { result_ids: ids })
            },
        )
        .await
    }

    async fn submit_tasks(
        self: Arc<Self>,
        request: agent::submit_tasks::Request,
        _context: RequestContext,
    ) -> Result<agent::submit_tasks::Response, Status> {
        let token = request.communication_token.clone();
        let session_id = request.session_id.clone();
        let items = request.items.clone();
        let request_task_options = request.task_options.clone();
        self.unary(
            methods::SUBMIT_TASKS,
            token,
            vec![session_id.clone()],
            AgentRequest::SubmitTasks(request),
            |state, bound| {
                let mut infos = Vec::with_capacity(items.len());
                for creation in items {
                    let task_id = new_id();
                    infos.push(agent::submit_tasks::ResponseItem {
                        task_id: task_id.clone(),
                        expected_output_ids: creation.expected_output_keys.clone(),
                        data_dependencies: creation.data_dependencies.clone(),
                        payload_id: creation.payload_id.clone(),
                    });
                    state.submitted.push(SubmittedTask {
                        task_id,
                        session_id: session_id.clone(),
                        creation,
                        request_task_options: request_task_options.clone(),
                    });
                }
                // Core echoes the bound task's token here (and only here).
                Ok(agent::submit_tasks::Response {
                    communication_token: bound.token,
                    items: infos,
                })
            },
        )
        .await
    }

    async fn get_resource_data(
        self: Arc<Self>,
        request: agent::get_resource_data::Request,
        _context: RequestContext,
    ) -> Result<agent::get_resource_data::Response, Status> {
        let token = request.communication_token.clone();
        let result_id = request.result_id.clone();
        self.unary(
            methods::GET_RESOURCE_DATA,
            token,
            Vec::new(),
            AgentRequest::GetResourceData(request),
            |state, bound| {
                let data = state
                    .resources
                    .get(&result_id)
                    .ok_or_else(|| Status::not_found("ResultId not found"))?;
                // Core's `Agent.GetResourceData`: `new FileStream(path, FileMode.OpenOrCreate)`,
                // which follows links and does not truncate; whatever the task left at that
                // name is the worker's to clear.
                let path = bound.data_folder.join(&result_id);
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .and_then(|mut file| std::io::Write::write_all(&mut file, data))
                    .map_err(|error| {
                        // Core: an unhandled IOException, i.e. UNKNOWN.
                        Status::unknown(format!("cannot write {}: {error}", path.display()))
                    })?;
                Ok(agent::get_resource_data::Response { result_id })
            },
        )
        .await
    }

    async fn get_common_data(
        self: Arc<Self>,
        request: agent::get_common_data::Request,
        _context: RequestContext,
    ) -> Result<agent::get_common_data::Response, Status> {
        let token = request.communication_token.clone();
        self.unary(
            methods::GET_COMMON_DATA,
            token,
            Vec::new(),
            AgentRequest::GetCommonData(request),
            |_state, _bound| Err(Status::unimplemented("Common data are not implemented yet")),
        )
        .await
    }

    async fn get_direct_data(
        self: Arc<Self>,
        request: agent::get_direct_data::Request,
        _context: RequestContext,
    ) -> Result<agent::get_direct_data::Response, Status> {
        let token = request.communication_token.clone();
        self.unary(
            methods::GET_DIRECT_DATA,
            token,
            Vec::new(),
            AgentRequest::GetDirectData(request),
            |_state, _bound| Err(Status::unimplemented("Direct data are not implemented yet")),
        )
        .await
    }

    async fn create_tasks(
        self: Arc<Self>,
        request: impl tonic::codegen::tokio_stream::Stream<
            Item = Result<agent::create_tasks::Request, Status>,
        > + Send
        + 'static,
        _context: RequestContext,
    ) -> Result<agent::create_tasks::Response, Status> {
        let method = methods::CREATE_TASK;
        self.delay(method).await;
        // Read the stream up to `last_task` (Core stops reading there too).
        let mut request = std::pin::pin!(request);
        let mut messages = Vec::new();
        let mut stream_error = None;
        while let Some(item) = request.next().await {
            match item {
                Ok(message) => {
                    let last = matches!(
                        message,
                        agent::create_tasks::Request::InitTaskRequest {
                            request: InitTaskRequest::LastTask,
                            ..
                        }
                    );
                    messages.push(message);
                    if last {
                        break;
                    }
                }
                Err(status) => {
                    stream_error = Some(status);
                    break;
                }
            }
        }
        let token = messages.first().map(message_token).unwrap_or_default();

        let mut state = self.state();
        let outcome: Result<Result<Vec<agent::create_tasks::Status>, String>, Status> = state
            .injected_error(method)
            .and_then(|()| match stream_error {
                Some(status) => Err(status),
                None => Ok(()),
            })
            .and_then(|()| create_tasks_outcome(&mut state, &messages));
        let result = match &outcome {
            Ok(_) => Ok(()),
            Err(status) => Err(Status::new(status.code(), status.message())),
        };
        state.record(
            method,
            token,
            Vec::new(),
            AgentRequest::CreateTask(messages),
            &result,
        );
        match outcome {
            Ok(Ok(statuses)) => Ok(agent::create_tasks::Response::Status {
                communication_token: String::new(),
                statuses,
            }),
            Ok(Err(error)) => {
                if let Some(call) = state.calls.last_mut() {
                    call.outcome = Outcome::ReplyError(error.clone());
                }
                Ok(agent::create_tasks::Response::Error {
                    communication_token: String::new(),
                    error,
                })
            }
            Err(status) => Err(status),
        }
    }
}

fn message_token(message: &agent::create_tasks::Request) -> String {
    match message {
        agent::create_tasks::Request::Invalid => String::new(),
        agent::create_tasks::Request::InitRequest {
            communication_token,
            ..
        }
        | agent::create_tasks::Request::InitTaskRequest {
            communication_token,
            ..
        }
        | agent::create_tasks::Request::DataChunk {
            communication_token,
            ..
        } => communication_token.clone(),
    }
}

/// Core's `GrpcAgentService.CreateTask`: `Ok(Err(_))` is a `CreateTaskReply.error`, `Err(_)` a
/// gRPC status (Core throws `InvalidOperationException("Invalid request")` ⇒ UNKNOWN).
fn create_tasks_outcome(
    state: &mut AgentState,
    messages: &[agent::create_tasks::Request],
) -> Result<Result<Vec<agent::create_tasks::Status>, String>, Status> {
    use agent::create_tasks::Request as Msg;
    let Some(bound) = state.bound.clone() else {
        return Ok(Err("No task is accepting request".into()));
    };
    let Some(first) = messages.first() else {
        return Ok(Err("Empty request".into()));
    };
    let token = message_token(first);
    if token.is_empty() {
        return Ok(Err("Missing communication token".into()));
    }
    if token != bound.token {
        return Ok(Err("Wrong communication token".into()));
    }
    let Msg::InitRequest { request: init, .. } = first else {
        return Err(Status::unknown(
            "Invalid request: the first message must be an InitRequest",
        ));
    };
    let missing = || Ok(Err("Missing message in request".to_owned()));
    let invalid = |what: &str| Err(Status::unknown(format!("Invalid request: {what}")));

    let mut tasks: Vec<(TaskRequestHeader, Vec<u8>)> = Vec::new();
    let mut i = 1;
    if i >= messages.len() {
        return missing();
    }
    while let Msg::InitTaskRequest {
        request: InitTaskRequest::Header(header),
        ..
    } = &messages[i]
    {
        i += 1;
        if i >= messages.len() {
            return missing();
        }
        let mut payload = Vec::new();
        let mut chunks = 0;
        while let Msg::DataChunk {
            chunk: DataChunk::Data(data),
            ..
        } = &messages[i]
        {
            payload.extend_from_slice(data);
            chunks += 1;
            i += 1;
            if i >= messages.len() {
                return missing();
            }
        }
        if !matches!(
            &messages[i],
            Msg::DataChunk {
                chunk: DataChunk::Complete,
                ..
            }
        ) {
            return invalid("a task header's data chunks must end with data_complete");
        }
        if chunks == 0 {
            return invalid("a task needs at least one data chunk (even an empty one)");
        }
        tasks.push((header.clone(), payload));
        i += 1;
        if i >= messages.len() {
            return missing();
        }
    }
    if !matches!(
        &messages[i],
        Msg::InitTaskRequest {
            request: InitTaskRequest::LastTask,
            ..
        }
    ) {
        return invalid("expected a task header or last_task");
    }
    if tasks.is_empty() {
        return invalid("at least one task is required");
    }

    let mut statuses = Vec::with_capacity(tasks.len());
    for (header, payload) in tasks {
        let payload_id = new_id();
        let task_id = new_id();
        let path = bound.data_folder.join(&payload_id);
        std::fs::write(&path, &payload).map_err(|error| {
            Status::unknown(format!("cannot write {}: {error}", path.display()))
        })?;
        statuses.push(agent::create_tasks::Status::TaskInfo {
            task_id: task_id.clone(),
            expected_output_keys: header.expected_output_keys.clone(),
            data_dependencies: header.data_dependencies.clone(),
            payload_id: payload_id.clone(),
        });
        state.created_tasks.push(CreatedTask {
            task_id,
            payload_id,
            payload,
            expected_output_keys: header.expected_output_keys,
            data_dependencies: header.data_dependencies,
            task_options: init.task_options.clone(),
            session_id: bound.session_id.clone(),
        });
    }
    Ok(Ok(statuses))
}

/// The raw tonic service: delegates everything to [`AgentSvc`] (through the `armonik` crate's
/// blanket impl) after stashing NotifyResultData's per-id session ids in the request extensions.
struct Tap(Arc<AgentSvc>);

#[tonic::async_trait]
impl v3::agent::agent_server::Agent for Tap {
    async fn create_task(
        self: Arc<Self>,
        request: tonic::Request<tonic::Streaming<v3::agent::CreateTaskRequest>>,
    ) -> Result<tonic::Response<v3::agent::CreateTaskReply>, Status> {
        v3::agent::agent_server::Agent::create_task(self.0.clone(), request).await
    }

    async fn create_results_meta_data(
        self: Arc<Self>,
        request: tonic::Request<v3::agent::CreateResultsMetaDataRequest>,
    ) -> Result<tonic::Response<v3::agent::CreateResultsMetaDataResponse>, Status> {
        v3::agent::agent_server::Agent::create_results_meta_data(self.0.clone(), request).await
    }

    async fn create_results(
        self: Arc<Self>,
        request: tonic::Request<v3::agent::CreateResultsRequest>,
    ) -> Result<tonic::Response<v3::agent::CreateResultsResponse>, Status> {
        v3::agent::agent_server::Agent::create_results(self.0.clone(), request).await
    }

    async fn notify_result_data(
        self: Arc<Self>,
        mut request: tonic::Request<v3::agent::NotifyResultDataRequest>,
    ) -> Result<tonic::Response<v3::agent::NotifyResultDataResponse>, Status> {
        let ids = request
            .get_ref()
            .ids
            .iter()
            .map(|id| id.session_id.clone())
            .collect();
        request.extensions_mut().insert(NotifySessionIds(ids));
        v3::agent::agent_server::Agent::notify_result_data(self.0.clone(), request).await
    }

    async fn submit_tasks(
        self: Arc<Self>,
        request: tonic::Request<v3::agent::SubmitTasksRequest>,
    ) -> Result<tonic::Response<v3::agent::SubmitTasksResponse>, Status> {
        v3::agent::agent_server::Agent::submit_tasks(self.0.clone(), request).await
    }

    async fn get_resource_data(
        self: Arc<Self>,
        request: tonic::Request<v3::agent::DataRequest>,
    ) -> Result<tonic::Response<v3::agent::DataResponse>, Status> {
        v3::agent::agent_server::Agent::get_resource_data(self.0.clone(), request).await
    }

    async fn get_common_data(
        self: Arc<Self>,
        request: tonic::Request<v3::agent::DataRequest>,
    ) -> Result<tonic::Response<v3::agent::DataResponse>, Status> {
        v3::agent::agent_server::Agent::get_common_data(self.0.clone(), request).await
    }

    async fn get_direct_data(
        self: Arc<Self>,
        request: tonic::Request<v3::agent::DataRequest>,
    ) -> Result<tonic::Response<v3::agent::DataResponse>, Status> {
        v3::agent::agent_server::Agent::get_direct_data(self.0.clone(), request).await
    }
}

/// A running server thread of the fake agent.
struct ServerThread {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Binds `address` (TCP port 0: any free port) and serves the agent on a dedicated thread
    /// with its own runtime, so it neither depends on nor is blocked by the test's runtime.
    fn spawn(address: &Address, state: Arc<Mutex<AgentState>>) -> (Address, Self) {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Address, String>>();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let requested = address.clone();
        let thread = std::thread::Builder::new()
            .name("fake-agent".into())
            .spawn(move || serve_agent(requested, state, ready_tx, shutdown_rx))
            .expect("cannot spawn the fake agent thread");
        let bound = match ready_rx.recv() {
            Ok(Ok(bound)) => bound,
            Ok(Err(error)) => panic!("fake agent cannot listen on {address}: {error}"),
            Err(_) => panic!("fake agent thread died before listening on {address}"),
        };
        let server = Self {
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        };
        (bound, server)
    }

    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_agent(
    requested: Address,
    state: Arc<Mutex<AgentState>>,
    ready: std::sync::mpsc::Sender<Result<Address, String>>,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(format!("cannot build a tokio runtime: {error}")));
            return;
        }
    };
    let address = requested.clone();
    runtime.block_on(async move {
        let requested = address;
        let service = v3::agent::agent_server::AgentServer::new(Tap(Arc::new(AgentSvc { state })));
        let router = tonic::transport::Server::builder().add_service(service);
        let server: std::pin::Pin<Box<dyn std::future::Future<Output = _>>> = match &requested {
            Address::Unix(path) => {
                // Core deletes a stale socket file before listening.
                let _ = std::fs::remove_file(path);
                match tokio::net::UnixListener::bind(path) {
                    Ok(listener) => {
                        let _ = ready.send(Ok(requested.clone()));
                        Box::pin(router.serve_with_incoming(
                            tokio_stream::wrappers::UnixListenerStream::new(listener),
                        ))
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error.to_string()));
                        return;
                    }
                }
            }
            Address::Tcp(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    let local = listener
                        .local_addr()
                        .map(Address::Tcp)
                        .map_err(|error| error.to_string());
                    let _ = ready.send(local);
                    Box::pin(router.serve_with_incoming(
                        tokio_stream::wrappers::TcpListenerStream::new(listener),
                    ))
                }
                Err(error) => {
                    let _ = ready.send(Err(error.to_string()));
                    return;
                }
            },
        };
        tokio::select! {
            result = server => {
                if let Err(error) = result {
                    eprintln!("fake agent on {requested} stopped: {error}");
                }
            }
            _ = shutdown => {}
        }
    });
    // Dropping the runtime aborts every connection task: a hard stop, like a dead agent.
    drop(runtime);
    if let Address::Unix(path) = &requested {
        let _ = std::fs::remove_file(path);
    }
}

/// ArmoniK's polling agent, as seen by the worker: the Agent gRPC service with Core's behaviour.
///
/// - One task slot: [`bind`](Self::bind) / [`unbind`](Self::unbind). Unbound ⇒
///   `UNAVAILABLE "No task is accepting request"`; empty token ⇒ `INVALID_ARGUMENT "Missing
///   communication token"`; other token ⇒ `INVALID_ARGUMENT "Wrong communication token"`.
///   CreateTask reports those in `CreateTaskReply.error` instead (as Core does).
/// - CreateResultsMetaData / CreateResults: fresh uuid result ids, session id and names echoed,
///   status `Created` (Core completes them only in post-processing); CreateResults keeps the
///   data in memory. NotifyResultData records and echoes the ids. SubmitTasks returns fresh task
///   ids. CreateTask reassembles the legacy stream (payload also written to the folder, as Core).
///   GetResourceData writes a [`add_resource`](Self::add_resource) result into
///   `<data_folder>/<id>` as Core does: opened with create + write, following links and
///   without truncating (`NOT_FOUND "ResultId not found"` for an unknown id). GetCommonData /
///   GetDirectData ⇒ `UNIMPLEMENTED` (after the token check).
/// - Every call is recorded ([`calls`](Self::calls)), failed ones included. Records accumulate
///   across tasks until [`clear_records`](Self::clear_records).
/// - Max received message: tonic's default 4 MiB, like Core's ASP.NET server.
pub struct FakeAgent {
    state: Arc<Mutex<AgentState>>,
    address: Address,
    server: Option<ServerThread>,
    _dir: Option<tempfile::TempDir>,
}

impl FakeAgent {
    /// Starts on a unix socket `armonik_agent.sock` in a fresh temp dir.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("armonik-agent-")
            .tempdir()
            .expect("cannot create a temp dir for the agent socket");
        let mut agent = Self::start_at(dir.path().join("armonik_agent.sock"));
        agent._dir = Some(dir);
        agent
    }

    /// Starts on the unix socket `path` (a stale file there is removed first, as Core does).
    pub fn start_at(path: impl Into<PathBuf>) -> Self {
        Self::listen(Address::Unix(path.into()))
    }

    /// Starts on TCP `127.0.0.1:<free port>`.
    pub fn start_tcp() -> Self {
        Self::listen(Address::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))))
    }

    /// Starts on a unix socket ([`start`](Self::start)) or TCP ([`start_tcp`](Self::start_tcp)).
    pub fn start_on(transport: Transport) -> Self {
        match transport {
            Transport::Unix => Self::start(),
            Transport::Tcp => Self::start_tcp(),
        }
    }

    fn listen(address: Address) -> Self {
        let state = Arc::new(Mutex::new(AgentState::default()));
        let (address, server) = ServerThread::spawn(&address, state.clone());
        Self {
            state,
            address,
            server: Some(server),
            _dir: None,
        }
    }

    fn state(&self) -> MutexGuard<'_, AgentState> {
        lock(&self.state)
    }

    /// Where the agent listens.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Binds a task (Core: `GrpcAgentService.Start`): calls must now carry `token`; CreateTask
    /// uses `session_id`; GetResourceData/CreateTask write into `data_folder`.
    pub fn bind(
        &self,
        token: impl Into<String>,
        session_id: impl Into<String>,
        data_folder: impl Into<PathBuf>,
    ) {
        self.state().bound = Some(BoundTask {
            token: token.into(),
            session_id: session_id.into(),
            data_folder: data_folder.into(),
        });
    }

    /// Binds the task of a ProcessRequest (its token, session id and data folder).
    pub fn bind_request(&self, request: &process::Request) {
        self.bind(
            request.communication_token.clone(),
            request.session_id.clone(),
            request.data_folder.clone(),
        );
    }

    /// Unbinds the current task (Core: `GrpcAgentService.Stop`, after `Process` returns).
    pub fn unbind(&self) {
        self.state().bound = None;
    }

    /// The currently bound task.
    pub fn bound(&self) -> Option<BoundTask> {
        self.state().bound.clone()
    }

    /// Makes result `id` known to GetResourceData with `data`.
    pub fn add_resource(&self, id: impl Into<String>, data: impl Into<Vec<u8>>) {
        self.state().resources.insert(id.into(), data.into());
    }

    /// Every call received so far, in arrival order.
    pub fn calls(&self) -> Vec<AgentCall> {
        self.state().calls.clone()
    }

    /// The calls to `method` (see [`methods`]).
    pub fn calls_to(&self, method: &str) -> Vec<AgentCall> {
        self.state()
            .calls
            .iter()
            .filter(|call| call.method == method)
            .cloned()
            .collect()
    }

    /// Result ids of the successful NotifyResultData calls, in order (duplicates kept).
    pub fn notified_ids(&self) -> Vec<String> {
        self.state().notified.clone()
    }

    /// Results created by successful CreateResultsMetaData / CreateResults calls.
    pub fn created_results(&self) -> Vec<CreatedResult> {
        self.state().created_results.clone()
    }

    /// Tasks submitted by successful SubmitTasks calls.
    pub fn submitted_tasks(&self) -> Vec<SubmittedTask> {
        self.state().submitted.clone()
    }

    /// Tasks created by successful legacy CreateTask streams.
    pub fn created_tasks(&self) -> Vec<CreatedTask> {
        self.state().created_tasks.clone()
    }

    /// Forgets every recorded call, result, notification and task (not the binding, resources
    /// nor faults).
    pub fn clear_records(&self) {
        let mut state = self.state();
        state.calls.clear();
        state.created_results.clear();
        state.notified.clear();
        state.submitted.clear();
        state.created_tasks.clear();
    }

    /// From now on, every call to `method` fails with `code`/`message` (before any other check;
    /// still recorded).
    pub fn inject_error(&self, method: &'static str, code: Code, message: impl Into<String>) {
        self.state().faults.entry(method).or_default().error = Some((code, message.into()));
    }

    /// From now on, every call to `method` is answered only after `delay`.
    pub fn inject_delay(&self, method: &'static str, delay: Duration) {
        self.state().faults.entry(method).or_default().delay = Some(delay);
    }

    /// Removes every injected error and delay.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Stops serving ("agent down"): the server and its connections are dropped abruptly and the
    /// socket file removed. Recorded state is kept. No-op if already stopped.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }

    /// Serves again on the same address with the same state, after [`stop`](Self::stop).
    pub fn restart(&mut self) {
        if self.server.is_none() {
            let (_, server) = ServerThread::spawn(&self.address, self.state.clone());
            self.server = Some(server);
        }
    }

    /// Whether the agent is serving.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// An `armonik` Agent client connected to this agent (what a worker would use).
    pub async fn client(&self) -> armonik::client::Agent<Channel> {
        let channel = connect_channel(&self.address)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot connect to the fake agent at {}: {error}",
                    self.address
                )
            });
        armonik::client::Agent::with_channel(channel)
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Worker process
// ---------------------------------------------------------------------------------------------

/// The channel configuration variables of ArmoniK; removed from the worker's inherited
/// environment so only what a test passes counts.
pub const CHANNEL_ENV_VARS: [&str; 4] = [
    "ComputePlane__WorkerChannel__Address",
    "ComputePlane__WorkerChannel__SocketType",
    "ComputePlane__AgentChannel__Address",
    "ComputePlane__AgentChannel__SocketType",
];

/// How long [`Worker::wait_serving`] waits for a first SERVING health check; override with
/// `ARMONIK_WASM_TEST_STARTUP_SECS`.
pub fn startup_timeout() -> Duration {
    let secs = std::env::var("ARMONIK_WASM_TEST_STARTUP_SECS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

/// A running `armonik-wasm` process, with its own temp dir (sockets, log, working directory).
/// Killed on drop; if the test is panicking, its log is printed to stderr first.
pub struct Worker {
    child: Child,
    log_path: PathBuf,
    address: Option<Address>,
    exit: Option<ExitStatus>,
    /// Set once a panic message already carried the log (not printed again on drop).
    log_reported: bool,
    dir: tempfile::TempDir,
}

impl Worker {
    /// `armonik-wasm serve --component <component>` on a unix socket, wired to `agent`; returns
    /// once HealthCheck answers SERVING.
    pub async fn spawn(component: &Path, agent: &FakeAgent) -> Self {
        Self::spawn_custom(component, agent, Transport::Unix, &[], &[]).await
    }

    /// Same as [`spawn`](Self::spawn), the worker listening on TCP `127.0.0.1:<free port>`.
    pub async fn spawn_tcp(component: &Path, agent: &FakeAgent) -> Self {
        Self::spawn_custom(component, agent, Transport::Tcp, &[], &[]).await
    }

    /// `armonik-wasm serve --component <component> --worker-address … --worker-socket-type …
    /// --agent-address … --agent-socket-type … <extra_args>` with `envs` added to the environment
    /// (`RUST_LOG=info` and `NO_COLOR=1` unless overridden); waits until SERVING.
    pub async fn spawn_custom(
        component: &Path,
        agent: &FakeAgent,
        transport: Transport,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let dir = worker_dir();
        let address = match transport {
            Transport::Unix => Address::Unix(dir.path().join("armonik_worker.sock")),
            Transport::Tcp => Address::Tcp(SocketAddr::from(([127, 0, 0, 1], free_port()))),
        };
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--component".into(),
            component.display().to_string(),
            "--worker-address".into(),
            address.to_arg(),
            "--worker-socket-type".into(),
            address.socket_type().into(),
            "--agent-address".into(),
            agent.address().to_arg(),
            "--agent-socket-type".into(),
            agent.address().socket_type().into(),
        ];
        args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
        let mut worker = Self::launch(dir, args, envs);
        worker.wait_serving(address).await;
        worker
    }

    /// Starts `armonik-wasm <args>` with `envs` (after `RUST_LOG=info`, `NO_COLOR=1`, and without
    /// the inherited [`CHANNEL_ENV_VARS`]) and returns at once, without waiting for anything.
    /// `{dir}` in an argument or env value is replaced by the worker's temp dir (its working
    /// directory), e.g. `--worker-address {dir}/w.sock`. Then use
    /// [`wait_serving`](Self::wait_serving) or [`wait_exit`](Self::wait_exit).
    pub fn spawn_with(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let dir = worker_dir();
        let root = dir.path().display().to_string();
        let args = args.iter().map(|arg| arg.replace("{dir}", &root)).collect();
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.replace("{dir}", &root)))
            .collect();
        let envs: Vec<(&str, &str)> = envs
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        Self::launch(dir, args, &envs)
    }

    fn launch(dir: tempfile::TempDir, args: Vec<String>, envs: &[(&str, &str)]) -> Self {
        let log_path = dir.path().join("worker.log");
        let log = File::create(&log_path).expect("cannot create the worker log file");
        let stdout = log.try_clone().expect("cannot clone the worker log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_armonik-wasm"));
        command
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log);
        for var in CHANNEL_ENV_VARS {
            command.env_remove(var);
        }
        command.env("RUST_LOG", "info").env("NO_COLOR", "1");
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot spawn armonik-wasm {args:?}: {error}"));
        Self {
            child,
            log_path,
            address: None,
            exit: None,
            log_reported: false,
            dir,
        }
    }

    /// Polls HealthCheck on `address` until it answers SERVING (up to [`startup_timeout`]) and
    /// returns a connected client; panics with the log if the process exits or never answers.
    pub async fn wait_serving(&mut self, address: Address) -> WorkerClient {
        let deadline = Instant::now() + startup_timeout();
        loop {
            if let Some(status) = self.try_exit() {
                self.log_reported = true;
                panic!(
                    "armonik-wasm exited with {status} before serving on {address}\n--- log ---\n{}",
                    self.log()
                );
            }
            let attempt = tokio::time::timeout(Duration::from_secs(2), async {
                let client = WorkerClient::connect(&address)
                    .await
                    .map_err(|error| format!("connect: {error:?}"))?;
                let status = client
                    .health_check()
                    .await
                    .map_err(|status| format!("health check: {status:?}"))?;
                Ok::<_, String>((client, status))
            })
            .await;
            let last = match attempt {
                Ok(Ok((client, ServingStatus::Serving))) => {
                    self.address = Some(address);
                    return client;
                }
                Ok(Ok((_, status))) => format!("health check answered {status:?}"),
                Ok(Err(error)) => error,
                Err(_) => "health check timed out after 2 s".into(),
            };
            if Instant::now() >= deadline {
                self.kill();
                self.log_reported = true;
                panic!(
                    "armonik-wasm did not serve on {address} within {:?} (last: {last})\n--- log ---\n{}",
                    startup_timeout(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new client to the worker's address (the one [`wait_serving`](Self::wait_serving) saw).
    pub async fn client(&self) -> WorkerClient {
        let address = self
            .address
            .as_ref()
            .expect("the worker address is unknown: call wait_serving first");
        WorkerClient::connect(address)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to the worker at {address}: {error}"))
    }

    /// The worker's listening address, once known.
    pub fn address(&self) -> Option<&Address> {
        self.address.as_ref()
    }

    /// The worker's temp dir (working directory; holds `worker.log` and a UDS socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far (ANSI escapes stripped).
    pub fn log(&self) -> String {
        let bytes = std::fs::read(&self.log_path).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(&bytes))
    }

    /// Waits up to `timeout` until the log contains `needle`; returns whether it did.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `timeout` until the log contains `needle`; panics with the log if not.
    pub async fn expect_log(&self, needle: &str, timeout: Duration) {
        assert!(
            self.wait_for_log(needle, timeout).await,
            "`{needle}` not logged within {timeout:?}:\n{}",
            self.log()
        );
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self
                .child
                .try_wait()
                .expect("cannot query the armonik-wasm process status");
        }
        self.exit
    }

    /// The exit status if the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.try_exit()
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM (graceful shutdown request); does not wait.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("cannot run `kill -TERM`");
        assert!(status.success(), "`kill -TERM {}` failed", self.child.id());
    }

    /// SIGKILLs the process (a crash) and reaps it. No-op if it already exited.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.log_reported {
            eprintln!(
                "--- armonik-wasm log ({}) ---\n{}--- end of log ---",
                self.log_path.display(),
                self.log()
            );
        }
        self.kill();
    }
}

fn worker_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("armonik-worker-")
        .tempdir()
        .expect("cannot create a temp dir for the worker")
}

/// Removes ANSI escape sequences (`ESC [ … letter`) from a log.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Worker client
// ---------------------------------------------------------------------------------------------

/// HealthCheck answer, typed by the `armonik` crate (`Unknown`, `Serving`, `NotServing`).
pub type ServingStatus = armonik::worker::health_check::Response;

/// The `armonik` crate's Worker client (`armonik::client::Worker`) over a unix socket or TCP.
/// Cheap to clone; clones share the connection (e.g. HealthCheck while Process runs).
#[derive(Clone)]
pub struct WorkerClient {
    channel: Channel,
    address: Address,
}

impl WorkerClient {
    /// Connects to a worker.
    pub async fn connect(address: &Address) -> Result<Self, tonic::transport::Error> {
        Ok(Self {
            channel: connect_channel(address).await?,
            address: address.clone(),
        })
    }

    /// The address this client talks to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// `Process` with Core's deadline: `now + task_options.max_duration`, sent as `grpc-timeout`
    /// and enforced locally (the call is dropped and `DEADLINE_EXCEEDED` returned, as the .NET
    /// client does).
    pub async fn process(&self, request: process::Request) -> Result<Output, Status> {
        let deadline = max_duration(&request.task_options);
        self.process_with_deadline(request, deadline).await
    }

    /// `Process` with an explicit deadline (`None`: none at all).
    pub async fn process_with_deadline(
        &self,
        request: process::Request,
        deadline: Option<Duration>,
    ) -> Result<Output, Status> {
        let channel = DeadlineChannel {
            inner: self.channel.clone(),
            grpc_timeout: deadline.and_then(grpc_timeout_header),
        };
        let mut client = armonik::client::Worker::with_channel(channel);
        with_deadline(deadline, async move {
            client.process(request).await.map_err(request_error_status)
        })
        .await
    }

    /// `Process` returning the raw reply, which tells a missing `output` (or an `Output` with
    /// neither `ok` nor `error`) apart: the crate's typed [`Output`] maps those to `Ok`, Core
    /// retries the task. Same deadline as [`process`](Self::process).
    pub async fn process_raw(
        &self,
        request: process::Request,
    ) -> Result<v3::worker::ProcessReply, Status> {
        let deadline = max_duration(&request.task_options);
        let mut client = v3::worker::worker_client::WorkerClient::new(self.channel.clone());
        let mut request = tonic::Request::new(v3::worker::ProcessRequest::from(request));
        if let Some(deadline) = deadline {
            request.set_timeout(deadline);
        }
        with_deadline(deadline, async move {
            client
                .process(request)
                .await
                .map(tonic::Response::into_inner)
        })
        .await
    }

    /// `HealthCheck` (no deadline; wrap it in `tokio::time::timeout` for Core's 5 s).
    pub async fn health_check(&self) -> Result<ServingStatus, Status> {
        armonik::client::Worker::with_channel(self.channel.clone())
            .health_check()
            .await
            .map_err(request_error_status)
    }
}

/// `max_duration` as a std duration (`None` if negative/zero, i.e. meaningless).
fn max_duration(options: &TaskOptions) -> Option<Duration> {
    let duration = &options.max_duration;
    let secs = u64::try_from(duration.seconds).ok()?;
    let nanos = u32::try_from(duration.nanos).ok()?;
    let duration = Duration::new(secs, nanos);
    (!duration.is_zero()).then_some(duration)
}

async fn with_deadline<T>(
    deadline: Option<Duration>,
    call: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let Some(deadline) = deadline else {
        return call.await;
    };
    // Biased towards the deadline: the worker's tonic server enforces the same `grpc-timeout`
    // and answers CANCELLED "Timeout expired" at the same instant; the agent's view is
    // DEADLINE_EXCEEDED (its timer started first, before the request was even sent).
    tokio::select! {
        biased;
        () = tokio::time::sleep(deadline) => Err(Status::deadline_exceeded("Deadline Exceeded")),
        result = call => result,
    }
}

/// The `grpc-timeout` header value tonic would send for `deadline`.
fn grpc_timeout_header(deadline: Duration) -> Option<http::HeaderValue> {
    let mut request = tonic::Request::new(());
    request.set_timeout(deadline);
    request
        .metadata()
        .clone()
        .into_headers()
        .get("grpc-timeout")
        .cloned()
}

/// A channel adding a `grpc-timeout` header to every request (the `armonik` client has no
/// per-call deadline).
#[derive(Clone)]
struct DeadlineChannel {
    inner: Channel,
    grpc_timeout: Option<http::HeaderValue>,
}

impl tower::Service<http::Request<tonic::body::Body>> for DeadlineChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = tonic::transport::channel::ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(value) = &self.grpc_timeout {
            request.headers_mut().insert("grpc-timeout", value.clone());
        }
        tower::Service::call(&mut self.inner, request)
    }
}

// ---------------------------------------------------------------------------------------------
// Task folder and ProcessRequest builder
// ---------------------------------------------------------------------------------------------

/// Panics, saying what to do, when the file system holding `dir` has less than `needed`
/// bytes free (with 512 MiB to spare): a test that writes gigabytes on a nearly full disk
/// would otherwise fail on the guest's ENOSPC, which reads like a fault of the host.
pub fn assert_room_for(dir: &Path, needed: u64) {
    let stats = rustix::fs::statvfs(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let free = stats.f_bavail * stats.f_frsize;
    assert!(
        free >= needed + (512 << 20),
        "this test writes {} MiB under {}, whose file system has {} MiB free: free some \
         disk space (a stale target dir?) and run it again",
        needed >> 20,
        dir.display(),
        free >> 20
    );
}

/// A task's shared data folder, `<tmp>/<token>` with a fresh uuid token, as Core's
/// `<SharedCacheFolder>/<token>`. Removed on drop.
pub struct TaskFolder {
    path: PathBuf,
    token: String,
    _root: tempfile::TempDir,
}

impl Default for TaskFolder {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskFolder {
    /// Creates a fresh folder named by a fresh uuid token.
    pub fn new() -> Self {
        Self::new_in(&std::env::temp_dir())
    }

    /// Same as [`new`](Self::new), under `parent` (a pod's shared folder, say) instead of the
    /// system's temp dir.
    pub fn new_in(parent: &Path) -> Self {
        let root = tempfile::Builder::new()
            .prefix("armonik-shared-")
            .tempdir_in(parent)
            .expect("cannot create a temp dir for the task folder");
        let token = new_id();
        let path = root.path().join(&token);
        std::fs::create_dir(&path).expect("cannot create the task folder");
        Self {
            path,
            token,
            _root: root,
        }
    }

    /// The folder's absolute path (the request's `data_folder`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder name, used as communication token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Writes `<folder>/<id>` (create + truncate).
    pub fn write(&self, id: &str, data: impl AsRef<[u8]>) {
        let path = self.path.join(id);
        std::fs::write(&path, data)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    }

    /// Reads `<folder>/<id>`; panics (listing the folder) if it does not exist.
    pub fn read(&self, id: &str) -> Vec<u8> {
        self.try_read(id).unwrap_or_else(|| {
            panic!(
                "{} does not exist; the folder holds {:?}",
                self.path.join(id).display(),
                self.files()
            )
        })
    }

    /// Reads `<folder>/<id>` if it exists.
    pub fn try_read(&self, id: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path.join(id)).ok()
    }

    /// Whether `<folder>/<id>` exists.
    pub fn contains(&self, id: &str) -> bool {
        self.path.join(id).exists()
    }

    /// Names of the folder's entries, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// A builder for a realistic ProcessRequest of a task in this folder.
    pub fn process_request(&self) -> ProcessRequestBuilder {
        ProcessRequestBuilder::new(self)
    }
}

/// Default `max_duration` of [`ProcessRequestBuilder`] (and so of Process's deadline).
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(300);

/// Core's default `Configuration.data_chunk_max_size` (`Submitter__PreferredMessageSize`).
pub const DATA_CHUNK_MAX_SIZE: i32 = 2 * 1024 * 1024;

/// Builds a `armonik::worker::process::Request` like Core's.
///
/// Defaults: token = folder name; fresh uuid session id, task id and payload id; the payload
/// file written (empty unless [`payload`](Self::payload)); no dependency; one fresh expected
/// output id; `data_folder` = the folder's absolute path; `data_chunk_max_size` 2 MiB; task
/// options = the crate's `TaskOptions::default()` (max_retries 1, priority 1) except
/// `max_duration` = [`DEFAULT_MAX_DURATION`] (the crate's default is ~10 000 years). Files are
/// written at [`build`](Self::build).
pub struct ProcessRequestBuilder {
    folder: PathBuf,
    request: process::Request,
    payload: Option<Vec<u8>>,
    dependencies: Vec<(String, Vec<u8>)>,
}

impl ProcessRequestBuilder {
    fn new(folder: &TaskFolder) -> Self {
        let task_options = TaskOptions {
            max_duration: std_to_prost(DEFAULT_MAX_DURATION),
            ..TaskOptions::default()
        };
        Self {
            folder: folder.path().to_owned(),
            request: process::Request {
                communication_token: folder.token().to_owned(),
                session_id: new_id(),
                task_id: new_id(),
                task_options,
                expected_output_keys: vec![new_id()],
                payload_id: new_id(),
                data_dependencies: Vec::new(),
                data_folder: folder.path().display().to_string(),
                configuration: armonik::Configuration {
                    data_chunk_max_size: DATA_CHUNK_MAX_SIZE,
                },
            },
            payload: Some(Vec::new()),
            dependencies: Vec::new(),
        }
    }

    /// Sets the communication token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.request.communication_token = token.into();
        self
    }

    /// Sets the session id.
    pub fn session_id(mut self, session_id: impl Into<String>) -> Self {
        self.request.session_id = session_id.into();
        self
    }

    /// Sets the task id (e.g. `"<id>###1"` for a retry).
    pub fn task_id(mut self, task_id: impl Into<String>) -> Self {
        self.request.task_id = task_id.into();
        self
    }

    /// Sets the payload id (the payload file is written under it).
    pub fn payload_id(mut self, payload_id: impl Into<String>) -> Self {
        self.request.payload_id = payload_id.into();
        self
    }

    /// Sets the payload bytes written to `<folder>/<payload_id>`.
    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload = Some(payload.into());
        self
    }

    /// Writes no payload file (the payload id still refers to it).
    pub fn without_payload_file(mut self) -> Self {
        self.payload = None;
        self
    }

    /// Adds data dependency `id` with its file `<folder>/<id>` holding `data`.
    pub fn dependency(mut self, id: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        let id = id.into();
        self.request.data_dependencies.push(id.clone());
        self.dependencies.push((id, data.into()));
        self
    }

    /// Replaces the data dependency ids (no file written for them).
    pub fn data_dependencies(mut self, ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.request.data_dependencies = ids.into_iter().map(Into::into).collect();
        self.dependencies.clear();
        self
    }

    /// Replaces the expected output ids.
    pub fn expected_output_keys(
        mut self,
        ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.request.expected_output_keys = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an expected output id.
    pub fn expected_output(mut self, id: impl Into<String>) -> Self {
        self.request.expected_output_keys.push(id.into());
        self
    }

    /// Sets `data_folder` (files are still written in the [`TaskFolder`]).
    pub fn data_folder(mut self, data_folder: impl Into<String>) -> Self {
        self.request.data_folder = data_folder.into();
        self
    }

    /// Sets `configuration.data_chunk_max_size`.
    pub fn data_chunk_max_size(mut self, size: i32) -> Self {
        self.request.configuration.data_chunk_max_size = size;
        self
    }

    /// Replaces the task options.
    pub fn task_options(mut self, options: TaskOptions) -> Self {
        self.request.task_options = options;
        self
    }

    /// Sets one `task_options.options` entry.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.request
            .task_options
            .options
            .insert(key.into(), value.into());
        self
    }

    /// Sets `task_options.max_duration` (hence Process's deadline).
    pub fn max_duration(mut self, max_duration: Duration) -> Self {
        self.request.task_options.max_duration = std_to_prost(max_duration);
        self
    }

    /// Sets `task_options.max_retries`.
    pub fn max_retries(mut self, max_retries: i32) -> Self {
        self.request.task_options.max_retries = max_retries;
        self
    }

    /// Writes the payload and dependency files and returns the request.
    pub fn build(self) -> process::Request {
        let write = |id: &str, data: &[u8]| {
            let path = self.folder.join(id);
            std::fs::write(&path, data)
                .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
        };
        if let Some(payload) = &self.payload {
            write(&self.request.payload_id, payload);
        }
        for (id, data) in &self.dependencies {
            write(id, data);
        }
        self.request
    }
}

/// A `std::time::Duration` as a protobuf Duration.
pub fn std_to_prost(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A fake agent, a running worker wired to it, and a client to the worker. Fields drop in
/// order: client, worker (killed), agent.
pub struct Harness {
    /// Client to the worker.
    pub client: WorkerClient,
    /// The `armonik-wasm serve` process.
    pub worker: Worker,
    /// The fake polling agent the worker calls.
    pub agent: FakeAgent,
}

impl Harness {
    /// Builds guest `component`, starts a fake agent and a worker on unix sockets.
    pub async fn start(component: &str) -> Self {
        Self::start_custom(&guest(component), Transport::Unix, &[], &[]).await
    }

    /// Same as [`start`](Self::start) with extra `serve` arguments.
    pub async fn start_with(component: &str, args: &[&str]) -> Self {
        Self::start_custom(&guest(component), Transport::Unix, args, &[]).await
    }

    /// Same as [`start`](Self::start) with the agent and the worker on TCP.
    pub async fn start_tcp(component: &str) -> Self {
        Self::start_custom(&guest(component), Transport::Tcp, &[], &[]).await
    }

    /// Any component file, transport (for both agent and worker), extra `serve` arguments and
    /// environment (see [`Worker::spawn_custom`]).
    pub async fn start_custom(
        component: &Path,
        transport: Transport,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let agent = FakeAgent::start_on(transport);
        let worker = Worker::spawn_custom(component, &agent, transport, extra_args, envs).await;
        let client = worker.client().await;
        Self {
            client,
            worker,
            agent,
        }
    }

    /// Runs one task the way Core does: binds the request's token/session/data folder on the
    /// agent, checks the worker's health (5 s; not SERVING ⇒ `UNAVAILABLE "harness: health check
    /// before Process failed: …"` without calling Process), calls Process with the
    /// `max_duration` deadline, unbinds, and returns Process's result.
    pub async fn run_task(&self, request: process::Request) -> Result<Output, Status> {
        self.agent.bind_request(&request);
        let health = tokio::time::timeout(Duration::from_secs(5), self.client.health_check()).await;
        let result = match health {
            // Core counts UNIMPLEMENTED as healthy.
            Ok(Ok(ServingStatus::Serving)) => self.client.process(request).await,
            Ok(Err(status)) if status.code() == Code::Unimplemented => {
                self.client.process(request).await
            }
            other => Err(Status::unavailable(format!(
                "harness: health check before Process failed: {other:?}"
            ))),
        };
        self.agent.unbind();
        result
    }
}

/// What a `run` or `dev` left in its `TMPDIR` (names of the entries), leaving out the folder of
/// empty files kept for the next process (`host_files::EmptyFiles`), after checking that it
/// holds nothing but empty files.
pub fn left_in_tmp(tmp: &Path) -> Vec<String> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir(tmp).expect("tmp") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("armonik-wasm-empty-files-") {
            for file in std::fs::read_dir(entry.path()).expect("the empty files") {
                let meta = file.expect("entry").metadata().expect("stat");
                assert!(meta.is_file() && meta.len() == 0, "{name}: {meta:?}");
            }
        } else {
            left.push(name);
        }
    }
    left
}
