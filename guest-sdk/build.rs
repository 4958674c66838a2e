//! Embed the WIT contract (`../wit/policy.wit`) into the hook macros, so a
//! policy crate needs nothing but this SDK: the bindings are generated in
//! the policy crate itself, from the one source of truth.

use std::path::Path;

fn main() {
    let wit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/policy.wit");
    println!("cargo:rerun-if-changed={}", wit_path.display());
    let wit = std::fs::read_to_string(&wit_path).expect("read ../wit/policy.wit");
    assert!(!wit.contains("\"###"), "the WIT text must not contain \"###");
    let template = include_str!("src/hooks.rs.in");
    let out = template.replace("@WIT@", &format!("r###\"{wit}\"###"));
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("hooks.rs");
    std::fs::write(dest, out).expect("write hooks.rs");
}
