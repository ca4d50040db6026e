//! What one DynamoDB store handle consumed: the capacity units DynamoDB reports for each of its requests
//! (`ReturnConsumedCapacity = TOTAL`) and the writes DynamoDB cancelled because another transaction
//! held one of their items (`TransactionConflict`). The counters live as long as the handle (one per
//! Lambda instance or server process); tests read them around a request to measure what it costs.

use aws_sdk_dynamodb::types::ConsumedCapacity;
use std::sync::atomic::{AtomicU64, Ordering};

/// DynamoDB reports fractions of a unit (an eventually consistent read of 4 KB costs 0.5): counted in
/// thousandths so the counters stay integers.
const SCALE: f64 = 1000.0;

/// Whether a request's capacity is read or write capacity (a transaction's condition checks are writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Capacity {
    Read,
    Write,
}

#[derive(Debug, Default)]
pub struct Usage {
    read_milli: AtomicU64,
    write_milli: AtomicU64,
    conflicts: AtomicU64,
}

/// The counters at one moment; subtract two to get what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UsageSnapshot {
    pub read_units: f64,
    pub write_units: f64,
    /// Writes cancelled by a conflicting transaction (each is retried, within the request's deadline).
    pub conflicts: u64,
}

impl std::ops::Sub for UsageSnapshot {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            read_units: self.read_units - earlier.read_units,
            write_units: self.write_units - earlier.write_units,
            conflicts: self.conflicts - earlier.conflicts,
        }
    }
}

impl Usage {
    /// Adds what DynamoDB reported for one request.
    pub(super) fn consumed<'a>(&self, kind: Capacity, reported: impl IntoIterator<Item = &'a ConsumedCapacity>) {
        let units: f64 = reported.into_iter().filter_map(ConsumedCapacity::capacity_units).sum();
        // Units are never negative; the cast saturates, and the counters wrap only after 10^16 units.
        let milli = (units * SCALE).round() as u64;
        let counter = match kind {
            Capacity::Read => &self.read_milli,
            Capacity::Write => &self.write_milli,
        };
        counter.fetch_add(milli, Ordering::Relaxed);
    }

    pub(super) fn conflict(&self) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> UsageSnapshot {
        let units = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64 / SCALE;
        UsageSnapshot {
            read_units: units(&self.read_milli),
            write_units: units(&self.write_milli),
            conflicts: self.conflicts.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fractions_per_kind_and_subtracts() {
        let usage = Usage::default();
        let before = usage.snapshot();
        let reported = |u: f64| ConsumedCapacity::builder().capacity_units(u).build();
        usage.consumed(Capacity::Read, [&reported(0.5), &reported(1.0)]);
        usage.consumed(Capacity::Write, Some(&reported(2.0)));
        usage.consumed(Capacity::Write, None);
        usage.conflict();
        let spent = usage.snapshot() - before;
        assert_eq!(
            spent,
            UsageSnapshot {
                read_units: 1.5,
                write_units: 2.0,
                conflicts: 1
            }
        );
    }
}
