//! Turns counter totals into `loss` reports of what was lost since the previous report.

use vigil_common::stats::KernelCounter;

use super::{Drop, KernelStats};
use crate::event::Loss;

#[derive(Debug, Default)]
pub struct LossTracker {
    kernel: KernelStats,
    user: [u64; Drop::ALL.len()],
}

impl LossTracker {
    /// Compares with the previous totals; returns the losses since then, if any.
    pub fn update(&mut self, kernel: KernelStats, user: [u64; Drop::ALL.len()]) -> Option<Loss> {
        let mut counts = Vec::new();
        for (i, counter) in KernelCounter::ALL.iter().enumerate() {
            let delta = kernel[i].saturating_sub(self.kernel[i]);
            if counter.is_loss() && delta > 0 {
                counts.push((counter.name(), delta));
            }
        }
        for (i, cause) in Drop::ALL.iter().enumerate() {
            let delta = user[i].saturating_sub(self.user[i]);
            if delta > 0 {
                counts.push((cause.name(), delta));
            }
        }
        self.kernel = kernel;
        self.user = user;
        (!counts.is_empty()).then_some(Loss { counts })
    }

    /// The last kernel totals seen.
    pub fn kernel_totals(&self) -> &KernelStats {
        &self.kernel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_moved_loss_counters_once() {
        let mut tracker = LossTracker::default();
        let mut kernel = [0; KernelCounter::ALL.len()];
        kernel[KernelCounter::SubmittedExec as usize] = 100;
        assert_eq!(tracker.update(kernel, [0; Drop::ALL.len()]), None);

        kernel[KernelCounter::RingbufFullExec as usize] = 3;
        let mut user = [0; Drop::ALL.len()];
        user[Drop::QueueFullFork as usize] = 2;
        let loss = tracker.update(kernel, user).expect("losses moved");
        assert_eq!(
            loss.counts,
            [("ringbuf_full_exec", 3), ("queue_full_fork", 2)]
        );
        assert_eq!(loss.total(), 5);

        assert_eq!(tracker.update(kernel, user), None);
    }
}
