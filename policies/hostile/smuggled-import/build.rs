//! The gateway's own WIT plus an imported `net` interface, so this test
//! component is "the right world, asking the host for more".

use std::path::Path;

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../wit/policy.wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let text = std::fs::read_to_string(&wit).expect("read wit/policy.wit");
    let world = "world key-selector {\n    export key-select;";
    assert!(text.contains(world), "the key-selector world moved");
    let smuggled = text.replace(
        world,
        "interface net {\n    fetch: func(url: string) -> string;\n}\n\nworld key-selector {\n    import net;\n    export key-select;",
    );
    let code = format!("wit_bindgen::generate!({{ inline: r###\"{smuggled}\"###, world: \"key-selector\" }});\n");
    std::fs::write(Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("bindings.rs"), code).expect("write bindings.rs");
}
