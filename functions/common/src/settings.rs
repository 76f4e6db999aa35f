//! The components' settings: the core's catalogue of the functions' Spin variables
//! (`edgeshell_core::settings::FUNCTIONS`, declared with the same defaults in `spin.toml`), read with the
//! core's [`Reader`]. A missing or malformed variable is a misconfiguration: logged, and answered as
//! `misconfigured` (500).

use crate::reply::{ApiError, ErrorCode};
use edgeshell_core::settings::{Program, Reader, SettingsError};
use spin_sdk::variables;

fn lookup(name: &str) -> Option<String> {
    variables::get(name).ok()
}

/// Reads settings with the core's reader over the component's Spin variables.
pub fn read<T>(read: impl FnOnce(&Reader<'_>) -> Result<T, SettingsError>) -> Result<T, ApiError> {
    read(&Reader::new(Program::Functions, &lookup)).map_err(|e| {
        eprintln!("misconfigured: {e}");
        ApiError::new(ErrorCode::Misconfigured, e.to_string())
    })
}

/// A setting that must be set (a text default counts).
pub fn required(name: &str) -> Result<String, ApiError> {
    read(|s| s.required(name))
}
