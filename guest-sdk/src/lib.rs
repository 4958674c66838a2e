//! # kms-gateway-policy
//!
//! Write kms-gateway policies in Rust. A policy is a WebAssembly component
//! implementing one hook of the WIT contract (`wit/policy.wit`):
//!
//! - [`key_selector!`]: which mode and key encrypt a new object, or deny;
//! - [`sse_validator!`]: accept or reject a request's SSE settings;
//! - [`rotation_policy!`]: rotate a master key now, or check again later.
//!
//! Each macro generates the bindings of its world in your crate (module
//! `api`) and exports your type. Hooks are pure functions: everything comes
//! in the input and nothing is imported. This crate makes the component
//! `no_std` with no imports at all: it brings the allocator, the panic
//! handler (a panic traps, and the gateway fails the request closed) and
//! the canonical ABI's `cabi_realloc`. Its allocator is an arena in the
//! component's data before dlmalloc, so a typical call never grows memory.
//!
//! ```ignore
//! #![no_std]
//! kms_gateway_policy::key_selector!(Policy);
//! use api::{Decision, Guest, Request, Selection};
//!
//! struct Policy;
//!
//! impl Guest for Policy {
//!     fn select(req: Request) -> Decision {
//!         if req.bucket.starts_with("finance-") {
//!             return Decision::Select(Selection::kms("finance-key"));
//!         }
//!         Decision::Keep
//!     }
//! }
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`
//! (`rustup target add wasm32-wasip2`); the `.wasm` is the component.
#![no_std]

#[doc(hidden)]
pub extern crate alloc as __alloc;
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

#[cfg(target_arch = "wasm32")]
mod alloc;
mod runtime;

include!(concat!(env!("OUT_DIR"), "/hooks.rs"));

/// Helpers on the request type of a request-shaped hook.
#[doc(hidden)]
#[macro_export]
macro_rules! __request_helpers {
    () => {
        impl Request {
            /// A header's value (names are lower case).
            pub fn header(&self, name: &str) -> Option<&str> {
                self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
            }

            /// The first segment of the object key (`acme` in `acme/a/b`).
            pub fn first_segment(&self) -> Option<&str> {
                self.key.split_once('/').map(|(first, _)| first).filter(|s| !s.is_empty())
            }

            /// An attribute of the identity that signed the request.
            pub fn attribute(&self, name: &str) -> Option<&str> {
                self.identity.as_ref()?.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
            }

            /// Whether the signer is in `group`.
            pub fn in_group(&self, group: &str) -> bool {
                self.identity.as_ref().is_some_and(|i| i.groups.iter().any(|g| g == group))
            }

            /// A read of an encrypted object (sse-validate only): the
            /// requested mode and key are the object's own.
            pub fn is_read(&self) -> bool {
                matches!(self.operation.as_str(), "GetObject" | "HeadObject" | "GetObjectAttributes" | "CopySource")
            }
        }

        impl S3Error {
            pub fn new(code: &str, message: &str) -> Self {
                Self { code: code.into(), message: message.into() }
            }

            pub fn access_denied(message: &str) -> Self {
                Self::new("AccessDenied", message)
            }
        }
    };
}
