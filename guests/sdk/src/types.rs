//! The WIT record types, under friendly names, with a few conveniences.

use crate::bindings::armonik::worker::types;

/// Options of a task (ArmoniK `TaskOptions`); [`TaskOptions::default`] leaves every field
/// empty, so the session's defaults apply.
pub type TaskOptions = types::TaskOptions;
/// A task to submit with [`TaskHandler::submit_tasks`](crate::TaskHandler::submit_tasks).
pub type TaskDefinition = types::TaskDefinition;
/// A task with an inline payload, for the legacy
/// [`TaskHandler::create_tasks`](crate::TaskHandler::create_tasks).
pub type TaskRequest = types::TaskRequest;
/// A task the agent accepted.
pub type SubmittedTask = types::SubmittedTask;
/// A result as the agent created it.
pub type ResultMetadata = types::ResultMetadata;
/// Lifecycle of a result (ArmoniK `ResultStatus`).
pub type ResultStatus = types::ResultStatus;
/// Why an agent call failed; each case carries the agent's message.
pub type AgentError = types::AgentError;
/// Everything the host tells a task about itself (what [`TaskHandler`](crate::TaskHandler)
/// is built from).
pub type TaskContext = types::TaskContext;

impl Default for TaskOptions {
    /// No options, no duration limit, 0 retries, priority 0, empty strings: every empty
    /// field takes the session's default.
    fn default() -> Self {
        Self {
            options: Vec::new(),
            max_duration_ms: None,
            max_retries: 0,
            priority: 0,
            partition_id: String::new(),
            application_name: String::new(),
            application_version: String::new(),
            application_namespace: String::new(),
            application_service: String::new(),
            engine_type: String::new(),
        }
    }
}

impl TaskOptions {
    /// Returns the value of the free-form option `key`, if set.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets the free-form option `key` to `value` (replacing an earlier value), builder-style.
    #[must_use]
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.options.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.options.push((key, value)),
        }
        self
    }
}

impl TaskDefinition {
    /// A task over existing results, with no options of its own (`options: None`).
    pub fn new(
        payload_id: impl Into<String>,
        data_dependencies: impl IntoIterator<Item = impl Into<String>>,
        expected_output_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            payload_id: payload_id.into(),
            data_dependencies: data_dependencies.into_iter().map(Into::into).collect(),
            expected_output_ids: expected_output_ids.into_iter().map(Into::into).collect(),
            options: None,
        }
    }

    /// Sets the task's own options, builder-style.
    #[must_use]
    pub fn with_options(mut self, options: TaskOptions) -> Self {
        self.options = Some(options);
        self
    }
}

impl TaskRequest {
    /// A task with an inline payload.
    pub fn new(
        payload: impl Into<Vec<u8>>,
        data_dependencies: impl IntoIterator<Item = impl Into<String>>,
        expected_output_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            payload: payload.into(),
            data_dependencies: data_dependencies.into_iter().map(Into::into).collect(),
            expected_output_ids: expected_output_ids.into_iter().map(Into::into).collect(),
        }
    }
}

impl AgentError {
    /// The WIT name of the case: `invalid-argument`, `not-found`, `unavailable`,
    /// `deadline-exceeded` or `internal`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "invalid-argument",
            Self::NotFound(_) => "not-found",
            Self::Unavailable(_) => "unavailable",
            Self::DeadlineExceeded(_) => "deadline-exceeded",
            Self::Internal(_) => "internal",
        }
    }

    /// The agent's message.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidArgument(m)
            | Self::NotFound(m)
            | Self::Unavailable(m)
            | Self::DeadlineExceeded(m)
            | Self::Internal(m) => m,
        }
    }
}

impl ResultStatus {
    /// The WIT name of the case (`created`, `completed`...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Created => "created",
            Self::Completed => "completed",
            Self::Aborted => "aborted",
            Self::Deleted => "deleted",
            Self::NotFound => "not-found",
        }
    }
}
