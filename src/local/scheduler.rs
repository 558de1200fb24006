//! `armonik-wasm run`: a whole task graph on this machine, through the same task runner as
//! `serve`, with the embedded agent in place of ArmoniK.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::{AbortHandle, JoinSet};

use crate::local::agent::LocalAgent;
use crate::local::records::{TaskRecord, TaskState, count_states};
use crate::worker::task_runner::TaskRunner;

/// How a local run ended.
pub struct Report {
    /// Every task, in submission order.
    pub tasks: Vec<TaskRecord>,
    /// Wall time of the whole graph.
    pub elapsed: Duration,
}

impl Report {
    /// Tasks per final state.
    pub fn counts(&self) -> BTreeMap<TaskState, usize> {
        count_states(self.tasks.iter().map(|t| t.state))
    }

    /// One line: tasks by state and the time taken.
    pub fn summary(&self) -> String {
        let counts = self.counts();
        let states: Vec<String> = counts
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect();
        format!(
            "{} tasks run ({}) in {:.3} s",
            self.tasks.len(),
            states.join(", "),
            self.elapsed.as_secs_f64()
        )
    }
}

/// Why a graph stopped before its end.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: the running tasks were stopped")]
pub struct Interrupted;

/// When [`run_graph`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Once no task is running or ready (`run`): tasks still waiting are then cancelled.
    Idle,
    /// Only when stopped (`dev`): clients may submit more at any time.
    Stopped,
}

/// Told of each task's end, as `run` shows progress.
pub trait Observer {
    /// Task `task_id` ended in `state`; `running` attempts still run. An error stops the graph
    /// as SIGINT does (the caller can no longer report, so it cannot show the result either).
    ///
    /// # Errors
    /// Whatever stops the graph.
    fn task_done(
        &self,
        agent: &LocalAgent,
        task_id: &str,
        state: TaskState,
        running: usize,
    ) -> anyhow::Result<()>;

    /// The graph stopped.
    fn finish(&self);
}

/// Runs the tasks of the agent's graph, up to `parallelism` at once, first come first served,
/// stopping the attempts clients cancel, and telling `observer` of each task's end. With
/// [`Until::Idle`] it returns once none is left runnable, after cancelling the tasks waiting
/// on results that will never come. When `stop` resolves first (SIGINT), the running guests
/// are stopped and waited for, so their folders can be removed, and the result is
/// [`Interrupted`].
pub async fn run_graph(
    agent: Arc<LocalAgent>,
    runner: Arc<TaskRunner>,
    parallelism: usize,
    until: Until,
    observer: Option<&dyn Observer>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut running = JoinSet::new();
    // The attempt of each spawned task, and how to stop it.
    let mut attempts: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut handles: HashMap<String, AbortHandle> = HashMap::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        for token in agent.take_stops() {
            // Dropping the guest's future stops it at its next epoch tick.
            if let Some(handle) = handles.get(&token) {
                handle.abort();
            }
        }
        while running.len() < parallelism.max(1) {
            let dispatch = match agent.start_next() {
                Ok(Some(dispatch)) => dispatch,
                Ok(None) => break,
                Err(error) => {
                    // The running guests are stopped and waited for, so their folders can go.
                    running.shutdown().await;
                    if let Some(observer) = observer {
                        observer.finish();
                    }
                    return Err(error.into());
                }
            };
            let runner = runner.clone();
            let token = dispatch.request.communication_token.clone();
            let handle = running.spawn(async move {
                let task_id = dispatch.request.task_id.clone();
                let outcome = runner
                    .process_in(dispatch.request, dispatch.data_folder)
                    .await;
                (task_id, outcome)
            });
            attempts.insert(handle.id(), token.clone());
            handles.insert(token, handle);
        }
        if running.is_empty() && until == Until::Idle {
            break;
        }
        let joined = tokio::select! {
            Some(joined) = running.join_next_with_id() => joined,
            () = agent.changed.notified() => continue,
            () = &mut stop => {
                // Aborted at their next epoch tick; shutdown waits until each has stopped.
                running.shutdown().await;
                if let Some(observer) = observer {
                    observer.finish();
                }
                return Err(Interrupted.into());
            }
        };
        let (id, finished) = match joined {
            Ok((id, (task_id, outcome))) => (id, Some((task_id, outcome))),
            Err(error) => (error.id(), None),
        };
        let Some(token) = attempts.remove(&id) else {
            continue;
        };
        handles.remove(&token);
        // A stopped attempt ends as its task's cancellation says; a panic is retried.
        let (task_id, outcome) = finished.unwrap_or_else(|| {
            (
                String::new(),
                Err(tonic::Status::cancelled("the task was stopped")),
            )
        });
        let state = agent.finish(&token, &outcome);
        match observer {
            Some(observer) => {
                if let Err(error) = observer.task_done(&agent, &task_id, state, running.len()) {
                    running.shutdown().await;
                    observer.finish();
                    return Err(error);
                }
            }
            None => tracing::debug!(task_id, %state, "task done"),
        }
    }
    agent.cancel_stuck();
    if let Some(observer) = observer {
        observer.finish();
    }
    Ok(Report {
        tasks: agent.tasks(),
        elapsed: started.elapsed(),
    })
}
