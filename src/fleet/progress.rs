//! How far an audit has got, for a person watching `kiln audit`: counters
//! the audit advances as accounts and regions finish. The audit never
//! prints; whoever watches reads [`Progress::line`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::text::thousands;

/// Accounts and regions found and done, and instances counted so far.
#[derive(Debug, Default)]
pub struct Progress {
    accounts: AtomicUsize,
    accounts_done: AtomicUsize,
    regions: AtomicUsize,
    regions_done: AtomicUsize,
    instances: AtomicU64,
}

impl Progress {
    /// `n` more accounts to audit.
    pub(super) fn add_accounts(&self, n: usize) {
        self.accounts.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` more regions to audit.
    pub(super) fn add_regions(&self, n: usize) {
        self.regions.fetch_add(n, Ordering::Relaxed);
    }

    /// A region is done, with `instances` counted in it.
    pub(super) fn region_done(&self, instances: u64) {
        self.instances.fetch_add(instances, Ordering::Relaxed);
        self.regions_done.fetch_add(1, Ordering::Relaxed);
    }

    /// An account is done.
    pub(super) fn account_done(&self) {
        self.accounts_done.fetch_add(1, Ordering::Relaxed);
    }

    /// Where the audit stands, in one line:
    /// `accounts 3/10 · regions 40/170 · 12,345 instances`.
    pub fn line(&self) -> String {
        let n = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
        format!(
            "accounts {}/{} · regions {}/{} · {} instances",
            n(&self.accounts_done),
            n(&self.accounts),
            n(&self.regions_done),
            n(&self.regions),
            thousands(self.instances.load(Ordering::Relaxed))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_what_is_done_of_what_was_found() {
        let progress = Progress::default();
        progress.add_accounts(2);
        progress.add_regions(3);
        progress.region_done(1_200);
        progress.region_done(34);
        progress.account_done();
        assert_eq!(
            progress.line(),
            "accounts 1/2 · regions 2/3 · 1,234 instances"
        );
    }
}
