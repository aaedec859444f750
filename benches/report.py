#!/usr/bin/env python3
"""Prints the ratio table of docs/PERFORMANCE.md from criterion's results.

Run after `cargo bench -p gpusvm-benches` (criterion writes target/criterion/**/new/estimates.json):

    python3 benches/report.py [target/criterion]

Every ratio divides two medians measured in the same `cargo bench` run, provided every bench
target was run together: the script warns (on stderr) when criterion's estimate files span more
than 30 minutes, or when a paired result is older than the estimates, i.e. when the table mixes
runs. After re-running only some targets, take from the table only their rows.
"""

import glob
import json
import os
import sys
import time

ROOT = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
MAX_SPAN = 30 * 60  # seconds: a whole run takes 4–9 minutes


def check_runs():
    """Warns when the results come from different runs (file modification times)."""
    est = {}
    for f in glob.glob(os.path.join(ROOT, "**", "new", "estimates.json"), recursive=True):
        group = os.path.relpath(f, ROOT).split(os.sep)[0]
        est.setdefault(group, []).append(os.path.getmtime(f))
    if not est:
        return est
    allm = [m for ms in est.values() for m in ms]
    if max(allm) - min(allm) > MAX_SPAN:
        print(f"warning: criterion results span {fmt(min(allm))} to {fmt(max(allm))}: the table "
              "mixes runs; per group:", file=sys.stderr)
        for group, ms in sorted(est.items()):
            print(f"  {group}: {fmt(min(ms))} to {fmt(max(ms))}", file=sys.stderr)
    return est


def fmt(t):
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


ESTIMATES = check_runs()


def median(path):
    """Median time per iteration in ns of benchmark `group/function/param`, or None."""
    f = os.path.join(ROOT, path, "new", "estimates.json")
    try:
        with open(f) as fh:
            return json.load(fh)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def ns(v):
    if v is None:
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.2f} µs"
    return f"{v:.1f} ns"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}"


rows = []


def paired(name):
    """A paired result saved by the benchmarks (gpusvm_benches::Paired::save), or None."""
    f = os.path.join(ROOT, "paired", name + ".json")
    try:
        with open(f) as fh:
            p = json.load(fh)
    except (OSError, ValueError):
        return None
    # A paired result is written just before the criterion benchmarks of its target: one much
    # older than the estimates of its group comes from an earlier run.
    group = name.split("_")[0]
    ms = ESTIMATES.get(group)
    if ms and min(ms) - os.path.getmtime(f) > 600:
        print(f"warning: paired result {name} ({fmt(os.path.getmtime(f))}) is older than the "
              f"{group} estimates ({fmt(min(ms))}): from an earlier run", file=sys.stderr)
    return p


def paired_row(what, name, base_name, note, invert=False):
    p = paired(name)
    if p is None:
        rows.append((what, "—", "—", base_name, "—", note))
        return
    r, q1, q3, mn = p["ratio"], p["q1"], p["q3"], p["min_ratio"]
    if invert:  # report b/a (bytes per second) instead of a/b (time)
        r, q1, q3, mn = 1 / r, 1 / q3, 1 / q1, 1 / mn
    rows.append((what, ns(p["a_ns"]), ns(p["b_ns"]), base_name,
                 f"**{r:.2f}**",
                 f"paired, 31–41 rounds: quartiles {q1:.2f}–{q3:.2f}, ratio of minimums "
                 f"{mn:.2f}; {note}"))


def row(what, measured, baseline, base_name, note=""):
    rows.append((what, ns(measured), ns(baseline), base_name, ratio(measured, baseline), note))


SIZES = [("1", "1"), ("1000", "1K"), ("100000", "100K"), ("1000000", "1M")]
paired_row("GOAL fault-hit lookup, 1M ranges (per 100K lookups)", "lookup_sameorder_1000000",
           "BTreeMap floor lookup, same random insertion order", "goal: ≤ 1.00")
paired_row("GOAL fault-hit lookup, 1M ranges (per 100K lookups)", "lookup_packed_1000000",
           "packed BTreeMap (collect() of sorted input)", "goal: ≤ 1.00")
paired_row("fault-hit lookup, 100K ranges (per 100K lookups)", "lookup_sameorder_100000",
           "BTreeMap floor lookup, same random insertion order", "")
paired_row("fault-hit lookup, 100K ranges (per 100K lookups)", "lookup_packed_100000",
           "packed BTreeMap (collect() of sorted input)", "")
paired_row("GOAL migrate_to_devmem 2M, bytes/s vs memcpy", "migrate_2M", "memcpy of 2M",
           "goal: ≥ 0.80", invert=True)
paired_row("GOAL migrate_to_devmem 32M, bytes/s vs memcpy", "migrate_32M", "memcpy of 32M",
           "goal: ≥ 0.80", invert=True)
for n, label in SIZES:
    core = median(f"lookup/core/{n}")
    bt = median(f"lookup/btreemap/{n}")
    row(f"fault-hit lookup, {label} ranges", core, bt, "BTreeMap floor lookup",
        "goal at 1M: ≤ 1.00" if n == "1000000" else "")
for n, label in SIZES:
    row(f"fault-hit lookup, {label} ranges", median(f"lookup/core/{n}"),
        median(f"lookup/btreemap_packed/{n}"), "packed BTreeMap (collect() of sorted input)")
for n, label in SIZES:
    core = median(f"lookup/core/{n}")
    row(f"fault-hit lookup, {label} ranges", core, median(f"lookup/btreemap_boxed/{n}"),
        "BTreeMap of boxed ranges")
    row(f"fault-hit lookup, {label} ranges", core,
        median(f"lookup/nonoverlapping_interval_tree/{n}"), "nonoverlapping_interval_tree")
    row(f"fault-hit lookup, {label} ranges", core, median(f"lookup/rangemap/{n}"), "rangemap")
    row(f"fault-hit via find_or_insert, {label} ranges",
        median(f"lookup/core_find_or_insert/{n}"), median(f"lookup/btreemap/{n}"),
        "BTreeMap floor lookup")
for n, label in SIZES:
    row(f"find_or_insert of a new 4K range, {label} ranges", median(f"insert/core/{n}"),
        median(f"insert/btreemap/{n}"), "BTreeMap insert")

for k in ["1", "16", "256"]:
    for n, label in SIZES[1:]:
        row(f"invalidate k={k} among {label}", median(f"invalidate/core_k={k}/{n}"),
            median(f"invalidate/btreemap_k={k}/{n}"), "BTreeMap walk + flag clear")
    row(f"invalidate k={k}: 1M vs 1K ranges", median(f"invalidate/core_k={k}/1000000"),
        median(f"invalidate/core_k={k}/1000"), "same k, 1K ranges", "groups anywhere")
    row(f"invalidate k={k}: 1M (groups in a 1K window) vs 1K ranges",
        median(f"invalidate/core_window1k_k={k}/1000000"),
        median(f"invalidate/core_k={k}/1000"), "same k, 1K ranges", "same memory touched")
    paired_row(f"invalidate k={k}: 1M (groups in a 1K window) vs 1K ranges, same groups "
               "(per 128 batches)", f"invalidate_1m_vs_1k_k{k}", "same groups, 1K ranges",
               "same memory touched")
for n, label in SIZES[1:]:
    row(f"invalidate k=256 vs k=1 among {label}", median(f"invalidate/core_k=256/{n}"),
        median(f"invalidate/core_k=1/{n}"), "k=1", "grows with k")

g4 = median("get_pages_2m/core/4k_pages")
g2 = median("get_pages_2m/core/2m_mapping")
row("get_pages 2M, 512 × 4K pages", g4, median("get_pages_2m/floor/4k_pages"),
    "floor: fill pfns + encode 512 entries")
row("get_pages 2M, one 2M mapping", g2, median("get_pages_2m/floor/2m_mapping"),
    "floor: fill pfns + encode 1 entry")
row("get_pages 2M, 512 × 4K vs one 2M", g4, g2, "one 2M mapping")

for size in ["2M", "64M"]:
    for kind in ["contiguous", "fragmented", "holes"]:
        row(f"copy planner {size} {kind}", median(f"plan/planner_{kind}/{size}"),
            median(f"plan/memcpy/{size}"), f"memcpy of {size}", "calls = optimum (asserted)")

for size in ["2M", "32M"]:
    core = median(f"migrate/core_to_vram/{size}")
    mc = median(f"migrate/memcpy/{size}")
    rows.append((f"migrate_to_devmem {size}, zero-cost backends, bytes/s vs memcpy", ns(core),
                 ns(mc), f"memcpy of {size}", ratio(mc, core), "goal ≥ 0.80"))
    rows.append((f"migrate_to_devmem {size}, bytes/s vs the copy engine alone", ns(core),
                 ns(median(f"migrate/engine_only/{size}")), "same 8 MiB copy calls, no core",
                 ratio(median(f"migrate/engine_only/{size}"), core), ""))
    mc8 = median(f"migrate/memcpy_8m_calls/{size}")
    rows.append((f"migrate_to_devmem {size}, bytes/s vs memcpy in 8 MiB calls", ns(core),
                 ns(mc8), f"memcpy of {size} in 8 MiB calls", ratio(mc8, core), ""))

zc = median("sim_faults/zero_cost/2m")
for wl, faults in [("2m_ram", 16), ("2m_vram", 16), ("4k_sparse", 1024)]:
    m = median(f"sim_faults/sim/{wl}")
    note = f"{faults / (m / 1e9):,.0f} faults/s" if m else ""
    rows.append((f"simulator, {faults} faults ({wl})", ns(m), "", "", "", note))
row("core share of a 2M fault (zero-cost backends / simulator 2m_ram)", zc,
    median("sim_faults/sim/2m_ram"), "simulator 2m_ram", "")
mc = median("sim_migrate/memcpy")
for d in ["to_vram", "to_ram"]:
    m = median(f"sim_migrate/{d}")
    gbs = f"{(32 << 20) / m:.2f} GB/s" if m else ""
    # bytes/s ratio = memcpy time / migration time
    rows.append((f"simulator prefetch 32M {d}, bytes/s vs memcpy", ns(m), ns(mc),
                 "memcpy of 32M", ratio(mc, m), gbs))

print("| measurement | median | baseline median | baseline | ratio | note |")
print("|---|---:|---:|---|---:|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
