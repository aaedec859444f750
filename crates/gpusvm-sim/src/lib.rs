//! gpusvm-sim: a deterministic userspace simulator for gpusvm-core.

pub mod scenario;
