//! The `armonik-wasm` binary: see `armonik-wasm --help`.

use armonik_wasm::cli::console;
use armonik_wasm::cli::{self, Cli, Command, settings};
use armonik_wasm::errln;
use armonik_wasm::telemetry::logs;

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match settings::parse(&args) {
        Ok(cli) => cli,
        Err(error) => return settings::report(&error, &args),
    };
    raise_open_files_limit();
    // `serve` runs one task at a time (ArmoniK sends one; a guest yields at each epoch tick),
    // so one thread serves it without cross-thread wake-ups on every gRPC message; `run`
    // executes independent tasks in parallel, one per core.
    let runtime = match cli.command {
        Command::Serve(_) | Command::TaskProcess(_) => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = errln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async_main(cli));
    // A compilation a cancelled task left running (see `components`) must not hold the exit.
    runtime.shutdown_background();
    code
}

/// Raises the soft limit of open files to the hard one, as the Go runtime does for every
/// program (since Go 1.19): the default soft limit (1,024 on most Linux systems) is sized for
/// `select(2)`, which nothing here uses, and a host running many tasks at once keeps several
/// files open for each (its data folder's files, kept for the next attempt; results;
/// connections). The hard limit stays: the administrator's bound holds. (Go restores the
/// soft limit in the programs it starts; the only program started here is this one.)
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        // Kept as it is when it cannot be raised: the host then keeps fewer files open.
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

async fn async_main(cli: Cli) -> std::process::ExitCode {
    // A worker logs every task; the local commands show only warnings and what guests print.
    let default_filter = match cli.command {
        Command::Serve(_) | Command::TaskProcess(_) => "info",
        #[cfg(feature = "control-plane")]
        Command::Dev(_) => "info",
        _ => "warn,guest=info",
    };
    let log_format = cli.log_format;
    logs::init(log_format, default_filter);
    let result = match cli.command {
        Command::Serve(args) => cli::serve(args, cli.log_format).await.map(|()| true),
        Command::TaskProcess(args) => armonik_wasm::worker::isolation::task_process(args)
            .await
            .map(|()| true),
        Command::Run(args) => cli::run(args).await,
        Command::Compile(args) => cli::compile(args).map(|()| true),
        Command::Inspect(args) => cli::inspect(args).await,
        #[cfg(feature = "control-plane")]
        Command::Dev(args) => cli::dev::dev(args).await.map(|()| true),
        #[cfg(feature = "control-plane")]
        Command::Submit(args) => cli::submit::submit(args).await,
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        // The reader of stdout or stderr went away (`| head`): nothing to say, and no one to
        // say it to (see `console`).
        Err(error) if console::is_closed_output(&error) => {
            std::process::ExitCode::from(console::CLOSED_EXIT_CODE)
        }
        // A collector reading JSON gets the failure as a record of its own.
        Err(error) if log_format != logs::LogFormat::Text => {
            tracing::error!(target: logs::COMMAND_TARGET, error = format!("{error:#}"), "the command failed");
            std::process::ExitCode::FAILURE
        }
        Err(error) => {
            let _ = errln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
