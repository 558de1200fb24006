//! `armonik-wasm submit`: a component and its inputs sent to ArmoniK's control plane (a
//! cluster, or `armonik-wasm dev`) through the official `armonik` client, the session followed
//! to its end, the root task's outputs downloaded.
//!
//! The steps, each one ArmoniK API v3 call or stream: `Results.GetServiceConfiguration` (the
//! upload chunk size), `Sessions.CreateSession`, `Results.CreateResultsMetaData` then one
//! `Results.UploadResultData` stream per file (the component, a payload file, each `--dep`),
//! `Results.CreateResults` for a `--payload-text`, `Results.CreateResultsMetaData` for the
//! expected outputs, `Events.GetEvents` (subscribed before the submission), `Tasks.SubmitTasks`
//! (the root task: `ConventionVersion=v1`, `LibraryBlobId=<component result>`), then
//! `Results.DownloadResultData` per completed output, `Results.GetResult` and `Tasks.GetTask`
//! for a failed one, and `Sessions.CloseSession`.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use armonik::client::{ClientConfigArgs, RequestError};
use armonik::events::{EventsEnum, Update};
use armonik::reexports::prost_types;
use armonik::{Client, ClientConfig, ResultStatus, TaskOptions, TaskStatus};
use clap::Args;
use futures::{Stream, StreamExt};

use crate::cli::console::PrintError;
use crate::cli::run_outputs::{output_file_name, show_output};
use crate::cli::{seconds, shutdown_signal, split_pair};
use crate::host_files::Folder;
use crate::sandbox::components::{Origin, check_header};
use crate::{errln, outln};

/// Upload chunk size when the server does not say (ArmoniK.Core's `PreferredMessageSize`).
const DEFAULT_CHUNK_SIZE: usize = 2 * 1024 * 1024;

/// How long a connection attempt and the first call may take by default.
const DEFAULT_CONNECT_TIMEOUT: &str = "10s";

/// How often the root outputs are checked directly, besides the events.
const OUTPUT_POLL_EVERY: Duration = Duration::from_secs(5);

/// Subscriptions to the session's events that may fail in a row before `submit` gives up.
const MAX_SUBSCRIPTION_FAILURES: u32 = 5;

/// Failed tasks whose error is printed at the end (the owners of failed outputs always are).
const MAX_FAILED_TASKS_SHOWN: usize = 10;

/// The control plane and how to reach it. Each flag defaults to the environment variable that
/// ArmoniK's own clients read (armonik-transport's `ClientConfigArgs::from_env`); the other
/// `GrpcClient__*` keys (`Timeout`, `RateLimit`, keep-alive settings...) are read from the
/// environment as they are.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// The control plane: `http://host:port`, or `https://host:port` for TLS.
    #[arg(
        long,
        env = "GrpcClient__Endpoint",
        default_value = "http://127.0.0.1:5001"
    )]
    pub endpoint: String,

    /// PEM file of the certificate authority that signed the server's certificate [default:
    /// the system's].
    #[arg(long, env = "GrpcClient__CaCert", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// PEM file of the client certificate, for mutual TLS (with --key-pem).
    #[arg(long, env = "GrpcClient__CertPem", value_name = "FILE")]
    pub cert_pem: Option<PathBuf>,

    /// PEM file of the client certificate's private key, for mutual TLS (with --cert-pem).
    #[arg(long, env = "GrpcClient__KeyPem", value_name = "FILE")]
    pub key_pem: Option<PathBuf>,

    /// Accept any server certificate (also set by GrpcClient__AllowUnsafeConnection=true).
    #[arg(long)]
    pub allow_unsafe_connection: bool,

    /// Time a connection, and the first call on it, may take before `submit` gives up, as
    /// `10s`, `500ms`, `1m`.
    #[arg(
        long,
        env = "GrpcClient__ConnectTimeout",
        default_value = DEFAULT_CONNECT_TIMEOUT,
        value_name = "DURATION"
    )]
    pub connect_timeout: String,
}

impl ConnectionArgs {
    /// The client configuration: the environment's `GrpcClient__*` keys, overridden by the
    /// flags. Reads the certificate files.
    ///
    /// # Errors
    /// A setting is invalid, or a certificate file cannot be read.
    fn config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfigArgs::from_env()
            .map_err(|error| anyhow::anyhow!("invalid GrpcClient__ setting: {}", causes(&error)))?;
        config.endpoint = self.endpoint.clone();
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        config.ca_cert = path(&self.ca_cert);
        config.cert_pem = path(&self.cert_pem);
        config.key_pem = path(&self.key_pem);
        config.allow_unsafe_connection |= self.allow_unsafe_connection;
        config.connect_timeout = self.connect_timeout.clone();
        ClientConfig::from_config_args(config)
            .map_err(|error| anyhow::anyhow!("invalid connection settings: {}", causes(&error)))
    }
}

/// Settings of `submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The component (.wasm) the root task runs: uploaded as a result of the session, and
    /// named by the task's `LibraryBlobId` option.
    pub component: PathBuf,

    /// How to reach the control plane.
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// File holding the root task's payload (uploaded in chunks).
    #[arg(long, conflicts_with = "payload_text", value_name = "FILE")]
    pub payload: Option<PathBuf>,

    /// The root task's payload, as text.
    #[arg(long, value_name = "TEXT")]
    pub payload_text: Option<String>,

    /// A data dependency of the root task: a result named NAME holding the bytes of FILE
    /// (uploaded in chunks). Repeat it for more; the task sees them in this order, after the
    /// component.
    #[arg(long = "dep", value_name = "NAME=FILE")]
    pub deps: Vec<String>,

    /// A task option (`TaskOptions.options`) of the session, inherited by every task.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,

    /// The partition the session's tasks run in [default: the cluster's default].
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,

    /// Folder where the root task's completed outputs are written, one file per output name.
    #[arg(long, value_name = "DIR", default_value = "outputs")]
    pub outputs: PathBuf,

    /// Name of an expected output of the root task; repeat it for more.
    #[arg(long = "output-name", value_name = "NAME", default_value = "output")]
    pub output_names: Vec<String>,

    /// Retries of a task that fails with an error status (the session's `max_retries`;
    /// ArmoniK takes 1 or more).
    #[arg(long, default_value_t = 2)]
    pub max_retries: i32,

    /// Time budget of each task, in seconds (the session's `max_duration`).
    #[arg(long, value_name = "SECS", default_value_t = 3600.0)]
    pub max_duration: f64,
}

/// A file to upload as a result: its name in the session, its path, and the open file.
struct Upload {
    name: String,
    path: PathBuf,
    file: std::fs::File,
}

impl Upload {
    fn open(name: &str, path: &Path, what: &str) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read {what} {}", path.display()))?;
        Ok(Self {
            name: name.to_owned(),
            path: path.to_owned(),
            file,
        })
    }
}

/// What the command line asks for, checked and opened before anything is sent.
struct Inputs {
    component: Upload,
    /// A payload file, or the bytes of `--payload-text` (empty without either).
    payload: Result<Upload, Vec<u8>>,
    deps: Vec<Upload>,
    /// The session's default task options.
    session_options: TaskOptions,
    /// `--partition`.
    partition: Option<String>,
    output_names: Vec<String>,
}

impl Inputs {
    fn read(args: &SubmitArgs) -> anyhow::Result<Self> {
        let mut component = Upload::open(
            &component_name(&args.component),
            &args.component,
            "the component",
        )?;
        let mut header = Vec::with_capacity(8);
        (&component.file)
            .take(8)
            .read_to_end(&mut header)
            .and_then(|_| component.file.seek(SeekFrom::Start(0)))
            .with_context(|| format!("cannot read the component {}", args.component.display()))?;
        // Only a component travels as a library: a precompiled .cwasm is native code that no
        // worker accepts from task data.
        check_header(&header, &Origin::File(args.component.clone()))?;

        let payload = match (&args.payload, &args.payload_text) {
            (Some(path), _) => Ok(Upload::open("payload", path, "the payload file")?),
            (None, Some(text)) => Err(text.clone().into_bytes()),
            (None, None) => Err(Vec::new()),
        };
        let mut deps: Vec<Upload> = Vec::new();
        for dep in &args.deps {
            let (name, path) = split_pair(dep, "--dep", "NAME=FILE")?;
            if deps.iter().any(|d| d.name == name) {
                anyhow::bail!("--dep {name} is given twice");
            }
            let what = format!("the file of --dep {name}:");
            deps.push(Upload::open(name, Path::new(path), &what)?);
        }
        for (n, name) in args.output_names.iter().enumerate() {
            if name.is_empty() || args.output_names[..n].contains(name) {
                anyhow::bail!("--output-name needs distinct, non-empty names, got `{name}`");
            }
        }
        let mut options = HashMap::new();
        for option in &args.options {
            let (key, value) = split_pair(option, "--option", "KEY=VALUE")?;
            if key == CONVENTION_VERSION || key == LIBRARY_BLOB_ID {
                anyhow::bail!("--option {key} is set by submit itself");
            }
            options.insert(key.to_owned(), value.to_owned());
        }
        let max_duration = seconds(args.max_duration, "--max-duration")?;
        let session_options = TaskOptions {
            options,
            max_duration: prost_types::Duration::try_from(max_duration)
                .context("--max-duration is too long")?,
            max_retries: args.max_retries,
            priority: 1,
            partition_id: args.partition.clone().unwrap_or_default(),
            ..TaskOptions::default()
        };
        Ok(Self {
            component,
            payload,
            deps,
            session_options,
            partition: args.partition.clone(),
            output_names: args.output_names.clone(),
        })
    }
}

/// ArmoniK's dynamic-worker convention: the task's code is the data dependency named here.
const CONVENTION_VERSION: &str = "ConventionVersion";
/// See [`CONVENTION_VERSION`].
const LIBRARY_BLOB_ID: &str = "LibraryBlobId";

/// The component's result name: its file name.
fn component_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || "component".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `submit`: sends the component and its inputs, follows the session until every root output
/// is completed or aborted, downloads the completed ones into `--outputs`. Returns whether
/// every root output was produced (the exit code).
///
/// # Errors
/// Bad arguments or unreadable files (before anything is sent), an unreachable or silent
/// control plane (within `--connect-timeout`), a refused call, a lost event stream, SIGINT or
/// SIGTERM (the session is cancelled then), an output that cannot be written.
pub async fn submit(args: SubmitArgs) -> anyhow::Result<bool> {
    let inputs = Inputs::read(&args)?;
    let config = args.connection.config()?;
    let connect_timeout = config.connect_timeout.unwrap_or(Duration::from_secs(60));
    let endpoint = config.endpoint.to_string();
    let stop = shutdown_signal();
    let client = connect(config, connect_timeout).await?;

    let session = Arc::new(Mutex::new(None::<String>));
    let work = follow(
        client.clone(),
        &args,
        inputs,
        session.clone(),
        connect_timeout,
    );
    tokio::select! {
        done = work => done,
        () = stop => {
            let session = session.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match session {
                Some(id) => {
                    let mut sessions = client.into_sessions();
                    let cancelled =
                        tokio::time::timeout(connect_timeout, sessions.cancel(id.clone())).await;
                    match cancelled {
                        Ok(Ok(_)) => anyhow::bail!("interrupted: session {id} cancelled"),
                        Ok(Err(error)) => anyhow::bail!(
                            "interrupted; session {id} could not be cancelled: {}",
                            request_error(&error)
                        ),
                        Err(_) => anyhow::bail!(
                            "interrupted; session {id} could not be cancelled: no answer from {endpoint}"
                        ),
                    }
                }
                None => anyhow::bail!("interrupted before a session was created"),
            }
        }
    }
}

/// Connects to the control plane and checks it answers: the connection and a first call
/// (`GetServiceConfiguration`) each within `timeout`.
async fn connect(config: ClientConfig, timeout: Duration) -> anyhow::Result<Client> {
    let endpoint = config.endpoint.to_string();
    let client = match tokio::time::timeout(timeout, Client::with_config(config)).await {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => {
            anyhow::bail!("cannot connect to {endpoint}: {}", root_cause(&error))
        }
        Err(_) => anyhow::bail!(
            "cannot connect to {endpoint}: no connection within {}",
            humantime(timeout)
        ),
    };
    tracing::debug!(%endpoint, "connected");
    Ok(client)
}

/// Everything after the connection: session, uploads, submission, events, downloads. The
/// session's id goes to `session` once it exists, for SIGINT to cancel it.
async fn follow(
    client: Client,
    args: &SubmitArgs,
    inputs: Inputs,
    session: Arc<Mutex<Option<String>>>,
    first_call_timeout: Duration,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut results = client.clone().into_results();
    let chunk_size =
        match tokio::time::timeout(first_call_timeout, results.get_service_configuration()).await {
            Err(_) => anyhow::bail!(
                "no answer from {} within {}",
                args.connection.endpoint,
                humantime(first_call_timeout)
            ),
            Ok(Err(error)) => anyhow::bail!(
                "cannot use the control plane at {}: {}",
                args.connection.endpoint,
                request_error(&error)
            ),
            Ok(Ok(config)) => usize::try_from(config.data_chunk_max_size)
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or(DEFAULT_CHUNK_SIZE),
        };

    let Inputs {
        component,
        payload,
        deps,
        session_options,
        partition,
        output_names,
    } = inputs;
    let session_id = client
        .clone()
        .into_sessions()
        .create(partition, session_options.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot create a session: {}", request_error(&e)))?;
    *session.lock().unwrap_or_else(|e| e.into_inner()) = Some(session_id.clone());
    tracing::info!(session = %session_id, "session created");

    // The files: metadata first, then one upload stream each, in chunks of `chunk_size`.
    let mut uploads = vec![component];
    let payload_text = match payload {
        Ok(file) => {
            uploads.push(file);
            None
        }
        Err(bytes) => Some(bytes),
    };
    uploads.extend(deps);
    let created = results
        .create_metadata(
            session_id.clone(),
            uploads
                .iter()
                .map(|u| armonik::results::create_metadata::RequestItem::from(u.name.clone())),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the input results: {}", request_error(&e)))?;
    anyhow::ensure!(
        created.len() == uploads.len(),
        "the control plane created {} results for {} inputs",
        created.len(),
        uploads.len()
    );
    let mut ids = Vec::with_capacity(uploads.len());
    for (upload, result) in uploads.into_iter().zip(created) {
        upload_file(
            &mut results,
            &session_id,
            &result.result_id,
            upload,
            chunk_size,
        )
        .await?;
        ids.push(result.result_id);
    }
    let component_id = ids.remove(0);
    let payload_id = match payload_text {
        None => ids.remove(0),
        Some(bytes) => {
            let created = results
                .create(
                    session_id.clone(),
                    [armonik::results::create::RequestItem::from((
                        "payload", bytes,
                    ))],
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the payload: {}", request_error(&e)))?;
            created
                .into_iter()
                .next()
                .context("the control plane created no payload result")?
                .result_id
        }
    };
    let dep_ids = ids;
    let outputs: Vec<(String, String)> = results
        .create_metadata(
            session_id.clone(),
            output_names
                .iter()
                .map(|name| armonik::results::create_metadata::RequestItem::from(name.clone())),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the outputs: {}", request_error(&e)))?
        .into_iter()
        .map(|r| (r.name, r.result_id))
        .collect();
    anyhow::ensure!(
        outputs.len() == output_names.len(),
        "the control plane created {} outputs for {} names",
        outputs.len(),
        output_names.len()
    );

    // Subscribed before the submission, so that no event of the root task is missed (the
    // server also replays the results it has when a subscription starts).
    let subscription = tokio::spawn(subscribe(client.clone(), session_id.clone()));
    let mut options = session_options.clone();
    options
        .options
        .insert(CONVENTION_VERSION.to_owned(), "v1".to_owned());
    options
        .options
        .insert(LIBRARY_BLOB_ID.to_owned(), component_id.clone());
    let mut dependencies = vec![component_id];
    dependencies.extend(dep_ids);
    let submitted = client
        .clone()
        .into_tasks()
        .submit(
            session_id.clone(),
            None,
            [armonik::tasks::submit::RequestItem {
                expected_output_keys: outputs.iter().map(|(_, id)| id.clone()).collect(),
                data_dependencies: dependencies,
                payload_id,
                task_options: Some(options),
            }],
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot submit the task: {}", request_error(&e)))?;
    let root = submitted
        .into_iter()
        .next()
        .context("the control plane submitted no task")?;
    tracing::info!(session = %session_id, task = %root.task_id, "root task submitted");
    let first = subscription
        .await
        .context("the event subscription panicked")?;

    let mut tracker = Tracker::new(&outputs);
    tracker.task(&root.task_id, TaskStatus::Submitted);
    let progress = Progress::new();
    let waited = wait(&client, &session_id, &mut tracker, &progress, first).await;
    progress.finish();
    waited?;

    let complete = report(&client, &session_id, &args.outputs, &tracker).await?;
    outln!(
        "{} (session {session_id}) in {:.3} s",
        tracker.summary(),
        started.elapsed().as_secs_f64()
    )?;
    if let Err(error) = client
        .clone()
        .into_sessions()
        .close(session_id.clone())
        .await
    {
        tracing::warn!(session = %session_id, error = %request_error(&error), "cannot close the session");
    }
    Ok(complete)
}

/// Uploads `upload` as the result `result_id`, in chunks of `chunk_size` bytes read as they
/// are sent (never the whole file in memory).
async fn upload_file(
    results: &mut armonik::client::Results<Client>,
    session_id: &str,
    result_id: &str,
    upload: Upload,
    chunk_size: usize,
) -> anyhow::Result<()> {
    let failed = Arc::new(Mutex::new(None));
    let chunks = file_chunks(upload.file, chunk_size, failed.clone());
    let uploaded = results
        .upload(session_id.to_owned(), result_id.to_owned(), chunks)
        .await;
    if let Some(error) = failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(error).with_context(|| format!("cannot read {}", upload.path.display()));
    }
    uploaded.map_err(|e| {
        anyhow::anyhow!(
            "cannot upload {} ({}): {}",
            upload.path.display(),
            upload.name,
            request_error(&e)
        )
    })?;
    tracing::debug!(name = %upload.name, %result_id, "uploaded");
    Ok(())
}

/// The file's bytes in chunks of `chunk_size` (the last one shorter), each read on a blocking
/// thread when the stream is polled. A read error ends the stream early and is left in
/// `failed`: the caller must check it before using the result.
fn file_chunks(
    file: std::fs::File,
    chunk_size: usize,
    failed: Arc<Mutex<Option<std::io::Error>>>,
) -> impl Stream<Item = Vec<u8>> + Send + 'static {
    futures::stream::unfold(Some(file), move |file| {
        let failed = failed.clone();
        async move {
            let mut file = file?;
            let read = tokio::task::spawn_blocking(move || {
                let mut chunk = Vec::with_capacity(chunk_size);
                let read = (&mut file)
                    .take(u64::try_from(chunk_size).unwrap_or(u64::MAX))
                    .read_to_end(&mut chunk);
                (file, chunk, read)
            })
            .await;
            match read {
                Ok((_, _, Ok(0))) => None,
                Ok((file, chunk, Ok(_))) => Some((chunk, Some(file))),
                Ok((_, _, Err(error))) => {
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                    None
                }
                Err(error) => {
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(std::io::Error::other(error));
                    None
                }
            }
        }
    })
}

/// The session's events, as a stream of updates.
type Events = futures::stream::BoxStream<'static, Result<Update, RequestError>>;

/// Subscribes to the session's task and result events (`Events.GetEvents`).
async fn subscribe(client: Client, session_id: String) -> Result<Events, RequestError> {
    let no_filter = Vec::<Vec<armonik::tasks::filter::Field>>::new();
    let no_result_filter = Vec::<Vec<armonik::results::filter::Field>>::new();
    let stream = client
        .into_events()
        .subscribe(
            session_id,
            no_filter,
            no_result_filter,
            [
                EventsEnum::NewTask,
                EventsEnum::TaskStatusUpdate,
                EventsEnum::NewResult,
                EventsEnum::ResultStatusUpdate,
            ],
        )
        .await?;
    Ok(stream.map(|event| event.map(|e| e.update)).boxed())
}

/// Follows the session's events until every root output is completed or aborted. A stream
/// that ends or fails is subscribed again; the outputs are also checked every
/// [`OUTPUT_POLL_EVERY`], in case an event is lost.
async fn wait(
    client: &Client,
    session_id: &str,
    tracker: &mut Tracker,
    progress: &Progress,
    first: Result<Events, RequestError>,
) -> anyhow::Result<()> {
    let mut results = client.clone().into_results();
    let mut subscription = Some(first);
    let mut failures = 0;
    let mut poll = tokio::time::interval(OUTPUT_POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let subscribed = match subscription.take() {
            Some(subscribed) => subscribed,
            None => subscribe(client.clone(), session_id.to_owned()).await,
        };
        let mut events = match subscribed {
            Ok(events) => events,
            Err(error) => {
                failures += 1;
                if failures >= MAX_SUBSCRIPTION_FAILURES {
                    anyhow::bail!(
                        "cannot follow the session's events: {}",
                        request_error(&error)
                    );
                }
                tracing::warn!(error = %request_error(&error), "cannot follow the session's events; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(update)) => {
                        failures = 0;
                        if let Some((task_id, status)) = tracker.apply(update) {
                            progress.update(tracker, &task_id, &status)?;
                        }
                        if tracker.outputs_done() {
                            return settle(&mut events, tracker, progress).await;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(error = %request_error(&error), "the event stream failed; subscribing again");
                        break;
                    }
                    None => break,
                },
                _ = poll.tick() => {
                    tracker.refresh_outputs(&mut results).await;
                    if tracker.outputs_done() {
                        return settle(&mut events, tracker, progress).await;
                    }
                }
            }
        }
        // The stream ended: perhaps because everything is there.
        tracker.refresh_outputs(&mut results).await;
        if tracker.outputs_done() {
            return Ok(());
        }
        failures += 1;
        if failures >= MAX_SUBSCRIPTION_FAILURES {
            anyhow::bail!("the session's event stream keeps ending before the outputs are done");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How long the events are still read once the root outputs are done, for the tasks to reach
/// their final status: ArmoniK completes a task's results before the task itself.
const SETTLE_FOR: Duration = Duration::from_secs(2);

/// Reads `events` until every known task is in a final status, for at most [`SETTLE_FOR`], so
/// that the summary counts tasks as they ended.
async fn settle(
    events: &mut Events,
    tracker: &mut Tracker,
    progress: &Progress,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + SETTLE_FOR;
    while !tracker.tasks_done() {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(update))) => {
                if let Some((task_id, status)) = tracker.apply(update) {
                    progress.update(tracker, &task_id, &status)?;
                }
            }
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    Ok(())
}

/// What the events said about the session: every task's status, and the root outputs'.
struct Tracker {
    tasks: HashMap<String, TaskStatus>,
    /// The root outputs: name, id, status.
    outputs: Vec<(String, String, ResultStatus)>,
}

impl Tracker {
    fn new(outputs: &[(String, String)]) -> Self {
        Self {
            tasks: HashMap::new(),
            outputs: outputs
                .iter()
                .map(|(name, id)| (name.clone(), id.clone(), ResultStatus::Created))
                .collect(),
        }
    }

    fn task(&mut self, task_id: &str, status: TaskStatus) {
        let known = self.tasks.entry(task_id.to_owned()).or_default();
        // A replayed or late event never takes a task back from a final status.
        if !is_final(known) || is_final(&status) {
            *known = status;
        }
    }

    fn result(&mut self, result_id: &str, status: ResultStatus) {
        for (_, id, known) in &mut self.outputs {
            if id == result_id && !output_done(known) {
                *known = status.clone();
            }
        }
    }

    /// Takes an event in; returns the task it changed, if any.
    fn apply(&mut self, update: Update) -> Option<(String, TaskStatus)> {
        match update {
            Update::NewTask(task) => {
                self.task(&task.task_id, task.status.clone());
                Some((task.task_id, task.status))
            }
            Update::TaskStatusUpdate(task) => {
                self.task(&task.task_id, task.status.clone());
                Some((task.task_id, task.status))
            }
            Update::NewResult(result) => {
                self.result(&result.result_id, result.status);
                None
            }
            Update::ResultStatusUpdate(result) => {
                self.result(&result.result_id, result.status);
                None
            }
            _ => None,
        }
    }

    /// Asks the control plane for the root outputs' status (`Results.GetResult`); a failed
    /// call is only logged (the events keep coming, or the subscription fails).
    async fn refresh_outputs(&mut self, results: &mut armonik::client::Results<Client>) {
        let pending: Vec<String> = self
            .outputs
            .iter()
            .filter(|(_, _, status)| !output_done(status))
            .map(|(_, id, _)| id.clone())
            .collect();
        for id in pending {
            match results.get(id.clone()).await {
                Ok(raw) => self.result(&id, raw.status),
                Err(error) => {
                    tracing::debug!(result = %id, error = %request_error(&error), "cannot get an output's status")
                }
            }
        }
    }

    fn tasks_done(&self) -> bool {
        self.tasks.values().all(is_final)
    }

    fn outputs_done(&self) -> bool {
        self.outputs
            .iter()
            .all(|(_, _, status)| output_done(status))
    }

    /// Tasks per status, retried ones apart (a copy of each runs again).
    fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for status in self.tasks.values() {
            *counts.entry(task_status_word(status)).or_insert(0) += 1;
        }
        counts
    }

    /// (done, total, failed): tasks in a final status; tasks but the retried; tasks in error or
    /// timed out.
    fn progress(&self) -> (usize, usize, usize) {
        let mut done = 0;
        let mut total = 0;
        let mut failed = 0;
        for status in self.tasks.values() {
            if *status == TaskStatus::Retried {
                continue;
            }
            total += 1;
            if is_final(status) {
                done += 1;
            }
            if is_failure(status) {
                failed += 1;
            }
        }
        (done, total, failed)
    }

    /// `N tasks run (x completed, y error, ...)`.
    fn summary(&self) -> String {
        let states: Vec<String> = self
            .counts()
            .iter()
            .map(|(word, n)| format!("{n} {word}"))
            .collect();
        format!("{} tasks run ({})", self.tasks.len(), states.join(", "))
    }

    /// Tasks that failed for good, in no particular order.
    fn failed_tasks(&self) -> Vec<String> {
        let mut failed: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, status)| is_failure(status))
            .map(|(id, _)| id.clone())
            .collect();
        failed.sort();
        failed
    }
}

/// A task status after which nothing more happens to that task.
fn is_final(status: &TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Completed
            | TaskStatus::Error
            | TaskStatus::Timeout
            | TaskStatus::Cancelled
            | TaskStatus::Retried
    )
}

/// A task that failed for good.
fn is_failure(status: &TaskStatus) -> bool {
    matches!(status, TaskStatus::Error | TaskStatus::Timeout)
}

/// A root output that will not change any more: completed, or never to be.
fn output_done(status: &ResultStatus) -> bool {
    matches!(
        status,
        ResultStatus::Completed
            | ResultStatus::Aborted
            | ResultStatus::Deleted
            | ResultStatus::NotFound
    )
}

/// A task status in the user's words.
fn task_status_word(status: &TaskStatus) -> &'static str {
    match status {
        TaskStatus::Unspecified => "unknown",
        TaskStatus::Creating => "creating",
        TaskStatus::Submitted => "submitted",
        TaskStatus::Dispatched => "dispatched",
        TaskStatus::Completed => "completed",
        TaskStatus::Error => "error",
        TaskStatus::Timeout => "timeout",
        TaskStatus::Cancelling => "cancelling",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::Processing => "processing",
        TaskStatus::Processed => "processed",
        TaskStatus::Retried => "retried",
        TaskStatus::Pending => "pending",
        TaskStatus::Paused => "paused",
    }
}

/// A result status in the user's words.
fn result_status_word(status: &ResultStatus) -> &'static str {
    match status {
        ResultStatus::Unspecified => "unknown",
        ResultStatus::Created => "created",
        ResultStatus::Completed => "completed",
        ResultStatus::Aborted => "aborted",
        ResultStatus::Deleted => "deleted",
        ResultStatus::NotFound => "not found",
    }
}

/// Downloads the completed root outputs into `dir` and says what each holds; for the others,
/// says why, with the error of the task that owned each and of the tasks that failed. Returns
/// whether every root output was produced.
async fn report(
    client: &Client,
    session_id: &str,
    dir: &Path,
    tracker: &Tracker,
) -> anyhow::Result<bool> {
    let folder =
        Folder::create(dir, false).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut results = client.clone().into_results();
    let mut complete = true;
    let mut explain = Vec::new();
    for (name, id, status) in &tracker.outputs {
        if *status == ResultStatus::Completed {
            let file_name = output_file_name(name);
            let size = download(&mut results, session_id, id, &folder, &file_name)
                .await
                .with_context(|| {
                    format!(
                        "cannot download {name} to {}",
                        folder.path().join(&file_name).display()
                    )
                })?;
            show_output(name, &folder, &file_name, size)?;
        } else {
            complete = false;
            outln!("{name}: not produced ({})", result_status_word(status))?;
            match results.get(id.clone()).await {
                Ok(raw) if !raw.owner_task_id.is_empty() => explain.push(raw.owner_task_id),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(result = %id, error = %request_error(&error), "cannot find the task that owned an output")
                }
            }
        }
    }
    if !complete {
        for task in tracker
            .failed_tasks()
            .into_iter()
            .take(MAX_FAILED_TASKS_SHOWN)
        {
            if !explain.contains(&task) {
                explain.push(task);
            }
        }
        let mut tasks = client.clone().into_tasks();
        for task_id in explain {
            match tasks.get(task_id.clone()).await {
                Ok(task) => {
                    let message = match task.output {
                        armonik::tasks::Output::Error(message) if !message.is_empty() => message,
                        _ => task.status_message,
                    };
                    let status = task_status_word(&task.status);
                    if message.is_empty() {
                        errln!("task {task_id} {status}")?;
                    } else {
                        errln!("task {task_id} {status}: {message}")?;
                    }
                }
                Err(error) => errln!(
                    "task {task_id}: cannot get its error: {}",
                    request_error(&error)
                )?,
            }
        }
    }
    Ok(complete)
}

/// Downloads the result `id` into `folder` as `file_name` (written aside, then renamed into
/// place). Returns its size in bytes.
async fn download(
    results: &mut armonik::client::Results<Client>,
    session_id: &str,
    id: &str,
    folder: &Folder,
    file_name: &str,
) -> anyhow::Result<u64> {
    let mut stream = results
        .download(session_id.to_owned(), id.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{}", request_error(&e)))?;
    let mut file = folder.new_file()?;
    let mut size = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| anyhow::anyhow!("{}", request_error(&e)))?;
        file.file().write_all(&chunk)?;
        size += chunk.len() as u64;
    }
    file.persist(file_name)?;
    Ok(size)
}

/// How often a line of progress is printed when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Progress of the session: a bar on a terminal (tasks done/total, failed); otherwise a line
/// per failed task, and one a second with the counts.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Mutex<Option<Instant>>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(1);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {pos}/{len} tasks {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Self {
            bar,
            last_line: Mutex::new(None),
        }
    }

    /// Shows that `task_id` went to `status`.
    fn update(
        &self,
        tracker: &Tracker,
        task_id: &str,
        status: &TaskStatus,
    ) -> Result<(), PrintError> {
        let (done, total, failed) = tracker.progress();
        match &self.bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(format!("({failed} failed)"));
            }
            None => {
                let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                let due = last.is_none_or(|t| t.elapsed() >= PLAIN_PROGRESS_EVERY);
                let failure = is_failure(status) || *status == TaskStatus::Retried;
                if due || failure || (done == total && is_final(status)) {
                    *last = Some(Instant::now());
                    errln!(
                        "[{done}/{total}] task {task_id} {} ({failed} failed)",
                        task_status_word(status)
                    )?;
                }
            }
        }
        Ok(())
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A `RequestError` in one line: the gRPC status's message and what its code means.
fn request_error(error: &RequestError) -> String {
    match error {
        RequestError::Grpc { source, .. } => {
            let code = source.code();
            let message = source.message();
            match std::error::Error::source(source.as_ref()) {
                Some(cause) if message.is_empty() => format!("{code}: {}", causes(cause)),
                Some(cause) => format!("{message}: {}", causes(cause)),
                None if message.is_empty() => code.to_string(),
                None => format!("{message} ({})", code.to_string().to_lowercase()),
            }
        }
        other => causes(other),
    }
}

/// An error and its causes in one line, without the source locations snafu adds (`[src/...]`).
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = strip_location(&cause.to_string());
        if !text.is_empty() && !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

/// The deepest cause of an error: for a failed connection, what the system said ("Connection
/// refused (os error 111)", "failed to lookup address information...").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(cause) = last.source() {
        last = cause;
    }
    strip_location(&last.to_string())
}

/// `message [src/file.rs:1:2]` → `message`.
fn strip_location(text: &str) -> String {
    match text.rfind(" [") {
        Some(at) if text.ends_with(']') => text[..at].to_owned(),
        _ => text.to_owned(),
    }
}

/// A duration as the flags take it (`10s`, `1.5s`).
fn humantime(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_left_out_of_messages() {
        assert_eq!(
            strip_location("Could not connect [src/connect.rs:3:4]"),
            "Could not connect"
        );
        assert_eq!(strip_location("a [b] c"), "a [b] c");
    }

    #[test]
    fn progress_counts_tasks_but_retried_copies() {
        let mut tracker = Tracker::new(&[("output".to_owned(), "r1".to_owned())]);
        tracker.task("t1", TaskStatus::Submitted);
        tracker.task("t1", TaskStatus::Retried);
        tracker.task("t2", TaskStatus::Completed);
        tracker.task("t3", TaskStatus::Error);
        // A late event does not take a task back.
        tracker.task("t2", TaskStatus::Processing);
        assert_eq!(tracker.progress(), (2, 2, 1));
        assert!(!tracker.outputs_done());
        tracker.result("r1", ResultStatus::Aborted);
        assert!(tracker.outputs_done());
        assert_eq!(
            tracker.summary(),
            "3 tasks run (1 completed, 1 error, 1 retried)"
        );
    }
}
