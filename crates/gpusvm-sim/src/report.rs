//! Reports: machine-readable (`--json`) without a serialization dependency, and the text report
//! of workloads and the demo.

use std::fmt::Write as _;

use crate::run::ScenarioResult;
use crate::stats::ProcStats;
use crate::workload::WorkloadReport;

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

/// A byte count with a binary unit: `512 B`, `4 KiB`, `1.5 MiB`.
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A count with thousands separators: `1,234,567`.
fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Ranges by size in words: `48 (40 x 2 MiB, 8 x 64 KiB)`.
fn fmt_ranges(sizes: &std::collections::BTreeMap<u64, usize>) -> String {
    let total: usize = sizes.values().sum();
    if total == 0 {
        return "0".into();
    }
    let parts: Vec<String> = sizes
        .iter()
        .rev()
        .map(|(size, n)| format!("{n} x {}", fmt_bytes(*size)))
        .collect();
    format!("{total} ({})", parts.join(", "))
}

/// Ranges by size as a JSON object: `{"total":N,"by_size":{"2097152":40}}`.
fn ranges_json(sizes: &std::collections::BTreeMap<u64, usize>) -> String {
    let total: usize = sizes.values().sum();
    let by_size: Vec<String> = sizes.iter().map(|(s, n)| format!("\"{s}\":{n}")).collect();
    format!(
        "{{\"total\":{total},\"by_size\":{{{}}}}}",
        by_size.join(",")
    )
}

/// A float as a JSON number (JSON has no NaN or infinities: those become 0).
fn json_f64(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "0".into()
    }
}

/// `gpusvm-sim workload` (and the demo): the report as aligned text.
pub fn workload_text(r: &WorkloadReport) -> String {
    let t = &r.totals;
    let p = &r.params;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "workload {}: {}",
        r.workload,
        if r.passed { "PASSED" } else { "FAILED" }
    );
    let mut line = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<22}{v}");
    };
    line(
        "parameters",
        format!(
            "size {}, VRAM {} x {} GPU{}, {} thread{}, seed {}",
            fmt_bytes(p.size),
            fmt_bytes(p.vram),
            p.devices,
            if p.devices == 1 { "" } else { "s" },
            p.threads,
            if p.threads == 1 { "" } else { "s" },
            p.seed
        ),
    );
    line(
        "steps",
        format!(
            "{} of {} ({} batches)",
            r.steps,
            p.steps,
            fmt_count(r.batches)
        ),
    );
    let per_fault = r.core_ns_per_fault().map_or_else(String::new, |ns| {
        format!(", {:.1} us in the core each", ns / 1e3)
    });
    line(
        "GPU faults",
        format!(
            "{} ({:.0} per second{per_fault})",
            fmt_count(t.gpu_faults),
            r.faults_per_second()
        ),
    );
    line(
        "CPU faults",
        format!(
            "{} ({} on device pages)",
            fmt_count(t.cpu_faults),
            fmt_count(t.cpu_device_faults)
        ),
    );
    line(
        "migrations to VRAM",
        format!(
            "{} ({})",
            fmt_count(t.migrations_to_vram),
            fmt_bytes(t.bytes_to_vram)
        ),
    );
    line(
        "migrations to RAM",
        format!(
            "{} ({})",
            fmt_count(t.migrations_to_ram),
            fmt_bytes(t.bytes_to_ram)
        ),
    );
    line("evictions", fmt_count(t.evictions));
    line("fault retries", fmt_count(t.retries));
    line("TLB invalidations", fmt_count(t.tlb_invalidations));
    line("MMU notifications", fmt_count(t.invalidations));
    line(
        "copy engine",
        format!(
            "{} calls, {}",
            fmt_count(r.copy_calls),
            fmt_bytes(r.copy_bytes)
        ),
    );
    line("DMA mappings made", fmt_count(r.dma_mappings));
    line("ranges created", fmt_count(t.ranges_created));
    line("ranges at peak", fmt_ranges(&r.ranges_peak));
    line("ranges at end", fmt_ranges(&r.ranges_final));
    line("wall time", format!("{:.3} s", r.wall.as_secs_f64()));
    if r.processes.len() > 1 {
        for (name, s) in &r.processes {
            line(
                &format!("process {name}"),
                format!(
                    "{} GPU faults, {} CPU faults, {} + {} migrations to VRAM/RAM, {} evictions",
                    fmt_count(s.gpu_faults),
                    fmt_count(s.cpu_faults),
                    fmt_count(s.migrations_to_vram),
                    fmt_count(s.migrations_to_ram),
                    fmt_count(s.evictions)
                ),
            );
        }
    }
    for n in &r.notes {
        let _ = writeln!(out, "  check: {n}");
    }
    for f in &r.failures {
        let _ = writeln!(out, "  FAILURE: {f}");
    }
    out
}

/// `gpusvm-sim workload --json`: the report as one JSON object.
pub fn workload_json(r: &WorkloadReport) -> String {
    let p = &r.params;
    let strings = |v: &[String]| v.iter().map(|s| json_str(s)).collect::<Vec<_>>().join(",");
    let processes: Vec<String> = r
        .processes
        .iter()
        .map(|(name, s)| format!("{}:{}", json_str(name), stats_json(s)))
        .collect();
    format!(
        "{{\"workload\":{},\"passed\":{},\"failures\":[{}],\"notes\":[{}],\
\"params\":{{\"size\":{},\"vram\":{},\"devices\":{},\"threads\":{},\"seed\":{},\"steps\":{}}},\
\"steps\":{},\"batches\":{},\"wall_ms\":{},\"gpu_faults_per_second\":{},\
\"core_ns_per_gpu_fault\":{},\"totals\":{},\"processes\":{{{}}},\
\"ranges\":{{\"peak\":{},\"final\":{}}},\"copy_engine\":{{\"calls\":{},\"bytes\":{}}},\
\"dma_mappings_made\":{}}}",
        json_str(&r.workload),
        r.passed,
        strings(&r.failures),
        strings(&r.notes),
        p.size,
        p.vram,
        p.devices,
        p.threads,
        p.seed,
        p.steps,
        r.steps,
        r.batches,
        json_f64(r.wall.as_secs_f64() * 1e3),
        json_f64(r.faults_per_second()),
        r.core_ns_per_fault()
            .map_or_else(|| "null".into(), json_f64),
        stats_json(&r.totals),
        processes.join(","),
        ranges_json(&r.ranges_peak),
        ranges_json(&r.ranges_final),
        r.copy_calls,
        r.copy_bytes,
        r.dma_mappings
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_counts_read_well() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(1000), "1000 B");
        assert_eq!(fmt_bytes(4096), "4 KiB");
        assert_eq!(fmt_bytes(3 << 19), "1.5 MiB");
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        let sizes = std::collections::BTreeMap::from([(4096, 3), (2 << 20, 2)]);
        assert_eq!(fmt_ranges(&sizes), "5 (2 x 2 MiB, 3 x 4 KiB)");
        assert_eq!(
            ranges_json(&sizes),
            "{\"total\":5,\"by_size\":{\"4096\":3,\"2097152\":2}}"
        );
        assert_eq!(json_f64(f64::NAN), "0");
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
