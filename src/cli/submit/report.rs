//! The end of `submit`: the completed root outputs downloaded, and why the others were not
//! produced.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use armonik::{Client, ResultStatus};
use futures::StreamExt;

use super::errors::request_error;
use super::events::{Tracker, result_status_word, task_status_word};
use crate::cli::run_outputs::{output_file_name, show_output};
use crate::host_files::Folder;
use crate::{errln, outln};

/// Failed tasks whose error is printed at the end (the owners of failed outputs always are).
const MAX_FAILED_TASKS_SHOWN: usize = 10;

/// Downloads the completed root outputs into `dir` and says what each holds; for the others,
/// says why, with the error of the task that owned each and of the tasks that failed. Returns
/// whether every root output was produced.
pub(super) async fn report(
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
