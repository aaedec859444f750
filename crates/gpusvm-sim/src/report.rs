//! Machine-readable reports (`--json`), without a serialization dependency.

use std::fmt::Write as _;

use crate::run::ScenarioResult;
use crate::stats::ProcStats;

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The statistics as a JSON object.
pub fn stats_json(s: &ProcStats) -> String {
    format!(
        "{{\"gpu_faults\":{},\"migrations_to_vram\":{},\"migrations_to_ram\":{},\
\"bytes_to_vram\":{},\"bytes_to_ram\":{},\"evictions\":{},\"tlb_invalidations\":{},\
\"retries\":{},\"cpu_faults\":{},\"cpu_device_faults\":{},\"invalidations\":{},\
\"ranges_created\":{},\"core_ns\":{}}}",
        s.gpu_faults,
        s.migrations_to_vram,
        s.migrations_to_ram,
        s.bytes_to_vram,
        s.bytes_to_ram,
        s.evictions,
        s.tlb_invalidations,
        s.retries,
        s.cpu_faults,
        s.cpu_device_faults,
        s.invalidations,
        s.ranges_created,
        s.core_ns
    )
}

/// `gpusvm-sim run --json`: one object per scenario and a summary.
pub fn results_json(results: &[ScenarioResult]) -> String {
    let mut out = String::from("{\"scenarios\":[");
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let failures: Vec<String> = r.failures.iter().map(|f| json_str(f)).collect();
        let stats: Vec<String> = r
            .stats
            .iter()
            .map(|(p, s)| format!("{}:{}", json_str(p), stats_json(s)))
            .collect();
        let _ = write!(
            out,
            "{{\"file\":{},\"passed\":{},\"statements\":{},\"backend_calls\":{},\
\"elapsed_ms\":{:.3},\"failures\":[{}],\"stats\":{{{}}}}}",
            json_str(&r.file),
            r.passed,
            r.statements,
            r.backend_calls,
            r.elapsed.as_secs_f64() * 1e3,
            failures.join(","),
            stats.join(",")
        );
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let _ = write!(out, "],\"passed\":{passed},\"total\":{}}}", results.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
