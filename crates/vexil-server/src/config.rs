//! What a server runs with: its environments, flag categories and limits.

use vexil_core::{Categories, Environments};

/// The server's configuration, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Environments in promotion order.
    pub environments: Environments,
    /// Accepted flag categories.
    pub categories: Categories,
    /// The largest request body accepted, in bytes (imports get eight times as much).
    pub body_limit: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { environments: Environments::seed(), categories: Categories::default(), body_limit: 256 * 1024 }
    }
}
