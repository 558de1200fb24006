//! Following the session: its task and result events, until the root outputs are done, and
//! what they said about each task.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use armonik::client::RequestError;
use armonik::events::{EventsEnum, Update};
use armonik::{Client, ResultStatus, TaskStatus};
use futures::StreamExt;

use super::errors::request_error;
use crate::cli::console::PrintError;
use crate::cli::progress::Progress;

/// How often the root outputs are checked directly, besides the events.
const OUTPUT_POLL_EVERY: Duration = Duration::from_secs(5);

/// Subscriptions to the session's events that may fail in a row before `submit` gives up.
const MAX_SUBSCRIPTION_FAILURES: u32 = 5;

/// The session's events, as a stream of updates.
pub(super) type Events = futures::stream::BoxStream<'static, Result<Update, RequestError>>;

/// Subscribes to the session's task and result events (`Events.GetEvents`).
pub(super) async fn subscribe(client: Client, session_id: String) -> Result<Events, RequestError> {
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
pub(super) async fn wait(
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
                            show_progress(progress, tracker, &task_id, &status)?;
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
                    show_progress(progress, tracker, &task_id, &status)?;
                }
            }
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    Ok(())
}

/// What the events said about the session: every task's status, and the root outputs'.
pub(super) struct Tracker {
    tasks: HashMap<String, TaskStatus>,
    /// The root outputs: name, id, status.
    pub(super) outputs: Vec<(String, String, ResultStatus)>,
}

impl Tracker {
    pub(super) fn new(outputs: &[(String, String)]) -> Self {
        Self {
            tasks: HashMap::new(),
            outputs: outputs
                .iter()
                .map(|(name, id)| (name.clone(), id.clone(), ResultStatus::Created))
                .collect(),
        }
    }

    pub(super) fn task(&mut self, task_id: &str, status: TaskStatus) {
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
    pub(super) fn summary(&self) -> String {
        let states: Vec<String> = self
            .counts()
            .iter()
            .map(|(word, n)| format!("{n} {word}"))
            .collect();
        format!("{} tasks run ({})", self.tasks.len(), states.join(", "))
    }

    /// Tasks that failed for good, in no particular order.
    pub(super) fn failed_tasks(&self) -> Vec<String> {
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
pub(super) fn task_status_word(status: &TaskStatus) -> &'static str {
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
pub(super) fn result_status_word(status: &ResultStatus) -> &'static str {
    match status {
        ResultStatus::Unspecified => "unknown",
        ResultStatus::Created => "created",
        ResultStatus::Completed => "completed",
        ResultStatus::Aborted => "aborted",
        ResultStatus::Deleted => "deleted",
        ResultStatus::NotFound => "not found",
    }
}

/// Shows on `progress` that `task_id` went to `status`.
fn show_progress(
    progress: &Progress,
    tracker: &Tracker,
    task_id: &str,
    status: &TaskStatus,
) -> Result<(), PrintError> {
    let (done, total, failed) = tracker.progress();
    let failure = is_failure(status) || *status == TaskStatus::Retried;
    progress.task(
        done,
        total,
        task_id,
        task_status_word(status),
        &format!("({failed} failed)"),
        failure || (done == total && is_final(status)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
