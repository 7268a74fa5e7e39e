//! Asking the person at the terminal: confirmations and reasons for protected environments.
//!
//! Without a terminal nothing is asked: a protected change is refused unless `--yes` (and `--reason`)
//! were given, so a script never hangs waiting for input and never changes production by accident.

use std::io::{BufRead, IsTerminal, Write};

use crate::client::{CommandResult, Failure};

/// Whether both standard input and standard error are terminals (someone is there to answer).
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn ask(question: &str) -> CommandResult<String> {
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|error| Failure::Failed(format!("cannot read the answer: {error}")))?;
    Ok(line.trim().to_owned())
}

/// The reason for a change to `environment`, and for a protected one its confirmation.
///
/// On a terminal a missing reason is asked for and the change is confirmed by typing the environment's
/// key; without one, a protected change goes ahead only with `--reason` and `--yes`. `confirmed` skips
/// the confirmation (the emergency disable).
pub fn protected_change(
    reason: Option<String>,
    yes: bool,
    confirmed: bool,
    environment: &str,
    protected: bool,
    what: &str,
) -> CommandResult<Option<String>> {
    if !protected {
        return Ok(reason);
    }
    let needs_confirmation = !yes && !confirmed;
    if !interactive() {
        let mut missing = Vec::new();
        if reason.is_none() {
            missing.push("a reason (--reason)");
        }
        if needs_confirmation {
            missing.push("confirmation (--yes)");
        }
        if !missing.is_empty() {
            return Err(Failure::Refused(format!(
                "{environment} is protected: {what} needs {}, and there is no terminal to ask on; nothing was changed",
                missing.join(" and ")
            )));
        }
        return Ok(reason);
    }
    let reason = match reason {
        Some(reason) => reason,
        None => {
            let answer = ask(&format!("{environment} is protected; reason for this change: "))?;
            if answer.is_empty() {
                return Err(Failure::Refused(format!("{environment} is protected: a reason is required; nothing was changed")));
            }
            answer
        }
    };
    if needs_confirmation {
        let answer = ask(&format!("{what} in {environment}? Type `{environment}` to confirm: "))?;
        if answer != environment {
            return Err(Failure::Refused(format!(
                "not confirmed (the confirmation is the environment's key, `{environment}`); nothing was changed"
            )));
        }
    }
    Ok(Some(reason))
}

/// Reads a secret: from standard input when asked to, else without echo from the terminal.
pub fn secret(from_stdin: bool, prompt: &str) -> CommandResult<String> {
    let value = if from_stdin || !interactive() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|error| Failure::Failed(format!("cannot read standard input: {error}")))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        rpassword::prompt_password(prompt).map_err(|error| Failure::Failed(format!("cannot read the password: {error}")))?
    };
    if value.is_empty() && !from_stdin && !interactive() {
        return Err(Failure::Usage("no terminal to ask for the password on: pass --password-stdin and send it on standard input".into()));
    }
    if value.is_empty() {
        return Err(Failure::Usage("the password is empty".into()));
    }
    Ok(value)
}

/// Asks for a line of text on a terminal, or fails with `missing` when there is none.
pub fn line(prompt: &str, missing: &str) -> CommandResult<String> {
    if !interactive() {
        return Err(Failure::Usage(missing.to_owned()));
    }
    ask(prompt)
}
