//! Fuzz target `scenario_parser`: arbitrary bytes, read as (lossy) UTF-8, through
//! [`gpusvm_sim::scenario::parse()`].
//!
//! The parser must never panic; an error must name the file, a line of the input and a column,
//! and carry a message; and a scenario it accepts must print (`Display`) to text that parses to
//! the same tree (line and column numbers aside) and prints identically again.

use gpusvm_sim::scenario::ast::{Scenario, Stmt, StmtKind};
use gpusvm_sim::scenario::parse;

/// The file name the target parses under.
pub const FILE: &str = "fuzz.svm";

/// Runs one fuzz input.
///
/// # Panics
///
/// If the parser panics or breaks one of the properties above.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(msg) = check(&text) {
        panic!("scenario_parser: {msg}\n--- input ---\n{text:?}");
    }
}

/// Checks the properties for one text.
///
/// # Errors
///
/// A description of the property that does not hold.
pub fn check(text: &str) -> Result<(), String> {
    let scenario = match parse(FILE, text) {
        Ok(s) => s,
        Err(e) => {
            let lines = u32::try_from(text.split('\n').count()).unwrap_or(u32::MAX);
            let shown = e.to_string();
            if e.file != FILE || e.line == 0 || e.line > lines || e.col == 0 {
                return Err(format!(
                    "malformed error position {}:{}:{} (input has {lines} lines): {shown}",
                    e.file, e.line, e.col
                ));
            }
            if e.message.is_empty() {
                return Err(format!("empty error message: {shown}"));
            }
            return Ok(());
        }
    };
    let printed = scenario.to_string();
    let reparsed = parse("printed.svm", &printed).map_err(|e| {
        format!("the printed scenario does not parse: {e}\n--- printed ---\n{printed}")
    })?;
    if without_positions(reparsed.clone()) != without_positions(scenario.clone()) {
        return Err(format!(
            "printing and re-parsing changed the tree\n--- printed ---\n{printed}\n\
             --- first tree ---\n{scenario:#?}\n--- re-parsed tree ---\n{reparsed:#?}"
        ));
    }
    let again = reparsed.to_string();
    if again != printed {
        return Err(format!(
            "printing is not stable\n--- first ---\n{printed}\n--- second ---\n{again}"
        ));
    }
    Ok(())
}

/// Zeroes every statement position, so trees parsed from differently laid-out text compare
/// equal.
pub fn without_positions(mut scenario: Scenario) -> Scenario {
    fn strip(stmts: &mut [Stmt]) {
        for s in stmts {
            s.line = 0;
            s.col = 0;
            if let StmtKind::Concurrent { body, .. } = &mut s.kind {
                strip(body);
            }
        }
    }
    strip(&mut scenario.stmts);
    scenario
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_without_complaint() {
        assert_eq!(check("mmap A size=2M\ngpu write A fill=1\n"), Ok(()));
        assert_eq!(check("mmap A size=\n"), Ok(()));
        assert_eq!(check(""), Ok(()));
        run(b"\xff\xfe\x00config vram=1G\n");
    }
}
