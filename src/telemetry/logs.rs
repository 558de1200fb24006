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
/// `default_filter`'s, written to stderr in `format`. An empty `RUST_LOG` counts as unset,
/// as every variable does (see `cli::settings`): an empty filter would drop every record,
/// errors included.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|directives| !directives.trim().is_empty())
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    // Whatever `RUST_LOG` keeps, the reason a command stopped is written.
    let filter = match format!("{COMMAND_TARGET}=error").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    install(format, filter);
}

/// The target of the record that says why a command stopped: kept at any `RUST_LOG`.
pub const COMMAND_TARGET: &str = "armonik_wasm::command";

/// Installs the process's subscriber with `filter` alone, whatever `RUST_LOG` says: for
/// records that must be written (a command that cannot start says why).
pub fn init_with(format: LogFormat, filter: &str) {
    install(format, EnvFilter::new(filter));
}

fn install(format: LogFormat, filter: EnvFilter) {
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
