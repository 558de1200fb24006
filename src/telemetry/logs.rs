//! The host's log: where it goes (stderr), which records it keeps (`RUST_LOG`), and in which
//! format (`--log-format`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;
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
///
/// A directive of `RUST_LOG` that cannot be read is left out, the others kept, and a warning
/// says so (as `env_logger` does; `EnvFilter` would otherwise refuse the whole variable).
pub fn init(format: LogFormat, default_filter: &str) {
    let directives = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|directives| !directives.trim().is_empty());
    let mut unread = Vec::new();
    let filter = match directives {
        None => EnvFilter::new(default_filter),
        Some(directives) => {
            let mut filter = EnvFilter::default();
            for directive in directives
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
            {
                match directive.parse::<Directive>() {
                    Ok(parsed) => filter = filter.add_directive(parsed),
                    Err(error) => unread.push(format!("`{directive}`: {error}")),
                }
            }
            filter
        }
    };
    // Whatever `RUST_LOG` keeps, the reason a command stopped is written.
    let filter = match format!("{COMMAND_TARGET}=warn").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    install(format, filter);
    for error in unread {
        tracing::warn!(target: COMMAND_TARGET, %error, "RUST_LOG: a directive that cannot be read was left out");
    }
}

/// The target of the records about the command itself (why it stopped, a `RUST_LOG` it
/// could not read in full): kept at any `RUST_LOG`.
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
