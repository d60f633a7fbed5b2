//! Reading the kernel side's per-CPU counters.

use aya::maps::{MapData, PerCpuArray};
use vigil_common::stats::KernelCounter;

/// Totals over all CPUs, indexed like [`KernelCounter::ALL`].
pub type KernelStats = [u64; KernelCounter::ALL.len()];

/// Sums each counter over CPUs. A counter that cannot be read counts as unchanged (0 here
/// would look like a reset, so the caller keeps its previous value).
pub fn read_kernel_totals(map: &PerCpuArray<MapData, u64>, previous: &KernelStats) -> KernelStats {
    std::array::from_fn(|i| {
        map.get(&(i as u32), 0)
            .map(|values| values.iter().sum())
            .unwrap_or(previous[i])
    })
}
