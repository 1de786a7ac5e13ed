//! Documentation that must stay true: every crate is on the code map.

#[test]
fn architecture_names_every_crate() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let map = std::fs::read_to_string(format!("{root}/ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let crates = std::fs::read_dir(format!("{root}/crates")).expect("crates/");
    let mut missing = Vec::new();
    for entry in crates.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !map.contains(&format!("`crates/{name}`")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md has no section for: {missing:?}"
    );
}
