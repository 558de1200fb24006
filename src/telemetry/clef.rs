//! CLEF, the Compact Log Event Format that ArmoniK's workers write (Serilog's
//! `CompactJsonFormatter`) and its Fluent Bit and Seq stack read: one JSON object per line,
//! with `@t` (UTC time, ISO 8601), `@l` (Serilog's level name), `@mt` (the message template),
//! `@x` (the error, when the event has an `error` field), then properties.
//!
//! Properties are the event's fields and those of its spans (the task span gives `taskId` and
//! `sessionId`, named as ArmoniK.Core's log scopes name them), in camelCase, plus
//! `SourceContext` (the event's target, Serilog's name for a logger category). A guest's line
//! is the string value of the `line` property: JSON escaping keeps it inside its record.
//! Specification: <https://clef-json.org>.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The CLEF event formatter. Use it with `JsonFields` as the field formatter, so that span
/// fields are kept as JSON and come out typed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Clef;

impl<S, N> FormatEvent<S, N> for Clef
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut record = Map::new();
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        record.insert("@t".into(), Value::String(time));
        record.insert(
            "@l".into(),
            Value::String(level(event.metadata().level()).into()),
        );

        // Outer spans first, so that an inner span's or the event's own field wins.
        let mut properties = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    for (name, value) in fields {
                        properties.insert(camel_case(&name), value);
                    }
                }
            }
        }
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        for (name, value) in visitor.fields {
            match name {
                "message" => {
                    let template = value.as_str().unwrap_or_default();
                    // `@mt` is a template: literal braces are doubled.
                    let template = template.replace('{', "{{").replace('}', "}}");
                    record.insert("@mt".into(), Value::String(template));
                }
                "error" => {
                    record.insert("@x".into(), value);
                }
                _ => {
                    properties.insert(camel_case(name), value);
                }
            }
        }
        properties.insert(
            "SourceContext".into(),
            Value::String(event.metadata().target().into()),
        );
        record.extend(properties);
        let line = serde_json::to_string(&record).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Serilog's level names.
fn level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "Verbose",
        Level::DEBUG => "Debug",
        Level::INFO => "Information",
        Level::WARN => "Warning",
        Level::ERROR => "Error",
    }
}

/// `task_id` → `taskId`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// An event's fields as typed JSON values.
#[derive(Default)]
struct Fields {
    fields: Vec<(&'static str, Value)>,
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.fields.push((field.name(), value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), value.into()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), value.into()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), value.into()));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.push((field.name(), value.into()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.fields.push((field.name(), value.to_string().into()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.fields
            .push((field.name(), format!("{value:?}").into()));
    }
}

#[cfg(test)]
mod tests {
    use super::camel_case;

    #[test]
    fn names_become_camel_case() {
        assert_eq!(camel_case("task_id"), "taskId");
        assert_eq!(camel_case("memory_peak_bytes"), "memoryPeakBytes");
        assert_eq!(camel_case("line"), "line");
        assert_eq!(camel_case("_private"), "private");
    }
}
