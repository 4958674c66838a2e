//! The gateway's own WIT with the package version changed to 9.0.0, so
//! this test component is exactly "the right contract, another version".

use std::path::Path;

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../wit/policy.wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let text = std::fs::read_to_string(&wit).expect("read wit/policy.wit");
    let bumped = text.replace("package kms-gateway:policy@0.2.0;", "package kms-gateway:policy@9.0.0;");
    assert_ne!(text, bumped, "the WIT package line moved");
    let code = format!("wit_bindgen::generate!({{ inline: r###\"{bumped}\"###, world: \"key-selector\" }});\n");
    std::fs::write(Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("bindings.rs"), code).expect("write bindings.rs");
}
