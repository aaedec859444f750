//! Benchmark helpers (see `benches/benches/`).
