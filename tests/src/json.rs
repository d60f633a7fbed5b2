//! The JSON lines of `vigil run`, read back.

use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use vigil::{clock::BootClock, event::Event, export::json::JsonRenderer};

/// The node name events are rendered with by [`render`].
pub const TEST_NODE: &str = "test-node";

/// `event` as the JSON exporter writes it, parsed.
#[track_caller]
pub fn render(event: &Event) -> Value {
    let mut line = Vec::new();
    JsonRenderer::new(TEST_NODE.into(), BootClock::now()).render(event, &mut line);
    assert_eq!(line.last(), Some(&b'\n'), "one line per event");
    assert_eq!(
        line.iter().filter(|&&b| b == b'\n').count(),
        1,
        "one line per event"
    );
    serde_json::from_slice(&line).expect("the rendered line is JSON")
}

/// A time field, which must be RFC 3339.
#[track_caller]
pub fn parse_time(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
}

/// Whether `at` is within `seconds` of now.
pub fn is_recent(at: OffsetDateTime, seconds: i64) -> bool {
    (OffsetDateTime::now_utc() - at).abs() < time::Duration::seconds(seconds)
}
