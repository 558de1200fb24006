//! The host's log: where it goes (stderr), which records it keeps (`RUST_LOG`), and in which
//! format (`--log-format`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::JsonFields;

use crate::telemetry::clef::Clef;

/// The format of the host's log records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per record for a person; coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, `tracing-subscriber`'s layout (fields flattened, spans
    /// listed), for collectors that take any JSON.
    Json,
    /// CLEF, the layout of ArmoniK's own workers, for its Fluent Bit and Seq stack.
    Clef,
}

/// Installs the process's subscriber: records at `RUST_LOG`'s levels, else at
/// `default_filter`'s, written to stderr in `format`.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Otherwise a log line to a closed stderr is reported with `eprintln!`, which panics.
        .log_internal_errors(false);
    match format {
        // Colours only for a person: a container's log collector stores the codes as text.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
        LogFormat::Clef => builder
            .with_ansi(false)
            .fmt_fields(JsonFields::new())
            .event_format(Clef)
            .init(),
    }
}
