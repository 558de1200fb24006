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
//!
//! Here the arguments and the steps in order; the inputs and their upload in `inputs`, the
//! session's events followed in `events`, the outputs downloaded and the failures explained in
//! `report`, client errors in one line in `errors`.

mod errors;
mod events;
mod inputs;
mod report;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use armonik::client::ClientConfigArgs;
use armonik::{Client, ClientConfig, TaskStatus};
use clap::Args;

use crate::cli::progress::Progress;
use crate::cli::shutdown_signal;
use crate::outln;
use crate::sandbox::components::{CONVENTION_VERSION, LIBRARY_BLOB_ID};
use errors::{causes, humantime, request_error, root_cause};
use events::{Tracker, subscribe, wait};
use inputs::{Inputs, upload_file};
use report::report;

/// Upload chunk size when the server does not say (ArmoniK.Core's `PreferredMessageSize`).
const DEFAULT_CHUNK_SIZE: usize = 2 * 1024 * 1024;

/// How long a connection attempt and the first call may take by default.
const DEFAULT_CONNECT_TIMEOUT: &str = "10s";

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
    #[arg(
        long,
        env = "GrpcClient__CertPem",
        value_name = "FILE",
        requires = "key_pem"
    )]
    pub cert_pem: Option<PathBuf>,

    /// PEM file of the client certificate's private key, for mutual TLS (with --cert-pem).
    #[arg(
        long,
        env = "GrpcClient__KeyPem",
        value_name = "FILE",
        requires = "cert_pem"
    )]
    pub key_pem: Option<PathBuf>,

    /// Accept any server certificate (also set by GrpcClient__AllowUnsafeConnection=true).
    #[arg(long)]
    pub allow_unsafe_connection: bool,

    /// Time a connection, and the first call on it, may take before `submit` gives up, as
    /// seconds (`3`) or with a unit (`10s`, `500ms`, `1m`).
    #[arg(
        long,
        env = "GrpcClient__ConnectTimeout",
        default_value = DEFAULT_CONNECT_TIMEOUT,
        value_name = "DURATION",
        allow_negative_numbers = true,
        value_parser = crate::cli::values::Trimmed(crate::cli::values::connect_timeout)
    )]
    pub connect_timeout: Duration,
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
        config.connect_timeout = format!("{}ms", self.connect_timeout.as_millis());
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
    #[arg(long, default_value_t = 2, allow_negative_numbers = true, value_parser = crate::cli::values::retries(1))]
    pub max_retries: i32,

    /// Time budget of each task, in seconds (the session's `max_duration`): more than 0;
    /// longer than a year is a year.
    #[arg(long, value_name = "SECS", default_value = "3600", allow_negative_numbers = true, value_parser = crate::cli::values::seconds_above_zero)]
    pub max_duration: Duration,
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
    // Before anything is sent: outputs computed for nowhere would be lost.
    crate::host_files::Folder::create(&args.outputs, false).with_context(|| {
        format!(
            "cannot create the outputs folder {}",
            args.outputs.display()
        )
    })?;
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
    let (why, error) = tokio::select! {
        done = work => match done {
            Ok(complete) => return Ok(complete),
            Err(error) => ("failed", error),
        },
        () = stop => ("interrupted", anyhow::anyhow!("interrupted")),
    };
    // A session left behind would keep its tasks running and its data stored: cancel it.
    let session = session.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(id) = session else {
        return Err(error.context(format!("{why} before a session was created")));
    };
    let mut sessions = client.into_sessions();
    let said = match tokio::time::timeout(connect_timeout, sessions.cancel(id.clone())).await {
        Ok(Ok(_)) => format!("session {id} cancelled"),
        Ok(Err(cancel)) => format!(
            "session {id} could not be cancelled: {}",
            request_error(&cancel)
        ),
        Err(_) => format!("session {id} could not be cancelled: no answer from {endpoint}"),
    };
    if why == "interrupted" {
        anyhow::bail!("interrupted: {said}");
    }
    Err(error.context(said))
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
