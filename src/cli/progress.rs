//! Progress of a task graph on stderr, for `run` and `submit`: a bar on a terminal; otherwise
//! a plain line per task that failed, and at most one a second for the others.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::console::PrintError;
use crate::errln;
use crate::local::agent::LocalAgent;
use crate::local::records::TaskState;
use crate::local::scheduler::Observer;

/// How often a line of progress is printed when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Progress of the tasks: a bar on a terminal (tasks done/total, and counts); otherwise a line
/// per urgent change (a failed task, the end), and one a second with the counts.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Mutex<Option<Instant>>,
}

impl Progress {
    /// A bar if stderr is a terminal, plain lines otherwise.
    pub fn new() -> Self {
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

    /// Shows that `task_id` went to `status`, `done` tasks of `total` being done, and `counts`
    /// (`(2 failed)`) after the bar. Without a terminal, the line `[done/total] task <task_id>
    /// <status> <counts>` is printed when `urgent` or when the last one is a second old.
    ///
    /// # Errors
    /// A plain line cannot be written to stderr.
    pub fn task(
        &self,
        done: usize,
        total: usize,
        task_id: &str,
        status: impl std::fmt::Display,
        counts: &str,
        urgent: bool,
    ) -> Result<(), PrintError> {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(counts.to_owned());
            }
            None => {
                let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                let due = last.is_none_or(|t| t.elapsed() >= PLAIN_PROGRESS_EVERY);
                if due || urgent {
                    *last = Some(Instant::now());
                    errln!("[{done}/{total}] task {task_id} {status} {counts}")?;
                }
            }
        }
        Ok(())
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// `run`'s progress: tasks done of those known, running and failed, from the graph's counts.
impl Observer for Progress {
    fn task_done(
        &self,
        agent: &LocalAgent,
        task_id: &str,
        state: TaskState,
        running: usize,
    ) -> anyhow::Result<()> {
        let counts = agent.counts();
        let count =
            |states: &[TaskState]| -> usize { states.iter().filter_map(|s| counts.get(s)).sum() };
        let done = count(&[
            TaskState::Completed,
            TaskState::Error,
            TaskState::Timeout,
            TaskState::Cancelled,
        ]);
        let total = done
            + count(&[
                TaskState::Pending,
                TaskState::Running,
                TaskState::Cancelling,
            ]);
        let failed = count(&[TaskState::Error, TaskState::Timeout]);
        let failure = matches!(
            state,
            TaskState::Error | TaskState::Timeout | TaskState::Retried
        );
        // A closed stderr stops the run as SIGINT does, its folders removable (see `console`).
        self.task(
            done,
            total,
            task_id,
            state,
            &format!("({running} running, {failed} failed)"),
            failure || (done == total && running == 0),
        )?;
        Ok(())
    }

    fn finish(&self) {
        Progress::finish(self);
    }
}
