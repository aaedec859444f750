//! Integration tests of gpusvm (see `tests/`): helpers shared by the test files.

pub mod fuzzing;
pub mod invariants;

use std::path::{Path, PathBuf};

use gpusvm_sim::scenario::{ast::Scenario, parse};

/// The repository's scenario directory.
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// Every `.svm` file under `dir`, sorted.
pub fn svm_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(svm_files(&p));
        } else if p.extension().is_some_and(|x| x == "svm") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Reads and parses the scenario file `path`, returning it with its name (the path as shown).
///
/// # Panics
///
/// If the file cannot be read or does not parse.
pub fn load_scenario(path: &Path) -> (String, Scenario) {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let sc = parse(&name, &text).unwrap_or_else(|e| panic!("{e}"));
    (name, sc)
}
