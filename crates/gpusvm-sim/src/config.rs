//! Simulation parameters (the scenario `config` keys, and the CLI's options).

const K: u64 = 1024;
const M: u64 = 1024 * K;

/// Parameters of one simulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Base page size (4 KiB: the simulator models x86-64).
    pub page: u64,
    /// Range chunk sizes, largest first.
    pub chunks: Vec<u64>,
    /// Notifier window size.
    pub notifier: u64,
    /// VRAM per device, bytes.
    pub vram: u64,
    /// Number of GPUs.
    pub devices: u32,
    /// `check_pages_threshold` of the fault context.
    pub check_pages_threshold: u64,
    /// Ranges at least this large migrate to VRAM on a GPU fault (Xe: 64K).
    pub migrate_min: u64,
    /// Device residency after an atomic-driven migration (Xe: 5 ms), doubled per retry.
    pub atomic_timeslice_ms: u64,
    /// Seed for anything random.
    pub seed: u64,
    /// Split partially unmapped ranges instead of destroying them.
    pub range_split: bool,
    /// Give each device its own device-private owner (no peer access in place).
    pub separate_owners: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            page: 4 * K,
            chunks: vec![2 * M, 64 * K, 4 * K],
            notifier: 512 * M,
            vram: 256 * M,
            devices: 1,
            check_pages_threshold: 64 * K,
            migrate_min: 64 * K,
            atomic_timeslice_ms: 5,
            seed: 1,
            range_split: true,
            separate_owners: false,
        }
    }
}

impl SimConfig {
    /// Checks values the simulation cannot run with.
    ///
    /// # Errors
    ///
    /// A message naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.page != 4 * K {
            return Err(format!(
                "page={} is not supported: the simulator models 4K pages",
                self.page
            ));
        }
        if self.devices == 0 || self.devices > 8 {
            return Err(format!("devices={} must be 1..=8", self.devices));
        }
        if !self.vram.is_multiple_of(self.page) {
            return Err("vram must be a multiple of the page size".into());
        }
        if !self.notifier.is_power_of_two() || self.notifier < self.page {
            return Err("notifier must be a power of two of at least a page".into());
        }
        let mut prev = u64::MAX;
        for &c in &self.chunks {
            if !c.is_power_of_two() || c < self.page || c >= prev || c > self.notifier {
                return Err(
                    "chunks must be descending powers of two between the page and notifier sizes"
                        .into(),
                );
            }
            prev = c;
        }
        if self.chunks.is_empty() {
            return Err("chunks must not be empty".into());
        }
        Ok(())
    }
}
