//! Latency distributions for `vigil bench response`: nearest-rank percentiles of a sample of
//! nanosecond durations, and how to print one.

/// p50/p90/p99/max of a sample (nearest rank: the smallest value with at least p% of the
/// sample at or below it, so every figure is a measured value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    pub n: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    /// `None` for an empty sample.
    pub fn of(mut sample: Vec<u64>) -> Option<Self> {
        sample.sort_unstable();
        Some(Self {
            n: sample.len(),
            p50: nearest_rank(&sample, 50)?,
            p90: nearest_rank(&sample, 90)?,
            p99: nearest_rank(&sample, 99)?,
            max: *sample.last()?,
        })
    }
}

/// The `percent`th percentile of a sorted sample by nearest rank.
fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// A duration for a table cell: `850 µs`, `1.23 ms`, `2.50 s`.
pub fn human(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.0} µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let p = Percentiles::of((1..=100).rev().collect()).expect("a sample");
        assert_eq!(
            p,
            Percentiles {
                n: 100,
                p50: 50,
                p90: 90,
                p99: 99,
                max: 100
            }
        );
        // 200 values: p99 is the 198th, so the two largest are above it.
        let p = Percentiles::of((1..=200).collect()).expect("a sample");
        assert_eq!((p.p50, p.p90, p.p99, p.max), (100, 180, 198, 200));
        // Small samples: every percentile is a measured value.
        let p = Percentiles::of(vec![7, 3]).expect("a sample");
        assert_eq!((p.p50, p.p90, p.p99, p.max), (3, 7, 7, 7));
        let p = Percentiles::of(vec![5]).expect("a sample");
        assert_eq!((p.n, p.p50, p.p99, p.max), (1, 5, 5, 5));
        assert_eq!(Percentiles::of(Vec::new()), None);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(0), "0 ns");
        assert_eq!(human(999), "999 ns");
        assert_eq!(human(850_400), "850 µs");
        assert_eq!(human(1_234_567), "1.23 ms");
        assert_eq!(human(2_500_000_000), "2.50 s");
    }
}
