//! What `armonik-wasm run` leaves on disk: the root outputs (and every result) in the user's
//! `--outputs` folder, under names that are never paths, and the removal of its work folder.

use std::path::Path;

use anyhow::Context;

use crate::host_files::{Folder, safe_file_name};
use crate::local_agent::LocalAgent;
use crate::local_graph::ResultState;

/// Where `--all-results` writes, inside `--outputs`.
const ALL_RESULTS: &str = "results";

/// The file name of a root output in `--outputs`: its mapped name (see [`safe_file_name`]),
/// except that `results` becomes `%72esults` (its `r` percent-encoded, which the mapping
/// never produces otherwise), leaving `results` to `--all-results`.
fn output_file_name(name: &str) -> String {
    match safe_file_name(name) {
        mapped if mapped == ALL_RESULTS => "%72esults".to_owned(),
        mapped => mapped,
    }
}

/// Writes the root outputs to `dir` (`--outputs`; with `all_results`, every result too) and
/// says what each holds. Returns whether every root output was produced.
pub fn write_outputs(
    dir: &Path,
    all_results: bool,
    agent: &LocalAgent,
    outputs: &[(String, String)],
) -> anyhow::Result<bool> {
    let outputs_folder =
        Folder::create(dir, false).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut complete = true;
    for (name, id) in outputs {
        match agent.result(id) {
            Some((_, ResultState::Completed)) => {
                let file_name = output_file_name(name);
                let target = dir.join(&file_name);
                let size = agent
                    .open_data(id)
                    .and_then(|mut data| outputs_folder.write_from(&file_name, &mut data))
                    .with_context(|| format!("cannot write {}", target.display()))?;
                // Shown when it is short text; a large output is never read back whole.
                let text = if size <= 4096 {
                    String::from_utf8(outputs_folder.read(&file_name)?).ok()
                } else {
                    None
                };
                match text {
                    Some(text) => println!("{name}: {}", text.trim_end()),
                    None => println!("{name}: {size} bytes"),
                }
                println!("  written to {}", target.display());
            }
            state => {
                complete = false;
                println!("{name}: not produced ({:?})", state.map(|(_, s)| s));
            }
        }
    }
    if all_results {
        write_all_results(agent, &dir.join(ALL_RESULTS))?;
    }
    Ok(complete)
}

/// Removes `run`'s work folder (result data, task folders), saying so if that fails.
pub fn remove_work_folder(work: tempfile::TempDir) {
    let path = work.path().to_owned();
    // Emptied first through `host_files`, which removes trees of any depth; then the folder.
    let removed = Folder::open(&path)
        .and_then(|folder| folder.remove_contents())
        .and_then(|()| work.close());
    if let Err(error) = removed {
        eprintln!(
            "warning: cannot remove the work folder {}: {error}",
            path.display()
        );
    }
}

/// Writes every completed result of the graph to `dir`, as `<mapped name>.<id>` (see
/// [`safe_file_name`]; just `<id>` for an unnamed result). A result that cannot be written
/// is reported and the others are still written.
fn write_all_results(agent: &LocalAgent, dir: &Path) -> anyhow::Result<()> {
    let folder =
        Folder::create(dir, false).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut failed = 0;
    let results = agent.completed_results();
    for (id, name) in &results {
        let file_name = match safe_file_name(name) {
            mapped if mapped.is_empty() => id.clone(),
            mapped => format!("{mapped}.{id}"),
        };
        let written = agent
            .open_data(id)
            .and_then(|mut data| folder.write_from(&file_name, &mut data));
        if let Err(error) = written {
            failed += 1;
            eprintln!(
                "cannot write result {id} to {}: {error}",
                dir.join(&file_name).display()
            );
        }
    }
    println!(
        "{} completed results written to {}",
        results.len() - failed,
        dir.display()
    );
    if failed > 0 {
        anyhow::bail!("{failed} results could not be written to {}", dir.display());
    }
    Ok(())
}
