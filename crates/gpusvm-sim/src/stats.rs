//! Per-process statistics, named as the scenario format names them.

/// Counters of one process (and its GPU VM).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcStats {
    /// GPU page faults raised.
    pub gpu_faults: u64,
    /// Migrations that moved at least one page to device memory.
    pub migrations_to_vram: u64,
    /// Migrations that moved at least one page to RAM.
    pub migrations_to_ram: u64,
    /// Bytes moved to device memory.
    pub bytes_to_vram: u64,
    /// Bytes moved to RAM.
    pub bytes_to_ram: u64,
    /// Device-memory allocations evicted to RAM (pressure, request, device removal).
    pub evictions: u64,
    /// GPU TLB invalidations.
    pub tlb_invalidations: u64,
    /// Fault-handler retries (collisions, invalid commits, evict-and-retry).
    pub retries: u64,
    /// CPU page faults.
    pub cpu_faults: u64,
    /// CPU faults on device pages.
    pub cpu_device_faults: u64,
    /// MMU-notifier invalidations delivered to the GPU VM.
    pub invalidations: u64,
    /// Ranges created.
    pub ranges_created: u64,
    /// Nanoseconds of wall time spent in the core on GPU faults (measurement only).
    pub core_ns: u64,
}

impl ProcStats {
    /// A counter by its scenario name; `None` for unknown names (the caller adds live values
    /// such as `ranges`, `notifiers`, `dma_mappings`, `vram_bytes`).
    pub fn get(&self, name: &str) -> Option<u64> {
        Some(match name {
            "gpu_faults" => self.gpu_faults,
            "migrations_to_vram" => self.migrations_to_vram,
            "migrations_to_ram" => self.migrations_to_ram,
            "bytes_to_vram" => self.bytes_to_vram,
            "bytes_to_ram" => self.bytes_to_ram,
            "evictions" => self.evictions,
            "tlb_invalidations" => self.tlb_invalidations,
            "retries" => self.retries,
            "cpu_faults" => self.cpu_faults,
            "cpu_device_faults" => self.cpu_device_faults,
            "invalidations" => self.invalidations,
            "ranges_created" => self.ranges_created,
            _ => return None,
        })
    }

    /// Adds another process's counters (for totals).
    pub fn add(&mut self, o: &ProcStats) {
        self.gpu_faults += o.gpu_faults;
        self.migrations_to_vram += o.migrations_to_vram;
        self.migrations_to_ram += o.migrations_to_ram;
        self.bytes_to_vram += o.bytes_to_vram;
        self.bytes_to_ram += o.bytes_to_ram;
        self.evictions += o.evictions;
        self.tlb_invalidations += o.tlb_invalidations;
        self.retries += o.retries;
        self.cpu_faults += o.cpu_faults;
        self.cpu_device_faults += o.cpu_device_faults;
        self.invalidations += o.invalidations;
        self.ranges_created += o.ranges_created;
        self.core_ns += o.core_ns;
    }
}
