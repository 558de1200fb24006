//! What `armonik-wasm run` leaves on disk: the root outputs (and every result) in the user's
//! `--outputs` folder, under names that are never paths, and the removal of its work folder.

use std::path::Path;

use anyhow::Context;

use crate::host_files::{Folder, safe_file_name};
use crate::local::agent::LocalAgent;
use crate::local::records::ResultState;
use crate::{errln, outln};

/// Where `--all-results` writes, inside `--outputs`.
const ALL_RESULTS: &str = "results";

/// The file name of a root output in `--outputs`: its mapped name (see [`safe_file_name`]),
/// except that `results` becomes `%72esults` (its `r` percent-encoded, which the mapping
/// never produces otherwise), leaving `results` to `--all-results`.
pub fn output_file_name(name: &str) -> String {
    match safe_file_name(name) {
        mapped if mapped == ALL_RESULTS => "%72esults".to_owned(),
        mapped => mapped,
    }
}

/// Writes the root outputs to `dir` (`--outputs`; with `all_results`, every result too) and
/// says what each holds. Returns whether every root output was produced.
///
/// A line that cannot be printed (stdout closed) stops the printing, not the writing: every
/// file is written, then that error is returned.
pub fn write_outputs(
    dir: &Path,
    all_results: bool,
    agent: &LocalAgent,
    outputs: &[(String, String)],
) -> anyhow::Result<bool> {
    let outputs_folder =
        Folder::create(dir, false).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut complete = true;
    let mut shown: anyhow::Result<()> = Ok(());
    for (name, id) in outputs {
        match agent.result(id) {
            Some((_, ResultState::Completed)) => {
                let file_name = output_file_name(name);
                let target = dir.join(&file_name);
                let size = agent
                    .open_data(id)
                    .and_then(|mut data| {
                        outputs_folder.write_with(&file_name, None, |f| data.copy_to(f))
                    })
                    .with_context(|| format!("cannot write {}", target.display()))?;
                if shown.is_ok() {
                    shown = show_output(name, &outputs_folder, &file_name, size);
                }
            }
            state => {
                complete = false;
                let why = match state {
                    Some((_, state)) => state.to_string(),
                    None => "unknown result".to_owned(),
                };
                if shown.is_ok() {
                    shown = outln!("{name}: not produced ({why})").map_err(Into::into);
                }
            }
        }
    }
    if all_results {
        write_all_results(agent, &dir.join(ALL_RESULTS))?;
    }
    shown?;
    Ok(complete)
}

/// Prints what the output `name`, just written to `folder` as `file_name` (`size` bytes),
/// holds: its text when it is short UTF-8 (a large output is never read back whole), else its
/// size; then where it is.
///
/// # Errors
/// The file cannot be read back, or the lines cannot be printed.
pub fn show_output(name: &str, folder: &Folder, file_name: &str, size: u64) -> anyhow::Result<()> {
    let text = if size <= 4096 {
        String::from_utf8(folder.read(file_name)?).ok()
    } else {
        None
    };
    match text {
        Some(text) => outln!("{name}: {}", text.trim_end())?,
        None => outln!("{name}: {size} bytes")?,
    }
    outln!("  written to {}", folder.path().join(file_name).display())?;
    Ok(())
}

/// Removes `run`'s work folder (result data, task folders), saying so if that fails.
pub fn remove_work_folder(work: tempfile::TempDir) {
    let path = work.path().to_owned();
    // Emptied first through `host_files`, which removes trees of any depth; then the folder.
    let removed = Folder::open(&path)
        .and_then(|folder| folder.remove_contents())
        .and_then(|()| work.close());
    if let Err(error) = removed {
        // A closed stderr must not stop the clean-up: this line is all that is lost.
        let _ = errln!(
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
            .and_then(|mut data| folder.write_with(&file_name, None, |f| data.copy_to(f)));
        if let Err(error) = written {
            failed += 1;
            // Printing must not stop the writing; a closed stderr loses only this line.
            let _ = errln!(
                "cannot write result {id} to {}: {error}",
                dir.join(&file_name).display()
            );
        }
    }
    let printed = outln!(
        "{} completed results written to {}",
        results.len() - failed,
        dir.display()
    );
    if failed > 0 {
        anyhow::bail!("{failed} results could not be written to {}", dir.display());
    }
    Ok(printed?)
}
