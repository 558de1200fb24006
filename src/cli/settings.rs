//! The command line and the environment, read into a [`Cli`]: the rules an operator who
//! configures a worker by environment (ArmoniK's `ComputePlane__*` keys, this host's
//! `ArmonikWasm__*`) relies on, beyond clap's own.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue};
use clap::{Command, CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::telemetry::logs::{self, LogFormat};

/// Parses `args` (the program's name first) and the process's environment.
///
/// Beyond clap:
/// - An empty variable counts as unset, so the setting keeps its default. Helm templates and
///   compose files write `KEY=` for a value left out; clap would stop the worker with "a
///   value is required" (or take an empty path).
/// - An invalid value read from a variable is reported with the variable's name, as a tip:
///   clap names the flag, which the operator never wrote.
///
/// # Errors
/// clap's error for a bad command line or variable, and for `--help` and `--version`, which
/// [`report`] prints.
pub fn parse(args: &[OsString]) -> Result<Cli, clap::Error> {
    let mut command = command();
    let matches = match command.try_get_matches_from_mut(args) {
        Ok(matches) => matches,
        Err(mut error) => {
            if let Some(variable) = variable_behind(&error, &command, args) {
                error.insert(
                    ContextKind::Suggested,
                    ContextValue::StyledStrs(vec![
                        format!("the value comes from the environment variable {variable}").into(),
                    ]),
                );
            }
            return Err(error);
        }
    };
    Cli::from_arg_matches(&matches).map_err(|error| error.format(&mut command))
}

/// Reports what [`parse`] refused, and returns the exit code (clap's: 2 for an error, 0 for
/// `--help` and `--version`).
///
/// A host logging JSON or CLEF (`--log-format` or `ArmonikWasm__LogFormat`) reports an error
/// as one record in that format, so that its log collector keeps it whole and at the error
/// level; help and version stay plain text for the person who asked.
pub fn report(error: &clap::Error, args: &[OsString]) -> ExitCode {
    let code = ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
    if error.use_stderr()
        && let Some(format) = log_format(args).filter(|format| *format != LogFormat::Text)
    {
        logs::init(format, "error");
        let message = error.render().to_string();
        tracing::error!(error = message.trim_end(), "invalid settings");
        return code;
    }
    // Nothing more to do when stderr or stdout is closed.
    let _ = error.print();
    code
}

/// The command line's definition, with every variable set to the empty string left out.
fn command() -> Command {
    unset_empty_variables(Cli::command())
}

fn unset_empty_variables(command: Command) -> Command {
    let command = command.mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|value| value.is_empty());
        if empty { arg.env(None::<&str>) } else { arg }
    });
    let names: Vec<String> = command
        .get_subcommands()
        .map(|subcommand| subcommand.get_name().to_owned())
        .collect();
    names.into_iter().fold(command, |command, name| {
        command.mut_subcommand(name, unset_empty_variables)
    })
}

/// The variable an invalid value came from: the one of the flag the error names, when that
/// flag is not on the command line (where it would have won) and the variable is set.
fn variable_behind(error: &clap::Error, command: &Command, args: &[OsString]) -> Option<String> {
    let Some(ContextValue::String(invalid)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    // `--memory-limit-mib <MEMORY_LIMIT_MIB>`, `--no-pooling`.
    let flag = invalid.split([' ', '=']).next()?;
    let long = flag.strip_prefix("--")?;
    let on_the_command_line = args.iter().filter_map(|arg| arg.to_str()).any(|arg| {
        arg == flag
            || arg
                .strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('='))
    });
    if on_the_command_line {
        return None;
    }
    let variable = variable_of(command, long)?;
    std::env::var_os(&variable).is_some().then_some(variable)
}

/// The environment variable of the flag `--long`, in `command` or one of its subcommands
/// (a flag shared by several, like the sandbox settings, has the same variable in each).
fn variable_of(command: &Command, long: &str) -> Option<String> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|variable| variable.to_string_lossy().into_owned())
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|subcommand| variable_of(subcommand, long))
        })
}

/// The log format the refused command line asked for, as far as it can be read.
fn log_format(args: &[OsString]) -> Option<LogFormat> {
    command()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?
        .get_one::<LogFormat>("log_format")
        .copied()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// [`variable_of`] takes the first subcommand with the flag: that is right only if a flag
    /// has the same variable (or none) wherever a user can give it.
    #[test]
    fn a_flag_has_one_variable_in_every_command() {
        fn walk(command: &Command, seen: &mut HashMap<String, Option<String>>) {
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                let variable = arg.get_env().map(|v| v.to_string_lossy().into_owned());
                let first = seen.entry(long.to_owned()).or_insert(variable.clone());
                assert_eq!(*first, variable, "--{long} in `{}`", command.get_name());
            }
            // A task process gets every setting on its command line from the worker.
            for subcommand in command.get_subcommands().filter(|s| !s.is_hide_set()) {
                walk(subcommand, seen);
            }
        }
        let mut seen = HashMap::new();
        walk(&Cli::command(), &mut seen);
        assert!(seen.contains_key("memory-limit-mib"));
    }
}
