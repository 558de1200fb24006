//! The command line and the environment, read into a [`Cli`]: the rules an operator who
//! configures a worker by environment (ArmoniK's `ComputePlane__*` keys, this host's
//! `ArmonikWasm__*`) relies on, beyond clap's own.

use std::ffi::{OsStr, OsString};
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue};
use clap::{Command, CommandFactory, FromArgMatches, ValueEnum};

use crate::cli::Cli;
use crate::telemetry::logs::{self, LogFormat};

/// Parses `args` (the program's name first) and the process's environment.
///
/// Beyond clap:
/// - A variable's name matches in any case (`COMPUTEPLANE__WORKERCHANNEL__ADDRESS`), as
///   .NET's configuration keys do: ArmoniK's polling agent, beside this worker, reads the same
///   `ComputePlane__*` keys that way. The exact spelling wins over another.
/// - An empty variable counts as unset: another spelling's value, else the default, applies.
///   Helm templates and compose files write `KEY=` for a value left out; clap would stop the
///   worker with "a value is required" (or take an empty path).
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
/// A host logging JSON or CLEF (`--log-format` anywhere on the command line, or
/// `ArmonikWasm__LogFormat`) reports an error as one record in that format, whatever
/// `RUST_LOG` keeps, so that its log collector has it whole and at the error level; help and
/// version stay plain text for the person who asked.
pub fn report(error: &clap::Error, args: &[OsString]) -> ExitCode {
    let code = ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
    if error.use_stderr()
        && let Some(format) = log_format(args).filter(|format| *format != LogFormat::Text)
    {
        logs::init_with(format, "error");
        let message = error.render().to_string();
        tracing::error!(target: logs::COMMAND_TARGET, error = message.trim_end(), "invalid settings");
        return code;
    }
    // Nothing more to do when stderr or stdout is closed.
    let _ = error.print();
    code
}

/// The command line's definition, each variable under the spelling set in the environment
/// and those set to the empty string left out.
fn command() -> Command {
    let names: Vec<OsString> = std::env::vars_os().map(|(name, _)| name).collect();
    resolve_variables(Cli::command(), &names)
}

fn resolve_variables(command: Command, names: &[OsString]) -> Command {
    let command = command.mut_args(|arg| {
        let Some(wanted) = arg.get_env().map(OsStr::to_owned) else {
            return arg;
        };
        // The spellings set, the exact one first: the first with a value is read; all
        // empty is unset (an empty one does not hide another's value).
        let mut spellings: Vec<&OsString> = names
            .iter()
            .filter(|name| name.eq_ignore_ascii_case(&wanted))
            .collect();
        spellings.sort();
        spellings.sort_by_key(|name| **name != wanted);
        let with_value = spellings
            .iter()
            .find(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
        match with_value {
            Some(name) => arg.env((*name).clone()),
            None if spellings.is_empty() => arg,
            None => arg.env(None::<&str>),
        }
    });
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|subcommand| subcommand.get_name().to_owned())
        .collect();
    subcommands.into_iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| resolve_variables(sub, names))
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
    if flag_value(args, flag).is_some() {
        return None;
    }
    let variable = variable_of(command, long)?;
    std::env::var_os(&variable).is_some().then_some(variable)
}

/// The value given to `flag` on the command line (`--flag VALUE` or `--flag=VALUE`; the
/// last, as clap takes it), up to `--`, after which arguments are not flags. Arguments that
/// are not UTF-8 are read lossily: a flag's name always is.
fn flag_value(args: &[OsString], flag: &str) -> Option<String> {
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .take_while(|arg| arg != "--")
        .collect();
    let mut found = None;
    for (i, arg) in args.iter().enumerate() {
        if arg == flag {
            found = Some(args.get(i + 1).cloned().unwrap_or_default());
        } else if let Some(value) = arg
            .strip_prefix(flag)
            .and_then(|rest| rest.strip_prefix('='))
        {
            found = Some(value.to_owned());
        }
    }
    found
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

/// The log format a refused command line asked for: its `--log-format`, else its variable,
/// read apart from the rest, which may hold the error.
fn log_format(args: &[OsString]) -> Option<LogFormat> {
    let value = flag_value(args, "--log-format").or_else(|| {
        let variable = variable_of(&command(), "log-format")?;
        std::env::var(variable).ok()
    })?;
    LogFormat::from_str(value.trim(), true).ok()
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

    #[test]
    fn a_flag_value_is_read_as_clap_reads_it() {
        use std::os::unix::ffi::OsStringExt as _;
        let args = |list: &[&str]| -> Vec<OsString> {
            std::iter::once("armonik-wasm")
                .chain(list.iter().copied())
                .map(OsString::from)
                .collect()
        };
        let value = |list: &[&str]| flag_value(&args(list), "--log-format");
        assert_eq!(
            value(&["serve", "--log-format", "json"]).as_deref(),
            Some("json")
        );
        assert_eq!(
            value(&["--log-format=clef", "serve"]).as_deref(),
            Some("clef")
        );
        // The last one given; nothing after `--`; not a longer flag that starts alike.
        assert_eq!(
            value(&["--log-format=text", "serve", "--log-format", "json"]).as_deref(),
            Some("json")
        );
        assert_eq!(
            value(&["run", "x.wasm", "--", "--log-format", "json"]),
            None
        );
        assert_eq!(value(&["--log-formats=json"]), None);
        assert_eq!(value(&["--log-format"]).as_deref(), Some(""));
        // An argument that is not UTF-8 still shows the flag it sets.
        let mut raw = args(&["serve"]);
        raw.push(OsString::from_vec(b"--log-format=\xff".to_vec()));
        assert!(flag_value(&raw, "--log-format").is_some());
    }
}
