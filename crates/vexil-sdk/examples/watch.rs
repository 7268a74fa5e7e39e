//! Prints a flag's value now and after every change: the smallest complete use of the SDK.
//!
//! ```text
//! VEXIL_SERVER=http://localhost:8080 VEXIL_ENV=staging VEXIL_SDK_KEY=vxs_… \
//!     cargo run -p vexil-sdk --example watch -- ui.new_feature [targeting-key]
//! ```
//!
//! The value is printed with the layer that answered (an `FF_` override, the stored state, …) and the reason, so
//! the example doubles as a check of what an application in this directory would see. Ctrl-C stops it.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use vexil_sdk::{Context, FlagType, Status, VexilClient};

fn required(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        eprintln!("watch: set {variable} (VEXIL_SERVER, VEXIL_ENV and VEXIL_SDK_KEY are all needed)");
        std::process::exit(2);
    })
}

fn print_value(client: &VexilClient, flag: &str, context: &Context) {
    let flag_type = client.definition(flag).map(|definition| definition.flag_type).unwrap_or(FlagType::Json);
    let (value, source, reason, error) = match flag_type {
        FlagType::Boolean => {
            let details = client.bool_details(flag, context, false);
            (details.value.to_string(), details.source, details.reason, details.error)
        }
        FlagType::String => {
            let details = client.string_details(flag, context, "");
            (format!("{:?}", details.value), details.source, details.reason, details.error)
        }
        FlagType::Number => {
            let details = client.number_details(flag, context, 0.0);
            (details.value.to_string(), details.source, details.reason, details.error)
        }
        FlagType::Json => {
            let details = client.json_details(flag, context, serde_json::Value::Null);
            (details.value.to_string(), details.source, details.reason, details.error)
        }
    };
    let revision = client.revision().map(|revision| revision.to_string()).unwrap_or_else(|| "-".to_owned());
    let error = error.map(|error| format!(" ({})", error.message)).unwrap_or_default();
    println!("{flag} = {value}  [{}, {}, revision {revision}, {}]{error}", source.as_str(), reason.as_str(), client.status());
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_env("VEXIL_LOG")).with_writer(std::io::stderr).init();
    let mut arguments = std::env::args().skip(1);
    let Some(flag) = arguments.next() else {
        eprintln!("usage: watch <flag> [targeting-key]");
        std::process::exit(2);
    };
    let context = arguments.next().map(Context::new).unwrap_or_default();

    let client = VexilClient::builder(required("VEXIL_SERVER"), required("VEXIL_ENV"), required("VEXIL_SDK_KEY")).build()?;
    // Subscribe before waiting, so no change between the snapshot and the loop is missed.
    let mut events = client.subscribe();
    let mut status = client.status_updates();
    if let Err(error) = client.wait_for_flags(Duration::from_secs(10)).await {
        eprintln!("watch: {error}; printing overrides and the fallback until the server answers");
    }
    for warning in client.override_warnings() {
        eprintln!("watch: {}", warning.message);
    }
    print_value(&client, &flag, &context);
    // Events up to the revision just printed (the initial snapshot among them) are already shown; after the
    // first newer one every event counts, even a snapshot of a lower revision from a server that was reset.
    let mut already_shown = client.revision();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) if event.concerns(&flag) => {
                    if already_shown.is_some_and(|revision| event.revision() <= revision) {
                        continue;
                    }
                    already_shown = None;
                    print_value(&client, &flag, &context);
                }
                Ok(_) => {}
                // Fell behind: whatever was missed, the current value is what matters.
                Err(RecvError::Lagged(_)) => print_value(&client, &flag, &context),
                Err(RecvError::Closed) => break,
            },
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *status.borrow_and_update();
                match now {
                    Status::Stale => eprintln!("watch: disconnected ({}); serving the last known flags", client.last_connection_error().unwrap_or_default()),
                    Status::Ready => eprintln!("watch: connected"),
                    Status::Connecting | Status::Closed => {}
                }
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close();
    Ok(())
}
