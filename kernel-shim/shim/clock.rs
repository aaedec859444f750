// SPDX-License-Identifier: GPL-2.0

//! [`gpusvm_core::Clock`] over `jiffies`.

use crate::ext;

/// Milliseconds since boot, from `jiffies` (`jiffies64_to_msecs(get_jiffies_64())`).
#[derive(Clone, Copy, Debug, Default)]
pub struct KClock;

impl gpusvm_core::Clock for KClock {
    fn now_ms(&self) -> u64 {
        // SAFETY: Reading the jiffies counter has no preconditions.
        unsafe { ext::gs_jiffies_ms() }
    }
}
