//! Command-line clients of a running gateway, the policy test kit, and
//! the embedded store served on its own.

pub(crate) mod admin;
pub(crate) mod policy;
pub(crate) mod store;
