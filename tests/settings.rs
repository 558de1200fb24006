//! The settings an operator gives a host, most often by environment variable (ArmoniK's
//! `ComputePlane__*` keys, this host's `ArmonikWasm__*`): the spellings taken, the values
//! refused with the flag and the variable named, empty variables, and settings taken but
//! without effect.

mod common;

use common::{armonik_wasm_command, assert_no_panic, guest, path};

/// A component that is not there: a command given it (`run`, or `--component` of `serve` and
/// `dev`) says [`AFTER_PARSING`] once it has read its settings and goes to load it.
const MISSING: &str = "/nonexistent-component.wasm";

/// What a command given [`MISSING`] says: seeing it means that parsing went through.
const AFTER_PARSING: &str = "cannot read the component /nonexistent-component.wasm";

/// `armonik-wasm <args>` with `envs` added: how it exited, and its standard error.
fn with_env(args: &[&str], envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let output = armonik_wasm_command(args)
        .envs(envs.iter().copied())
        .output()
        .expect("armonik-wasm runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status, stderr)
}

#[test]
fn on_off_variables_take_the_usual_spellings_and_refuse_the_rest() {
    let echo = guest("echo");
    let inspect =
        |variable: &str, value: &str| with_env(&["inspect", path(&echo)], &[(variable, value)]);
    for (variable, flag) in [
        ("ArmonikWasm__NoPooling", "--no-pooling"),
        ("ArmonikWasm__NoInstantiateAhead", "--no-instantiate-ahead"),
    ] {
        // What operators write: .NET's `True`, shell's `1`, and their negations.
        for value in [
            "true", "True", "TRUE", "1", "yes", "on", "false", "False", "0", "no", "off",
        ] {
            let (status, stderr) = inspect(variable, value);
            assert!(status.success(), "{variable}={value}: {status}: {stderr}");
        }
        for value in ["maybe", "2", "enabled"] {
            let (status, stderr) = inspect(variable, value);
            assert_eq!(status.code(), Some(2), "{variable}={value}: {stderr}");
            assert_no_panic(&stderr);
            assert!(
                stderr.contains(&format!("invalid value '{value}' for '{flag}'")),
                "{variable}={value}: {stderr}"
            );
        }
    }
}

/// A command's arguments, its environment, and what its error must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Each case stops its command as the command line is read (exit code 2), without a panic,
/// with its text in the error.
fn assert_refused_while_reading(cases: &[Case]) {
    for (args, envs, expected) in cases {
        let (status, stderr) = with_env(args, envs);
        assert_eq!(status.code(), Some(2), "{args:?} {envs:?}: {stderr}");
        assert_no_panic(&stderr);
        assert!(stderr.contains(expected), "{args:?} {envs:?}: {stderr}");
    }
}

/// Settings out of their range stop the command at once with the flag named, never a worker
/// that looks healthy and refuses every task (0 tasks at once), a panic on overflow (a pool
/// of 4,294,967,295 tasks), a silent fall-back (a memory above wasm32's 4 GiB) or a default
/// time budget of nothing.
#[test]
fn settings_out_of_range_are_refused_with_the_flag_named() {
    let echo = guest("echo");
    let echo = path(&echo);
    let cases: [Case; 11] = [
        (
            &["inspect", echo, "--memory-limit-mib", "0"],
            &[],
            "invalid value '0' for '--memory-limit-mib",
        ),
        (
            &["inspect", echo],
            &[("ArmonikWasm__MemoryLimitMiB", "4097")],
            "invalid value '4097' for '--memory-limit-mib",
        ),
        (
            &[
                "inspect",
                echo,
                "--keep-resident-mib",
                "18446744073709551615",
            ],
            &[],
            "for '--keep-resident-mib",
        ),
        (
            &["serve", "--max-concurrent-tasks", "0"],
            &[],
            "invalid value '0' for '--max-concurrent-tasks",
        ),
        (
            &["serve"],
            &[("ArmonikWasm__MaxConcurrentTasks", "4294967295")],
            "invalid value '4294967295' for '--max-concurrent-tasks",
        ),
        (
            &["run", echo, "--parallelism", "0"],
            &[],
            "invalid value '0' for '--parallelism",
        ),
        (
            &["dev", "--parallelism", "100000"],
            &[],
            "invalid value '100000' for '--parallelism",
        ),
        (
            &["run", echo, "--default-max-duration", "0"],
            &[],
            "invalid value '0' for '--default-max-duration <DEFAULT_MAX_DURATION>': 0 is no time: this setting takes more than 0 seconds",
        ),
        (
            &["run", echo],
            &[("ArmonikWasm__DefaultMaxDurationSeconds", "-1")],
            "invalid value '-1' for '--default-max-duration <DEFAULT_MAX_DURATION>': -1 is negative",
        ),
        (
            &["serve"],
            &[("ArmonikWasm__ShutdownGraceSeconds", "NaN")],
            "invalid value 'NaN' for '--shutdown-grace <SHUTDOWN_GRACE>': `NaN` is not a number of seconds",
        ),
        (
            &["serve", "--shutdown-grace", "15s"],
            &[],
            "invalid value '15s' for '--shutdown-grace <SHUTDOWN_GRACE>': `15s` is not a number of seconds",
        ),
    ];
    assert_refused_while_reading(&cases);
}

/// `--isolation` (`ArmonikWasm__Isolation`) takes any case, as the other named settings do,
/// and .NET's spelling `InProcess`.
#[test]
fn isolation_takes_any_case() {
    let serve = |isolation: &str| {
        with_env(
            &["serve", "--component", MISSING],
            &[("ArmonikWasm__Isolation", isolation)],
        )
        .1
    };
    for isolation in [
        "in-process",
        "InProcess",
        "inprocess",
        "IN-PROCESS",
        "process",
        "Process",
    ] {
        let stderr = serve(isolation);
        assert!(stderr.contains(AFTER_PARSING), "{isolation}: {stderr}");
    }
    let stderr = serve("proc");
    assert!(
        stderr.contains("invalid value 'proc' for '--isolation"),
        "{stderr}"
    );
}

/// Every environment variable `armonik-wasm <command>` reads, from its help.
fn variables(command: &str) -> Vec<String> {
    let output = armonik_wasm_command(&[command, "--help"])
        .output()
        .expect("armonik-wasm runs");
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let variables: Vec<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split('=').next())
        .map(str::to_owned)
        .collect();
    assert!(variables.len() > 5, "{help}");
    variables
}

/// An empty variable counts as unset: Helm templates and compose files write `KEY=` for a
/// value left out, which must not stop a worker ("a value is required") or stand for an
/// empty path. Every variable of every command that runs tasks, all empty at once.
#[test]
fn empty_variables_count_as_unset() {
    let echo = guest("echo");
    let echo = path(&echo);
    for (command, args) in [
        ("serve", vec!["serve", "--component", MISSING]),
        ("run", vec!["run", MISSING]),
        ("dev", vec!["dev", "--component", MISSING]),
    ] {
        let variables = variables(command);
        let empty: Vec<(&str, &str)> = variables.iter().map(|v| (v.as_str(), "")).collect();
        let (status, stderr) = with_env(&args, &empty);
        assert!(!status.success());
        assert!(stderr.contains(AFTER_PARSING), "{command}: {stderr}");
    }
    // And a command that succeeds does, with the defaults.
    let variables = variables("inspect");
    let empty: Vec<(&str, &str)> = variables.iter().map(|v| (v.as_str(), "")).collect();
    let (status, stderr) = with_env(&["inspect", echo], &empty);
    assert!(status.success(), "{stderr}");
}

/// A value refused at parse time names the variable it came from (the flag clap names is
/// one the operator never wrote), and only then: a flag on the command line wins over its
/// variable, so the error is the flag's.
#[test]
fn a_value_refused_from_a_variable_names_the_variable() {
    let echo = guest("echo");
    let echo = path(&echo);
    let cases: [Case; 5] = [
        (
            &["inspect", echo],
            &[("ArmonikWasm__MemoryLimitMiB", "0")],
            "tip: the value comes from the environment variable ArmonikWasm__MemoryLimitMiB",
        ),
        (
            &["inspect", echo],
            &[("ArmonikWasm__NoPooling", "maybe")],
            "tip: the value comes from the environment variable ArmonikWasm__NoPooling",
        ),
        (
            &["run", echo],
            &[("ArmonikWasm__CacheMaxEntries", "many")],
            "tip: the value comes from the environment variable ArmonikWasm__CacheMaxEntries",
        ),
        (
            &["serve"],
            &[("ComputePlane__WorkerChannel__SocketType", "pipe")],
            "tip: the value comes from the environment variable ComputePlane__WorkerChannel__SocketType",
        ),
        (
            &["serve"],
            &[("ArmonikWasm__MetricsAddress", "9090")],
            "tip: the value comes from the environment variable ArmonikWasm__MetricsAddress",
        ),
    ];
    assert_refused_while_reading(&cases);
    // The socket type's error lists what it takes.
    let (_, stderr) = with_env(
        &["serve"],
        &[("ComputePlane__AgentChannel__SocketType", "pipe")],
    );
    assert!(
        stderr.contains("invalid value 'pipe' for '--agent-socket-type")
            && stderr.contains("[possible values: UnixDomainSocket, Tcp]"),
        "{stderr}"
    );
    // The flag given too, in either spelling: the error is the flag's, no tip.
    for args in [
        &["inspect", echo, "--memory-limit-mib", "0"][..],
        &["inspect", echo, "--memory-limit-mib=0"][..],
    ] {
        let (status, stderr) = with_env(args, &[("ArmonikWasm__MemoryLimitMiB", "0")]);
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("for '--memory-limit-mib"), "{stderr}");
        assert!(
            !stderr.contains("tip: the value comes from"),
            "{args:?}: {stderr}"
        );
    }
}

/// A host that logs JSON or CLEF reports settings it refuses as one record of that format,
/// at the error level, so its log collector keeps the message whole: with the format given
/// by variable, or by flag before or after the refused value, and whatever `RUST_LOG` keeps
/// (empty, or a filter that leaves the host's errors out). `--help` stays text.
#[test]
fn refused_settings_are_one_record_in_the_log_format() {
    let echo = guest("echo");
    let echo = path(&echo);
    // CLEF gives an error its `@x` (exception) property.
    for (format, level_key, level, error_key) in [
        ("json", "level", "ERROR", "error"),
        ("clef", "@l", "Error", "@x"),
    ] {
        let cases: [Case; 6] = [
            (
                &["inspect", echo],
                &[
                    ("ArmonikWasm__LogFormat", format),
                    ("ArmonikWasm__MemoryLimitMiB", "0"),
                ],
                "error: invalid value '0'",
            ),
            (
                &[
                    "--log-format",
                    format,
                    "serve",
                    "--worker-socket-type",
                    "pipe",
                ],
                &[],
                "error: invalid value 'pipe'",
            ),
            (
                &[
                    "serve",
                    "--worker-socket-type",
                    "pipe",
                    &format!("--log-format={format}"),
                ],
                &[],
                "error: invalid value 'pipe'",
            ),
            (
                &["inspect", "--bogus", echo, "--log-format", format],
                &[("RUST_LOG", "")],
                "error: unexpected argument '--bogus'",
            ),
            (
                &[
                    "inspect",
                    echo,
                    "--memory-limit-mib",
                    "0",
                    "--log-format",
                    format,
                ],
                &[("RUST_LOG", "armonik_wasm::sandbox=debug")],
                "error: invalid value '0'",
            ),
            // Refused after parsing: the command's failure, also kept at any RUST_LOG.
            (
                &["inspect", MISSING, "--log-format", format],
                &[("RUST_LOG", "armonik_wasm::sandbox=debug")],
                "cannot read /nonexistent-component.wasm",
            ),
        ];
        for (args, envs, expected) in cases {
            let (status, stderr) = with_env(args, envs);
            assert!(!status.success(), "{args:?}: {stderr}");
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{args:?} {envs:?}: {stderr}");
            let record: serde_json::Value =
                serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {stderr}"));
            assert_eq!(record[level_key], level, "{record}");
            let error = record[error_key].as_str().unwrap_or_default();
            assert!(error.starts_with(expected), "{args:?}: {record}");
        }
    }
    let help = armonik_wasm_command(&["--help"])
        .env("ArmonikWasm__LogFormat", "json")
        .output()
        .expect("armonik-wasm runs");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: armonik-wasm"));
}

/// An empty `RUST_LOG` counts as unset, as every variable does: the default filter applies
/// (an empty filter would drop every record, the warnings of a failed task included). A
/// directive that cannot be read is left out with a warning, the others kept.
#[test]
fn rust_log_empty_or_partly_unreadable_keeps_what_it_can() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fail = guest("fail");
    let args = [
        "run",
        path(&fail),
        "--payload-text",
        "fails on purpose",
        "--outputs",
        path(dir.path()),
    ];
    let (status, stderr) = with_env(&args, &[("RUST_LOG", "")]);
    assert!(!status.success());
    assert!(stderr.contains("fails on purpose"), "{stderr}");
    // `error` kept: the failed task's warnings are not written, only the one warning that
    // says which directive was left out.
    let (status, stderr) = with_env(&args, &[("RUST_LOG", "error,armonik_wasm=notalevel")]);
    assert!(!status.success());
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(" WARN "))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("RUST_LOG: a directive that cannot be read was left out")
            && warnings[0].contains("`armonik_wasm=notalevel`"),
        "{stderr}"
    );
}

/// A variable's name matches in any case, as .NET configuration keys do (ArmoniK's agent,
/// beside the worker, reads `ComputePlane__*` that way); the exact spelling wins.
#[test]
fn variable_names_match_in_any_case() {
    let echo = guest("echo");
    let echo = path(&echo);
    let (status, stderr) = with_env(&["inspect", echo], &[("ARMONIKWASM__MEMORYLIMITMIB", "0")]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "tip: the value comes from the environment variable ARMONIKWASM__MEMORYLIMITMIB"
        ),
        "{stderr}"
    );
    let (status, stderr) = with_env(
        &["inspect", echo],
        &[
            ("ArmonikWasm__MemoryLimitMiB", "64"),
            ("armonikwasm__memorylimitmib", "0"),
        ],
    );
    assert!(status.success(), "{stderr}");
    let (_, stderr) = with_env(
        &["serve", "--component", MISSING],
        &[("computeplane__workerchannel__sockettype", "pipe")],
    );
    assert!(
        stderr.contains("invalid value 'pipe' for '--worker-socket-type"),
        "{stderr}"
    );
    // An empty spelling does not hide another's value, whichever sorts first.
    for empty in ["ArmonikWasm__MemoryLimitMiB", "ARMONIKWASM__MEMORYLIMITMIB"] {
        let (status, stderr) = with_env(
            &["inspect", echo],
            &[(empty, ""), ("armonikwasm__memorylimitmib", "abc")],
        );
        assert_eq!(status.code(), Some(2), "{empty}: {stderr}");
        assert!(stderr.contains("armonikwasm__memorylimitmib"), "{stderr}");
    }
}

/// Values other than paths and addresses may carry surrounding whitespace, as .NET reads
/// them (a YAML block scalar ends with a newline): numbers, on/off values, durations, named
/// values, the metrics address.
#[test]
fn values_read_as_dotnet_reads_them_with_surrounding_whitespace() {
    let (status, stderr) = with_env(
        &["serve", "--component", MISSING],
        &[
            ("ArmonikWasm__MemoryLimitMiB", " 512\n"),
            ("ArmonikWasm__NoPooling", " true "),
            ("ArmonikWasm__DefaultMaxDurationSeconds", "60\n"),
            ("ArmonikWasm__MaxConcurrentTasks", "\t2"),
            ("ArmonikWasm__Isolation", " Process "),
            ("ArmonikWasm__MetricsAddress", " 127.0.0.1:0\n"),
            ("ComputePlane__AgentChannel__SocketType", " Tcp\n"),
            ("ComputePlane__AgentChannel__Address", "http://localhost:1"),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains(AFTER_PARSING), "{stderr}");
    // The format a refusal is written in reads the same way as the setting itself.
    let (status, stderr) = with_env(
        &["inspect", MISSING],
        &[
            ("ArmonikWasm__LogFormat", " json\n"),
            ("ArmonikWasm__CacheMaxMiB", " 0 "),
        ],
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    let record: serde_json::Value =
        serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert!(
        record["error"]
            .as_str()
            .unwrap_or_default()
            .contains("0 would keep nothing"),
        "{record}"
    );
}

/// Settings refused once they are combined or their files opened name the flag and the
/// variable too.
#[test]
fn settings_refused_after_reading_name_their_flag_and_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing_folder = dir.path().join("missing").join("worker.sock");
    let echo = guest("echo");
    for (args, named) in [
        (
            vec!["serve", "--component", MISSING],
            "the default component (--component, ArmonikWasm__Component)",
        ),
        (
            vec![
                "serve",
                "--component",
                path(&echo),
                "--worker-address",
                path(&missing_folder),
            ],
            "the worker channel (--worker-address, ComputePlane__WorkerChannel__Address)",
        ),
    ] {
        let (status, stderr) = with_env(&args, &[]);
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    // A cache folder that cannot be used: the command goes on without it, and says which.
    let (status, stderr) = with_env(&["inspect", path(&echo), "--cache-dir", "/proc/nope"], &[]);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("(--cache-dir, ArmonikWasm__CacheDir) cannot be used"),
        "{stderr}"
    );
}

/// Numbers given as separate arguments reach their setting's check, negative ones too
/// (clap would take `-5` for a flag), and counts have their ranges.
#[test]
fn negative_numbers_get_their_setting_s_reason() {
    let echo = guest("echo");
    let echo = path(&echo);
    let cases: [Case; 4] = [
        (
            &["run", echo, "--default-max-duration", "-5"],
            &[],
            "invalid value '-5' for '--default-max-duration <DEFAULT_MAX_DURATION>': -5 is negative",
        ),
        (
            &["serve", "--shutdown-grace", "-1"],
            &[],
            "invalid value '-1' for '--shutdown-grace <SHUTDOWN_GRACE>': -1 is negative",
        ),
        (
            &["run", echo, "--max-retries", "-3"],
            &[],
            "invalid value '-3' for '--max-retries <MAX_RETRIES>': -3 is not in 0..=2147483647",
        ),
        (
            &["submit", echo, "--max-retries", "0"],
            &[],
            "invalid value '0' for '--max-retries <MAX_RETRIES>': 0 is not in 1..=2147483647",
        ),
    ];
    assert_refused_while_reading(&cases);
    // Mutual TLS needs both files: refused as the command line is read, naming the flags.
    let (status, stderr) = with_env(&["submit", echo, "--cert-pem", "/x.pem"], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--key-pem"), "{stderr}");
}

/// A URL as a unix socket path is an operator who left the socket type at its default: the
/// error says so and names the settings, instead of "No such file or directory". gRPC's own
/// `unix:PATH` is a path.
#[test]
fn a_url_for_a_unix_socket_asks_for_the_tcp_socket_type() {
    for (args, variables) in [
        (
            &["serve", "--worker-address", "http://0.0.0.0:10667"][..],
            [
                "ComputePlane__WorkerChannel__Address",
                "ComputePlane__WorkerChannel__SocketType",
            ],
        ),
        (
            &["serve", "--agent-address", "HTTPS://localhost:10666"][..],
            [
                "ComputePlane__AgentChannel__Address",
                "ComputePlane__AgentChannel__SocketType",
            ],
        ),
    ] {
        let (status, stderr) = with_env(args, &[]);
        assert!(!status.success());
        assert!(
            stderr
                .contains("is a URL, not a unix socket path (for TCP, set the socket type to Tcp)")
                && variables.iter().all(|variable| stderr.contains(variable)),
            "{stderr}"
        );
    }
    // Taken as the path it names: the command goes on to load its component.
    let (_, stderr) = with_env(
        &[
            "serve",
            "--agent-address",
            "unix:///tmp/agent.sock",
            "--component",
            MISSING,
        ],
        &[],
    );
    assert!(stderr.contains(AFTER_PARSING), "{stderr}");
}

/// A component whose memory starts above the memory limit is refused as it is loaded, with
/// the setting named, whichever the allocator: without pooling it used to pass `inspect` and
/// then fail every task as a trap, retried.
#[test]
fn a_component_above_the_memory_limit_is_refused_with_either_allocator() {
    let echo = guest("echo");
    let echo = path(&echo);
    let named = "needs more linear memory than this host lets a task have (--memory-limit-mib, ArmonikWasm__MemoryLimitMiB)";
    for pooling in [&[][..], &["--no-pooling"][..]] {
        let mut args = vec!["inspect", echo, "--no-cache", "--memory-limit-mib", "1"];
        args.extend_from_slice(pooling);
        let (status, stderr) = with_env(&args, &[]);
        assert!(!status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    // A compiled artifact the operator names is held to the same limit.
    let dir = tempfile::tempdir().expect("temp dir");
    let compiled = dir.path().join("echo.cwasm");
    let (status, stderr) = with_env(&["compile", echo, "-o", path(&compiled)], &[]);
    assert!(status.success(), "{stderr}");
    let (status, stderr) = with_env(
        &["inspect", path(&compiled), "--memory-limit-mib", "1"],
        &[],
    );
    assert!(!status.success());
    assert!(stderr.contains(named), "{stderr}");
    let output = armonik_wasm_command(&[
        "run",
        echo,
        "--no-pooling",
        "--memory-limit-mib",
        "1",
        "--payload-text",
        "x",
        "--outputs",
        path(dir.path()),
    ])
    .output()
    .expect("armonik-wasm runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success());
    assert!(all.contains(named), "{all}");
    assert!(!all.contains("retried"), "{all}");
}

/// A cache limit of 0 would evict each entry as it is written: refused, pointing at
/// `--no-cache`, which its variable also sets.
#[test]
fn the_cache_is_turned_off_by_saying_so_not_by_a_zero_limit() {
    let echo = guest("echo");
    let echo = path(&echo);
    for (args, envs) in [
        (&["inspect", echo, "--cache-max-mib", "0"][..], &[][..]),
        (
            &["inspect", echo][..],
            &[("ArmonikWasm__CacheMaxEntries", "0")][..],
        ),
    ] {
        let (status, stderr) = with_env(args, envs);
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("0 would keep nothing: to compile without the cache, use --no-cache"),
            "{stderr}"
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    for value in ["true", "1", "False"] {
        let (status, stderr) = with_env(
            &[
                "run",
                echo,
                "--payload-text",
                "x",
                "--outputs",
                path(&dir.path().join(value)),
                "--cache-dir",
                path(&cache),
            ],
            &[("ArmonikWasm__NoCache", value)],
        );
        assert!(status.success(), "{stderr}");
        // Off: the cache folder is never made. On (False): made, with the one entry.
        let entries = std::fs::read_dir(&cache).map(Iterator::count).unwrap_or(0);
        assert_eq!(entries > 0, value == "False", "{value}");
    }
}

/// Memory kept resident is a setting of the pooling allocator, up to the memory limit: set
/// where it has no effect, it is taken and the host says so; left at its default, nothing.
#[test]
fn memory_kept_resident_without_effect_is_said() {
    let echo = guest("echo");
    let echo = path(&echo);
    let no_effect = "has no effect with --no-pooling";
    let above = "is above --memory-limit-mib";
    for (args, expected) in [
        (
            &["inspect", echo, "--no-pooling", "--keep-resident-mib", "8"][..],
            Some(no_effect),
        ),
        (
            &[
                "inspect",
                echo,
                "--memory-limit-mib",
                "64",
                "--keep-resident-mib",
                "128",
            ][..],
            Some(above),
        ),
        (&["inspect", echo, "--no-pooling"][..], None),
        (&["inspect", echo, "--memory-limit-mib", "64"][..], None),
        (&["inspect", echo, "--keep-resident-mib", "64"][..], None),
    ] {
        let (status, stderr) = with_env(args, &[]);
        assert!(status.success(), "{args:?}: {stderr}");
        for warning in [no_effect, above] {
            assert_eq!(
                stderr.contains(warning),
                expected == Some(warning),
                "{args:?}: {stderr}"
            );
        }
    }
}
