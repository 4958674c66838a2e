//! Command-line clients of a running gateway, and the policy test kit.

pub(crate) mod admin;
pub(crate) mod policy;
