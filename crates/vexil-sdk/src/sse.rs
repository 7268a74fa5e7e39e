//! A small Server-Sent Events parser: bytes in, events out.
//!
//! It follows the parsing rules of the HTML standard's `text/event-stream` section that matter to a client
//! of Vexil's stream: lines end in `\n`, `\r\n` or `\r` (a `\r\n` split across two network chunks is one line end),
//! a blank line dispatches the event, `data` lines accumulate (joined with `\n`), `event` names it, `id` sets its
//! id, `retry` gives the reconnection delay, lines starting with `:` are comments, and a leading byte order mark
//! is skipped. It is written by hand rather than taken from a crate because the format is small and the SDK needs
//! to see `retry` and `id` exactly as the server sent them.

use std::time::Duration;

/// The longest line accepted, in bytes. A snapshot of a large environment is one `data` line, so this is generous;
/// past it the connection is considered broken rather than let memory grow without bound.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `id` field of this event, if it had one.
    pub id: Option<String>,
    /// The `event` field; `message` when absent, as the standard says.
    pub event: String,
    /// The `data` lines, joined with `\n`.
    pub data: String,
}

/// What the parser hands to the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SseItem {
    /// A complete event.
    Event(SseEvent),
    /// The server's reconnection advice.
    Retry(Duration),
}

/// The stream broke the format badly enough that reading on makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SseError {
    /// A line grew past [`MAX_LINE_BYTES`] without ending.
    #[error("the event stream sent a line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
}

/// Incremental parser state; feed it chunks as they arrive.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// The bytes of the line being read, not yet terminated.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to that line end.
    after_carriage_return: bool,
    /// Whether the byte order mark check has been done (it applies only to the very first bytes).
    started: bool,
    /// The fields of the event being assembled.
    event: Option<String>,
    id: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Parses `chunk`, appending every completed event (and `retry` advice) to `items`.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], items: &mut Vec<SseItem>) -> Result<(), SseError> {
        if !self.started {
            // The BOM can only be recognised once three bytes are there; a chunk that short is rare enough
            // to keep the check simple: wait for a longer buffer when the start is a BOM prefix.
            let mut pending = std::mem::take(&mut self.line);
            pending.extend_from_slice(chunk);
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if pending.len() < BOM.len() && BOM.starts_with(&pending) {
                self.line = pending;
                return Ok(());
            }
            self.started = true;
            let start = if pending.starts_with(BOM) { BOM.len() } else { 0 };
            return self.feed_started(&pending[start..], items);
        }
        if self.after_carriage_return {
            self.after_carriage_return = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        self.feed_started(chunk, items)
    }

    fn feed_started(&mut self, mut chunk: &[u8], items: &mut Vec<SseItem>) -> Result<(), SseError> {
        while let Some(position) = chunk.iter().position(|byte| *byte == b'\n' || *byte == b'\r') {
            let line_end = chunk[position];
            if self.line.is_empty() {
                self.process_line(&chunk[..position], items);
            } else {
                self.line.extend_from_slice(&chunk[..position]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, items);
            }
            chunk = &chunk[position + 1..];
            if line_end == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_carriage_return = true,
                }
            }
        }
        if self.line.len() + chunk.len() > MAX_LINE_BYTES {
            return Err(SseError::LineTooLong);
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], items: &mut Vec<SseItem>) {
        if line.is_empty() {
            self.dispatch(items);
            return;
        }
        if line.starts_with(b":") {
            return;
        }
        let (field, value) = match line.iter().position(|byte| *byte == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = Some(value.into_owned()),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            // The standard ignores ids containing NUL, so a hostile id cannot truncate a header.
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            b"retry" if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) => {
                if let Ok(milliseconds) = value.parse::<u64>() {
                    items.push(SseItem::Retry(Duration::from_millis(milliseconds)));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, items: &mut Vec<SseItem>) {
        let event = self.event.take();
        let id = self.id.take();
        // A block without data lines (such as `retry: 3000` alone) dispatches nothing.
        if !std::mem::take(&mut self.has_data) {
            self.data.clear();
            return;
        }
        items.push(SseItem::Event(SseEvent {
            id,
            event: event.filter(|name| !name.is_empty()).unwrap_or_else(|| "message".to_owned()),
            data: std::mem::take(&mut self.data),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseItem> {
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut items).expect("valid stream");
        }
        items
    }

    fn event(id: Option<&str>, name: &str, data: &str) -> SseItem {
        SseItem::Event(SseEvent { id: id.map(str::to_owned), event: name.to_owned(), data: data.to_owned() })
    }

    #[test]
    fn the_documented_stream_parses_into_retry_and_events() {
        let stream = b"retry: 3000\n\nid: 12\nevent: snapshot\ndata: {\"revision\":12}\n\nid: 13\nevent: change\ndata: {\"revision\":13}\n\nevent: heartbeat\ndata: {\"revision\":13}\n\n";
        assert_eq!(
            parse_chunks(&[stream]),
            vec![
                SseItem::Retry(Duration::from_millis(3000)),
                event(Some("12"), "snapshot", "{\"revision\":12}"),
                event(Some("13"), "change", "{\"revision\":13}"),
                event(None, "heartbeat", "{\"revision\":13}"),
            ]
        );
    }

    #[test]
    fn every_split_of_the_stream_gives_the_same_events() {
        let stream: &[u8] = b"retry: 3000\r\n\r\nid: 7\r\nevent: change\r\ndata: first\r\ndata: second\r\n\r\n:comment\rdata: x\r\r";
        let whole = parse_chunks(&[stream]);
        assert_eq!(
            whole,
            vec![SseItem::Retry(Duration::from_millis(3000)), event(Some("7"), "change", "first\nsecond"), event(None, "message", "x")]
        );
        for split in 0..=stream.len() {
            assert_eq!(parse_chunks(&[&stream[..split], &stream[split..]]), whole, "split at byte {split}");
        }
        let byte_by_byte: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_chunks(&byte_by_byte), whole);
    }

    #[test]
    fn a_carriage_return_then_a_line_feed_in_the_next_chunk_is_one_line_end() {
        // Were the `\n` taken as a second line end, the blank line would dispatch `data: a` early, without its id.
        assert_eq!(parse_chunks(&[b"data: a\r", b"\nid: 1\n\n"]), vec![event(Some("1"), "message", "a")]);
    }

    #[test]
    fn field_values_lose_one_leading_space_only() {
        assert_eq!(parse_chunks(&[b"data:no space\n\n"]), vec![event(None, "message", "no space")]);
        assert_eq!(parse_chunks(&[b"data:  two spaces\n\n"]), vec![event(None, "message", " two spaces")]);
        assert_eq!(parse_chunks(&[b"data\n\n"]), vec![event(None, "message", "")]);
        assert_eq!(parse_chunks(&[b"data: a:b\n\n"]), vec![event(None, "message", "a:b")]);
    }

    #[test]
    fn blocks_without_data_dispatch_nothing_and_do_not_leak_fields() {
        assert_eq!(parse_chunks(&[b"event: change\nid: 4\n\ndata: later\n\n"]), vec![event(None, "message", "later")]);
    }

    #[test]
    fn invalid_retry_and_ids_with_nul_are_ignored() {
        assert_eq!(parse_chunks(&[b"retry: soon\nretry: 12a\nid: a\0b\ndata: x\n\n"]), vec![event(None, "message", "x")],);
    }

    #[test]
    fn unknown_fields_are_ignored_and_an_unterminated_event_is_not_dispatched() {
        assert_eq!(parse_chunks(&[b"foo: bar\ndata: x\n\ndata: unfinished\n"]), vec![event(None, "message", "x")]);
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped_even_when_split() {
        let stream: &[u8] = b"\xEF\xBB\xBFdata: x\n\n";
        for split in 0..=stream.len() {
            assert_eq!(parse_chunks(&[&stream[..split], &stream[split..]]), vec![event(None, "message", "x")], "split {split}");
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_rather_than_failing() {
        assert_eq!(parse_chunks(&[b"data: a\xFFb\n\n"]), vec![event(None, "message", "a\u{FFFD}b")]);
    }

    #[test]
    fn an_endless_line_is_an_error() {
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        let chunk = vec![b'a'; 1024 * 1024];
        let mut result = Ok(());
        for _ in 0..=MAX_LINE_BYTES / chunk.len() {
            result = parser.feed(&chunk, &mut items);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::LineTooLong));
        assert!(items.is_empty());
    }
}
