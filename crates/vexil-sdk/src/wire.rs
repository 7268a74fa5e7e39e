//! The payloads of the SSE stream (format version 1, `docs/streaming.md`), as explicit wire types.
//!
//! The definitions and states inside them are vexil-core's own types: the server serialises those same
//! types, and deserialising into them is what lets the SDK evaluate with exactly the server's engine.
//! The envelope (`version`, `environment`, `revision`) is declared here so a future format change is
//! refused with a clear message instead of being misread.

use serde::{Deserialize, Serialize};
use vexil_core::{FlagDefinition, FlagName, FlagState};

/// The stream format version this SDK reads.
pub const STREAM_FORMAT_VERSION: u32 = 1;

/// The data of a `snapshot` event: every flag of one environment. Also the format of bootstrap files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The stream format version, [`STREAM_FORMAT_VERSION`].
    pub version: u32,
    /// The environment, as the server names it (its key: `staging`, `prod`).
    pub environment: String,
    /// The environment's revision this snapshot is current at.
    pub revision: u64,
    /// Every flag of the environment, archived ones included.
    pub flags: Vec<SnapshotFlag>,
}

/// One flag of a snapshot: its definition and its state in the snapshot's environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFlag {
    /// The flag's definition, as `GET /api/flags/{flag}` shows it.
    pub definition: FlagDefinition,
    /// Its state in this environment. The server always sends one; when it is missing the registry default answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<FlagState>,
}

/// The data of a `change` event: one flag after one committed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The stream format version.
    pub version: u32,
    /// The environment, as the server names it.
    pub environment: String,
    /// The revision this change produced.
    pub revision: u64,
    /// The flag that changed.
    pub flag: FlagName,
    /// Its whole definition after the change; absent when the flag was deleted.
    #[serde(default)]
    pub definition: Option<FlagDefinition>,
    /// Its whole state after the change.
    #[serde(default)]
    pub state: Option<FlagState>,
}

/// The data of a `heartbeat` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The stream format version.
    pub version: u32,
    /// The environment's current revision: a client that has applied less has missed something.
    pub revision: u64,
}

impl Snapshot {
    /// Parses a snapshot (an event's data or a bootstrap file) and checks its format version.
    pub fn from_json(text: &str) -> Result<Self, crate::SdkError> {
        let snapshot: Snapshot =
            serde_json::from_str(text).map_err(|error| crate::SdkError::InvalidSnapshot { reason: error.to_string() })?;
        check_version(snapshot.version).map_err(|reason| crate::SdkError::InvalidSnapshot { reason })?;
        Ok(snapshot)
    }

    /// The snapshot as the JSON of a `snapshot` event's data, the format bootstrap files use.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("snapshots serialise: keys are strings and numbers are finite")
    }
}

/// Refuses payloads of a format this SDK does not know, with a message saying what to do.
pub(crate) fn check_version(version: u32) -> Result<(), String> {
    if version == STREAM_FORMAT_VERSION {
        Ok(())
    } else {
        Err(format!(
            "stream format version {version} is not supported; this vexil-sdk reads version {STREAM_FORMAT_VERSION}: upgrade vexil-sdk"
        ))
    }
}
