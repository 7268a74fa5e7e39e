//! Timestamps as Vexil writes them: RFC 3339, UTC, whole seconds (`2025-12-04T10:30:00Z`).
//!
//! One fixed format means timestamps sort as text, which is how the stores filter audit records by time.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// Now, formatted.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// Formats a moment in Vexil's timestamp format.
pub fn format(moment: OffsetDateTime) -> String {
    moment.to_offset(UtcOffset::UTC).replace_nanosecond(0).unwrap_or(moment).format(&Rfc3339).unwrap_or_default()
}

/// Reads a time filter: an RFC 3339 timestamp, a date (`2025-12-04`), or an age such as `30m`, `12h`, `7d` (that long ago).
pub fn parse_moment(input: &str) -> Result<String, String> {
    let input = input.trim();
    if let Ok(moment) = OffsetDateTime::parse(input, &Rfc3339) {
        return Ok(format(moment));
    }
    if let Ok(date) = time::Date::parse(input, time::macros::format_description!("[year]-[month]-[day]")) {
        return Ok(format(date.midnight().assume_utc()));
    }
    let (number, unit) = input.split_at(input.find(|c: char| !c.is_ascii_digit()).unwrap_or(input.len()));
    let amount: i64 = number.parse().map_err(|_| explain(input))?;
    let unit_seconds: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(explain(input)),
    };
    amount
        .checked_mul(unit_seconds)
        .and_then(|seconds| OffsetDateTime::now_utc().checked_sub(Duration::seconds(seconds)))
        .filter(|moment| moment.year() >= 1)
        .map(format)
        .ok_or_else(|| {
            format!(
                "time `{}` is further back than the calendar goes; use an age of at most a few thousand years",
                vexil_core::name::printable(input)
            )
        })
}

fn explain(input: &str) -> String {
    format!(
        "time `{}` is not understood; use RFC 3339 (2025-12-04T10:30:00Z), a date (2025-12-04) or an age (30m, 12h, 7d)",
        vexil_core::name::printable(input)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_normalised_to_utc_seconds() {
        assert_eq!(parse_moment("2025-12-04T11:30:00.250+01:00").unwrap(), "2025-12-04T10:30:00Z");
        assert_eq!(parse_moment("2025-12-04").unwrap(), "2025-12-04T00:00:00Z");
        assert!(parse_moment("7d").unwrap() < now());
        assert!(parse_moment("yesterday").is_err());
        // Ages too large for the calendar (or for the arithmetic) are refused, not a panic.
        for input in ["99999999999999999d", "9223372036854775807s", "999999999w", "5000000000d"] {
            assert!(parse_moment(input).unwrap_err().contains("further back"), "{input}");
        }
    }
}
