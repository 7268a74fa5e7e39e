//! The Rust SDK for Vexil (being written).
