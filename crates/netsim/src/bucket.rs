//! A token bucket, as routers rate-limit the ICMP they generate.

use crate::SimTime;

/// `burst` tokens at most, refilled at `per_second`; each ICMP message takes one.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: SimTime,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: f64, burst: u32) -> TokenBucket {
        TokenBucket {
            per_second,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: SimTime::ZERO,
        }
    }

    /// Takes a token at `now` if there is one. Times earlier than the last one seen (packets
    /// overtaking each other through jitter) refill nothing.
    pub fn take(&mut self, now: SimTime) -> bool {
        if now > self.last {
            let elapsed = (now - self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(10.0, 3);
        let t0 = SimTime::ZERO + Duration::from_secs(1);
        assert_eq!((0..5).filter(|_| b.take(t0)).count(), 3, "the burst");
        assert!(!b.take(t0 + Duration::from_millis(50)), "half a token");
        assert!(
            b.take(t0 + Duration::from_millis(100)),
            "one token after 100 ms"
        );
        assert!(!b.take(t0 + Duration::from_millis(100)));
        // A long pause refills to the burst, never beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 3);
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let mut b = TokenBucket::new(1000.0, 1);
        let t = SimTime::ZERO + Duration::from_secs(1);
        assert!(b.take(t));
        assert!(!b.take(t - Duration::from_millis(500)));
        assert!(b.take(t + Duration::from_millis(1)));
    }
}
