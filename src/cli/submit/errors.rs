//! Client errors in one line, for the messages of `submit`.

use std::time::Duration;

use armonik::client::RequestError;

/// A `RequestError` in one line: the gRPC status's message and what its code means.
pub(super) fn request_error(error: &RequestError) -> String {
    match error {
        RequestError::Grpc { source, .. } => {
            let code = source.code();
            let message = source.message();
            match std::error::Error::source(source.as_ref()) {
                Some(cause) if message.is_empty() => format!("{code}: {}", causes(cause)),
                Some(cause) => format!("{message}: {}", causes(cause)),
                None if message.is_empty() => code.to_string(),
                None => format!("{message} ({})", code.to_string().to_lowercase()),
            }
        }
        other => causes(other),
    }
}

/// An error and its causes in one line, without the source locations snafu adds (`[src/...]`).
pub(super) fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = strip_location(&cause.to_string());
        if !text.is_empty() && !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

/// The deepest cause of an error: for a failed connection, what the system said ("Connection
/// refused (os error 111)", "failed to lookup address information...").
pub(super) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(cause) = last.source() {
        last = cause;
    }
    strip_location(&last.to_string())
}

/// `message [src/file.rs:1:2]` → `message`.
fn strip_location(text: &str) -> String {
    match text.rfind(" [") {
        Some(at) if text.ends_with(']') => text[..at].to_owned(),
        _ => text.to_owned(),
    }
}

/// A duration as the flags take it (`10s`, `1.5s`).
pub(super) fn humantime(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_left_out_of_messages() {
        assert_eq!(
            strip_location("Could not connect [src/connect.rs:3:4]"),
            "Could not connect"
        );
        assert_eq!(strip_location("a [b] c"), "a [b] c");
    }
}
