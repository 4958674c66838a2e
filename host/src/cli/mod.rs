//! Command-line clients of a running gateway.

pub(crate) mod admin;
