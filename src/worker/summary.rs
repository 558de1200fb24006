//! The one record a finished task leaves: its outcome and what it cost, logged and counted.

use std::time::Duration;

use crate::sandbox::RunStats;
use crate::telemetry::metrics;

/// How a task ended, as ArmoniK records it (see the README's outcome table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `Output.ok`: ArmoniK completes the task.
    Completed,
    /// `Output.error`: ArmoniK records the task as failed, no retry.
    Error,
    /// DEADLINE_EXCEEDED: ArmoniK records a timeout.
    Timeout,
    /// The guest trapped (INTERNAL): ArmoniK retries it.
    Trap,
    /// The agent could not be reached, or the worker was full (UNAVAILABLE): ArmoniK retries.
    Unavailable,
    /// Another status: ArmoniK's agent cancelled the call, or the host failed.
    Other,
}

impl Outcome {
    /// The outcome's label in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Trap => "trap",
            Self::Unavailable => "unavailable",
            Self::Other => "other",
        }
    }

    /// The outcome of a reply with this gRPC status code.
    pub fn of_status(code: tonic::Code) -> Self {
        match code {
            tonic::Code::DeadlineExceeded => Self::Timeout,
            tonic::Code::Internal => Self::Trap,
            tonic::Code::Unavailable => Self::Unavailable,
            _ => Self::Other,
        }
    }
}

/// One finished task.
#[derive(Debug, Clone)]
pub struct TaskSummary {
    /// How it ended.
    pub outcome: Outcome,
    /// From its request to its reply, loading its component included.
    pub wall: Duration,
    /// Its sandbox's figures, when it got as far as the sandbox.
    pub sandbox: Option<RunStats>,
    /// Calls it made to ArmoniK's agent.
    pub agent_calls: u32,
    /// Bytes of its payload and data dependencies in its data folder when it started.
    pub input_bytes: u64,
    /// Bytes of the results it notified (files of its data folder) when it returned.
    pub output_bytes: u64,
    /// Why it did not complete (the `Output.error` details or the status message).
    pub details: Option<String>,
}

impl TaskSummary {
    /// Logs the record (inside the task's span, which carries its task and session ids) and
    /// records it in the metrics.
    pub fn report(&self) {
        metrics::task_finished(
            self.outcome.name(),
            self.wall,
            self.sandbox.map(|s| (s.instantiation, s.memory_peak)),
        );
        let stats = self.sandbox.unwrap_or_default();
        // One record, at a level that says whether the task completed.
        macro_rules! record {
            ($level:ident) => {
                tracing::$level!(
                    outcome = self.outcome.name(),
                    wall_seconds = self.wall.as_secs_f64(),
                    instantiation_seconds = stats.instantiation.as_secs_f64(),
                    instance_made_ahead = stats.made_ahead,
                    memory_peak_bytes = stats.memory_peak,
                    agent_calls = self.agent_calls,
                    input_bytes = self.input_bytes,
                    output_bytes = self.output_bytes,
                    details = self.details.as_deref(),
                    "task finished"
                )
            };
        }
        if self.outcome == Outcome::Completed {
            record!(info);
        } else {
            record!(warn);
        }
    }
}
