//! Colour for people at a terminal, never for pipes: ANSI colours only when the stream written to is a terminal and
//! `NO_COLOR` (<https://no-color.org>) is not set to anything but the empty string.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// Whether standard output gets colour.
fn stdout_colour() -> bool {
    static COLOUR: OnceLock<bool> = OnceLock::new();
    *COLOUR.get_or_init(|| allowed() && std::io::stdout().is_terminal())
}

/// Whether standard error gets colour.
fn stderr_colour() -> bool {
    static COLOUR: OnceLock<bool> = OnceLock::new();
    *COLOUR.get_or_init(|| allowed() && std::io::stderr().is_terminal())
}

/// Whether what goes to standard error may be coloured (the server's log lines too).
pub fn stderr_allows_colour() -> bool {
    stderr_colour()
}

fn allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

fn paint(colour: bool, code: &str, text: &str) -> String {
    if colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
}

/// Something on, serving (green), on standard output.
pub fn on(text: &str) -> String {
    paint(stdout_colour(), "32", text)
}

/// Something off (red), on standard output.
pub fn off(text: &str) -> String {
    paint(stdout_colour(), "31", text)
}

/// A heading or a name to find (bold), on standard output.
pub fn strong(text: &str) -> String {
    paint(stdout_colour(), "1", text)
}

/// Secondary detail (dim), on standard output.
pub fn faint(text: &str) -> String {
    paint(stdout_colour(), "2", text)
}

/// The `error` label of a failure (bold red), on standard error.
pub fn error(text: &str) -> String {
    paint(stderr_colour(), "1;31", text)
}

/// The terminal's width when standard output is one; `None` when piped (then nothing is laid out for a width).
pub fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let columns = || std::env::var("COLUMNS").ok().and_then(|columns| columns.parse().ok());
    terminal_size::terminal_size_of(std::io::stdout()).map(|(width, _)| usize::from(width.0)).or_else(columns)
}
