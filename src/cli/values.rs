//! How each kind of setting value is read (clap value parsers): counts of tasks, sizes of
//! memory, limits of the cache, durations, retries. A value out of its range is refused as
//! the command line is read, with a reason that says what the setting takes.

use std::time::Duration;

use std::ffi::OsStr;

use clap::builder::{PossibleValue, RangedI64ValueParser, RangedU64ValueParser, TypedValueParser};

use crate::worker::task_runner::MAX_TASK_DURATION;

/// `P`, given the value without its surrounding whitespace, as .NET's configuration binder
/// reads numbers, booleans and enums, and so ArmoniK's polling agent the keys beside this
/// worker's: a YAML block scalar (`value: |`) ends with a newline. For every setting but
/// paths and addresses, which are taken as written.
#[derive(Debug, Clone)]
pub(crate) struct Trimmed<P>(pub(crate) P);

impl<P: TypedValueParser> TypedValueParser for Trimmed<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        match value.to_str() {
            Some(text) => self.0.parse_ref(command, arg, OsStr::new(text.trim())),
            None => self.0.parse_ref(command, arg, value),
        }
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        self.0.possible_values()
    }
}

/// A named value of `E` (any case when the argument ignores case), trimmed.
pub(crate) fn named<E: clap::ValueEnum + Clone + Send + Sync + 'static>()
-> Trimmed<clap::builder::EnumValueParser<E>> {
    Trimmed(clap::builder::EnumValueParser::new())
}

/// An on/off value (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case), trimmed.
pub(crate) fn on_off() -> Trimmed<clap::builder::BoolishValueParser> {
    Trimmed(clap::builder::BoolishValueParser::new())
}

/// An IP address and port (`0.0.0.0:9090`), trimmed.
pub(crate) fn socket_address() -> Trimmed<impl TypedValueParser<Value = std::net::SocketAddr>> {
    Trimmed(|value: &str| value.parse::<std::net::SocketAddr>())
}

/// Tasks at once a host takes at most (`--max-concurrent-tasks`, `--parallelism`): far more
/// than its cores can run, and small enough that the pool's counts, a multiple of it, cannot
/// overflow.
pub(crate) const MAX_TASKS_AT_ONCE: u32 = 4096;

/// A count of tasks at once, from 1 to [`MAX_TASKS_AT_ONCE`], as `T`.
pub(crate) fn tasks_at_once<T: TryFrom<u64> + Clone + Send + Sync + 'static>()
-> Trimmed<RangedU64ValueParser<T>> {
    Trimmed(RangedU64ValueParser::new().range(1..=u64::from(MAX_TASKS_AT_ONCE)))
}

/// A size in MiB of linear memory, from `min` to 4,096 (what wasm32 addresses).
pub(crate) fn mib(min: u64) -> Trimmed<RangedU64ValueParser<usize>> {
    Trimmed(RangedU64ValueParser::new().range(min..=4096))
}

/// Retries of a task, from `min`: ArmoniK's `max_retries`, an `i32` in its task options.
pub(crate) fn retries(min: i64) -> Trimmed<RangedI64ValueParser<i32>> {
    Trimmed(RangedI64ValueParser::new().range(min..=i64::from(i32::MAX)))
}

/// A limit of the on-disk cache: a whole number of at least 1. Zero would evict every entry
/// as it is written, a cache turned off without saying so.
pub(crate) fn cache_limit<T: std::str::FromStr + PartialEq + From<u8>>(
    value: &str,
) -> Result<T, String> {
    let limit: T = value.parse().map_err(|_| {
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            format!("{value} is too large")
        } else {
            format!("`{value}` is not a whole number")
        }
    })?;
    if limit == T::from(0) {
        return Err(
            "0 would keep nothing: to compile without the cache, use --no-cache \
             (ArmonikWasm__NoCache=true)"
                .to_owned(),
        );
    }
    Ok(limit)
}

/// A duration in seconds (`3600`, `0.5`, `1e3`), 0 or more. Longer than a year (`inf`
/// included) is a year, as `serve` takes a task's own `max_duration`: ArmoniK writes 10,000
/// years for "no limit", which no clock can add to now.
pub(crate) fn seconds_from_zero(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value
        .parse()
        .ok()
        .filter(|seconds: &f64| !seconds.is_nan())
        .ok_or_else(|| format!("`{value}` is not a number of seconds"))?;
    if seconds < 0.0 {
        return Err(format!(
            "{value} is negative: a duration is 0 seconds or more"
        ));
    }
    Ok(Duration::try_from_secs_f64(seconds)
        .unwrap_or(MAX_TASK_DURATION)
        .min(MAX_TASK_DURATION))
}

/// A duration in seconds, as [`seconds_from_zero`], of at least a nanosecond.
pub(crate) fn seconds_above_zero(value: &str) -> Result<Duration, String> {
    above_zero(value, seconds_from_zero(value)?)
}

/// A connection timeout: plain seconds, as [`seconds_above_zero`], or a duration with a unit
/// as armonik-transport reads `GrpcClient__ConnectTimeout` (humantime's syntax: `10s`,
/// `500ms`, `1m`). Zero would fail every connection; longer than a year is a year.
#[cfg(feature = "control-plane")]
pub(crate) fn connect_timeout(value: &str) -> Result<Duration, String> {
    if value.parse::<f64>().is_ok() {
        return seconds_above_zero(value);
    }
    let duration = humantime::parse_duration(value)
        .map_err(|error| format!("`{value}` is not a duration (3, 10s, 500ms, 1m): {error}"))?;
    above_zero(value, duration.min(MAX_TASK_DURATION))
}

fn above_zero(value: &str, duration: Duration) -> Result<Duration, String> {
    if duration.is_zero() {
        return Err(format!(
            "{value} is no time: this setting takes more than 0 seconds (at least 1 ns)"
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_say_what_they_take() {
        assert_eq!(seconds_from_zero("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(seconds_from_zero("0"), Ok(Duration::ZERO));
        for forever in ["inf", "1e19", "1e300", "18446744073709551616"] {
            assert_eq!(
                seconds_from_zero(forever),
                Ok(MAX_TASK_DURATION),
                "{forever}"
            );
        }
        for (value, reason) in [
            ("-5", "-5 is negative"),
            ("-inf", "-inf is negative"),
            ("nan", "`nan` is not a number of seconds"),
            ("10s", "`10s` is not a number of seconds"),
            (" 5", "` 5` is not a number of seconds"),
        ] {
            let error = seconds_from_zero(value).expect_err(value);
            assert!(error.starts_with(reason), "{value}: {error}");
        }
        for nothing in ["0", "1e-10", "0.0"] {
            let error = seconds_above_zero(nothing).expect_err(nothing);
            assert!(error.contains("takes more than 0 seconds"), "{error}");
        }
        assert_eq!(seconds_above_zero("1e-9"), Ok(Duration::from_nanos(1)));
    }

    #[cfg(feature = "control-plane")]
    #[test]
    fn a_connect_timeout_takes_seconds_or_units() {
        assert_eq!(connect_timeout("3"), Ok(Duration::from_secs(3)));
        assert_eq!(connect_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(connect_timeout("1000years"), Ok(MAX_TASK_DURATION));
        assert_eq!(connect_timeout("2e10"), Ok(MAX_TASK_DURATION));
        for refused in ["0", "0s", "-1", "abc", "nan"] {
            assert!(connect_timeout(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn cache_limits_say_what_is_wrong() {
        assert_eq!(cache_limit::<u64>("5"), Ok(5));
        let too_large = cache_limit::<u64>("99999999999999999999").expect_err("too large");
        assert_eq!(too_large, "99999999999999999999 is too large");
        let not_a_number = cache_limit::<u64>("5MiB").expect_err("not a number");
        assert_eq!(not_a_number, "`5MiB` is not a whole number");
        assert!(cache_limit::<usize>("0").is_err());
    }
}
