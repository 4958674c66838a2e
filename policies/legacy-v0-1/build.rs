//! Bindings of the 0.1.0 contract (`wit/v0.1/policy.wit`), as a policy
//! built before 0.2.0 has them.

use std::path::Path;

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/v0.1/policy.wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let text = std::fs::read_to_string(&wit).expect("read wit/v0.1/policy.wit");
    assert!(text.contains("package kms-gateway:policy@0.1.0;"));
    let code = format!("wit_bindgen::generate!({{ inline: r###\"{text}\"###, world: \"sse-validator\" }});\n");
    std::fs::write(Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("bindings.rs"), code).expect("write bindings.rs");
}
