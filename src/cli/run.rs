//! `run`: a component's whole task graph on this machine, with the embedded agent, and the
//! task runner `run` and `dev` build for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::console::{self, PrintError};
use super::progress::Progress;
use super::{SandboxArgs, run_outputs, shutdown_signal, split_pair};
use crate::host_files::EmptyFiles;
use crate::local::agent::LocalAgent;
use crate::local::client::TaskCreation;
use crate::local::scheduler::{self, Until};
use crate::proto::v1::TaskOptions;
use crate::sandbox::Sandbox;
use crate::sandbox::components::Components;
use crate::worker::task_runner::{RunnerConfig, TaskRunner};
use crate::{errln, outln};

/// What runs the embedded agent's tasks (`run`, `dev`): a sandbox sized for `parallelism`
/// tasks at once, and the components, the default one loaded first so that a broken one stops
/// the command before anything else is made.
pub(crate) struct LocalRunner {
    sandbox: Arc<Sandbox>,
    components: Components,
    /// Tasks run at once.
    pub(crate) parallelism: usize,
    /// The time budget of a task whose options set none.
    pub(crate) default_max_duration: Duration,
}

impl LocalRunner {
    /// Builds the sandbox and loads `component`; `parallelism` defaults to the number of CPUs.
    ///
    /// # Errors
    /// A setting is invalid, or the component cannot be loaded.
    pub(crate) async fn new(
        args: &SandboxArgs,
        component: Option<&std::path::Path>,
        parallelism: Option<usize>,
    ) -> anyhow::Result<Self> {
        let parallelism = parallelism
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let default_max_duration = args.default_max_duration;
        let (sandbox, disk) = args.build(u32::try_from(parallelism)?)?;
        let components = Components::new(
            sandbox.clone(),
            component,
            args.components_dir.as_deref(),
            disk,
        )
        .await?;
        Ok(Self {
            sandbox,
            components,
            parallelism,
            default_max_duration,
        })
    }

    /// The task runner, its agent the embedded one.
    pub(crate) fn runner(self, agent: Arc<LocalAgent>) -> Arc<TaskRunner> {
        Arc::new(TaskRunner::new(
            self.sandbox,
            self.components,
            agent,
            RunnerConfig {
                max_concurrent_tasks: self.parallelism,
                default_max_duration: self.default_max_duration,
            },
            None,
        ))
    }
}

/// Settings of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component (.wasm), or a file made by `armonik-wasm compile`.
    pub component: PathBuf,

    /// File holding the root task's payload.
    #[arg(long, conflicts_with = "payload_text")]
    pub payload: Option<PathBuf>,

    /// The root task's payload, as text.
    #[arg(long)]
    pub payload_text: Option<String>,

    /// A data dependency of the root task: a result named NAME holding the bytes of FILE.
    /// Repeat it for more; the task sees them in this order.
    #[arg(long = "dep", value_name = "NAME=FILE")]
    pub deps: Vec<String>,

    /// A task option (`TaskOptions.options`) of the session, inherited by every task.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,

    /// Name of an expected output of the root task; repeat it for more.
    #[arg(long = "output-name", value_name = "NAME", default_value = "output")]
    pub output_names: Vec<String>,

    /// Folder where the root task's outputs are written, one file per output name.
    #[arg(long, value_name = "DIR", default_value = "outputs")]
    pub outputs: PathBuf,

    /// Also write every completed result of the graph, as `<outputs>/results/<name>.<id>`.
    #[arg(long)]
    pub all_results: bool,

    /// Retries of a task that traps (the session's `max_retries`), 0 or more.
    #[arg(long, default_value_t = 2, allow_negative_numbers = true, value_parser = super::values::retries(0))]
    pub max_retries: i32,

    /// Tasks run at once [default: the number of CPUs].
    #[arg(long, env = "ArmonikWasm__Parallelism", value_parser = super::values::tasks_at_once::<usize>())]
    pub parallelism: Option<usize>,

    /// Sandbox settings.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// `run`: the whole task graph of a component, on this machine. Returns whether every output
/// of the root task was produced.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    // Before the work folder exists, so that a signal at any time leads to its removal.
    let stop = shutdown_signal();
    let payload = match (&args.payload, &args.payload_text) {
        (Some(path), _) => std::fs::read(path)
            .with_context(|| format!("cannot read the payload file {}", path.display()))?,
        (None, Some(text)) => text.clone().into_bytes(),
        (None, None) => Vec::new(),
    };
    let mut deps: Vec<(String, Vec<u8>)> = Vec::new();
    for dep in &args.deps {
        let (name, path) = split_pair(dep, "--dep", "NAME=FILE")?;
        if deps.iter().any(|(n, _)| n == name) {
            anyhow::bail!("--dep {name} is given twice");
        }
        let data = std::fs::read(path)
            .with_context(|| format!("cannot read the file of --dep {name}: {path}"))?;
        deps.push((name.to_owned(), data));
    }
    for (n, name) in args.output_names.iter().enumerate() {
        if name.is_empty() || args.output_names[..n].contains(name) {
            anyhow::bail!("--output-name needs distinct, non-empty names, got `{name}`");
        }
    }
    let mut options = std::collections::HashMap::new();
    for option in &args.options {
        let (key, value) = split_pair(option, "--option", "KEY=VALUE")?;
        options.insert(key.to_owned(), value.to_owned());
    }
    let local = LocalRunner::new(&args.sandbox, Some(&args.component), args.parallelism).await?;
    let parallelism = local.parallelism;
    // Private to this user: it holds every result of the graph.
    let work = tempfile::Builder::new()
        .prefix("armonik-wasm-run")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()?;
    let session_options = TaskOptions {
        options,
        max_duration: Some(prost_types::Duration::try_from(local.default_max_duration)?),
        max_retries: args.max_retries,
        priority: 1,
        ..TaskOptions::default()
    };
    // Its empty files are kept beside it, for the next `run` or `dev` (`host_files::EmptyFiles`).
    let empty_files = EmptyFiles::temp_dir_path();
    let agent = Arc::new(LocalAgent::new(work.path(), Some(&empty_files))?);
    let session = agent.create_session(session_options, Vec::new());
    let payload_id = agent.create_result(&session, "payload", &payload)?;
    let dep_ids = deps
        .iter()
        .map(|(name, data)| agent.create_result(&session, name, data))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs: Vec<(String, String)> = args
        .output_names
        .iter()
        .map(|name| Ok((name.clone(), agent.create_result_metadata(&session, name)?)))
        .collect::<Result<_, tonic::Status>>()?;
    agent.submit_tasks(
        &session,
        None,
        vec![TaskCreation {
            payload_id,
            data_dependencies: dep_ids,
            expected_outputs: outputs.iter().map(|(_, id)| id.clone()).collect(),
            options: None,
        }],
    )?;

    let runner = local.runner(agent.clone());
    let progress = Progress::new();
    let report = match scheduler::run_graph(
        agent.clone(),
        runner,
        parallelism,
        Until::Idle,
        Some(&progress),
        stop,
    )
    .await
    {
        Ok(report) => report,
        Err(error) => {
            agent.release_spares();
            drop(agent);
            run_outputs::remove_work_folder(work);
            return Err(error);
        }
    };

    // Printing never stops the writing (see `console`): a line that cannot be printed (stdout
    // or stderr closed) is reported once the outputs are written and the work folder removed.
    let mut printed: Result<(), PrintError> = Ok(());
    for task in &report.tasks {
        if let (Some(message), true) = (&task.message, printed.is_ok()) {
            printed = errln!("task {} {}: {message}", task.id, task.state);
        }
    }
    let written = run_outputs::write_outputs(&args.outputs, args.all_results, &agent, &outputs);
    if printed.is_ok() {
        printed = outln!("{}", report.summary());
    }
    // Nothing computed may be lost when the outputs could not all be written: the results
    // held in memory join the others as files in the work folder, which is kept.
    let spilled = match &written {
        Err(error) if !console::is_closed_output(error) => agent.keep_results_as_files(),
        _ => Ok(()),
    };
    agent.release_spares();
    drop(agent);
    match written {
        Ok(complete) => {
            run_outputs::remove_work_folder(work);
            printed?;
            Ok(complete)
        }
        // Every output was written; only the lines saying so were lost.
        Err(error) if console::is_closed_output(&error) => {
            run_outputs::remove_work_folder(work);
            Err(error)
        }
        Err(error) => {
            // Nothing computed is lost: the results stay where they are.
            let kept = work.keep();
            let _ = errln!(
                "the results are kept in {}, one file per result id",
                kept.join("results").display()
            );
            if let Err(spill) = spilled {
                let _ = errln!("but not all: {spill:#}");
            }
            Err(error)
        }
    }
}
