//! Token buckets per API key and operation: each envelope tokenized or token revealed takes one
//! token from its key's bucket; a request that finds too few is refused whole with the time until
//! enough are back. The buckets live in the process (one set per vault node) and hold only key
//! ids, whose number is bounded by the API keys that exist: an unauthenticated caller never gets
//! a bucket.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::policy::Rate;

/// What a bucket limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Envelopes tokenized.
    Tokenize,
    /// Tokens revealed (plain or masked).
    Reveal,
}

impl Operation {
    /// The name used in policies, errors and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tokenize => "tokenize",
            Self::Reveal => "reveal",
        }
    }
}

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Too few tokens now: retry after this long.
    RetryAfter(Duration),
    /// More items in one request than the bucket ever holds (its burst).
    OverBurst(u32),
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every API key.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(String, Operation), Bucket>>,
}

impl RateLimiter {
    /// Takes `items` tokens from `key_id`'s bucket for `op` shaped by `rate` (`None`: unlimited).
    pub fn take(
        &self,
        key_id: &str,
        op: Operation,
        rate: Option<Rate>,
        items: usize,
    ) -> Result<(), Limited> {
        self.take_at(key_id, op, rate, items, Instant::now())
    }

    fn take_at(
        &self,
        key_id: &str,
        op: Operation,
        rate: Option<Rate>,
        items: usize,
        now: Instant,
    ) -> Result<(), Limited> {
        let Some(rate) = rate else {
            return Ok(());
        };
        let burst = f64::from(rate.burst);
        let per_second = f64::from(rate.per_minute) / 60.0;
        #[allow(clippy::cast_precision_loss)] // a batch is at most a few thousand items
        let wanted = items as f64;
        if wanted > burst {
            return Err(Limited::OverBurst(rate.burst));
        }
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let bucket = buckets.entry((key_id.to_owned(), op)).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            Ok(())
        } else {
            let missing = wanted - bucket.tokens;
            Err(Limited::RetryAfter(Duration::from_secs_f64(
                missing / per_second,
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RATE: Rate = Rate {
        per_minute: 60,
        burst: 10,
    };

    #[test]
    fn bucket_allows_its_burst_then_refills_at_its_rate() {
        let l = RateLimiter::default();
        let t0 = Instant::now();
        let op = Operation::Tokenize;
        assert_eq!(l.take_at("k", op, Some(RATE), 10, t0), Ok(()));
        let Err(Limited::RetryAfter(wait)) = l.take_at("k", op, Some(RATE), 3, t0) else {
            panic!("the empty bucket let a request through");
        };
        assert_eq!(wait.as_secs(), 3);
        // Another key and another operation have buckets of their own.
        assert_eq!(l.take_at("j", op, Some(RATE), 10, t0), Ok(()));
        assert_eq!(
            l.take_at("k", Operation::Reveal, Some(RATE), 10, t0),
            Ok(())
        );
        // One per second comes back, never more than the burst.
        let t3 = t0 + Duration::from_secs(3);
        assert_eq!(l.take_at("k", op, Some(RATE), 3, t3), Ok(()));
        assert!(l.take_at("k", op, Some(RATE), 1, t3).is_err());
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(l.take_at("k", op, Some(RATE), 10, later), Ok(()));
        assert!(l.take_at("k", op, Some(RATE), 1, later).is_err());
    }

    #[test]
    fn over_burst_and_unlimited() {
        let l = RateLimiter::default();
        assert_eq!(
            l.take("k", Operation::Reveal, Some(RATE), 11),
            Err(Limited::OverBurst(10))
        );
        for _ in 0..10_000 {
            assert_eq!(l.take("k", Operation::Reveal, None, 100), Ok(()));
        }
    }
}
