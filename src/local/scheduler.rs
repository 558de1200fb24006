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

/// Inputs from which an attempt's file work (its copies in, the emptying of its folder) runs
/// through `block_in_place`: a fan-in's thousands of copies take a runtime thread for a good
/// fraction of a second, during which the thread's other tasks (the control plane's calls,
/// other guests) move to another thread. Below, the hand-over would cost more than the work.
const MANY_INPUTS: usize = 64;

/// Runs `work`, file work of an attempt with `inputs` inputs, on this thread: a large one
/// through `block_in_place` when the runtime has other threads to take over (`threads`).
fn file_work<T>(threads: bool, inputs: usize, work: impl FnOnce() -> T) -> T {
    if threads && inputs >= MANY_INPUTS {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

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
    // The attempt (token, task id) of each spawned task, and how to stop it.
    let mut attempts: HashMap<tokio::task::Id, (String, String)> = HashMap::new();
    let mut handles: HashMap<String, AbortHandle> = HashMap::new();
    let mut stop = std::pin::pin!(stop);
    // Whether file work may leave this thread (see `file_work`): fixed for the runtime.
    let threads = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread;
    loop {
        for token in agent.take_stops() {
            // Dropping the guest's future stops it at its next epoch tick.
            if let Some(handle) = handles.get(&token) {
                handle.abort();
            }
        }
        while running.len() < parallelism.max(1) {
            let start = match agent.pick_next() {
                Ok(Some(start)) => start,
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
            let (agent, runner) = (agent.clone(), runner.clone());
            let (token, task_id) = (start.token().to_owned(), start.task_id().to_owned());
            let inputs = start.inputs();
            // The copies in, the guest and the attempt's end run on the runtime's threads,
            // beside the other attempts', rather than one after another in this loop.
            let handle = running.spawn({
                let token = token.clone();
                async move {
                    let dispatch = match file_work(threads, inputs, || agent.fill(start)) {
                        Ok(dispatch) => dispatch,
                        Err(error) => return agent.unfilled(&token, &error),
                    };
                    // A stop asked for during the copies takes effect here.
                    tokio::task::yield_now().await;
                    let outcome = runner
                        .process_in(dispatch.request, dispatch.data_folder)
                        .await;
                    // Nothing awaits after the guest: a stop cannot come between it and its end.
                    file_work(threads, inputs, || agent.finish(&token, &outcome))
                }
            });
            attempts.insert(handle.id(), (token.clone(), task_id));
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
        let (id, ended) = match joined {
            Ok((id, state)) => (id, Some(state)),
            Err(error) => (error.id(), None),
        };
        let Some((token, task_id)) = attempts.remove(&id) else {
            continue;
        };
        handles.remove(&token);
        // Stopped before its end, as its task's cancellation says; a panic is retried.
        let state = ended.unwrap_or_else(|| {
            agent.finish(
                &token,
                &Err(tonic::Status::cancelled("the task was stopped")),
            )
        });
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
