//! The stopping rule of the Multipath Detection Algorithm (Augustin, Friedman, Teixeira,
//! "Multipath tracing with Paris traceroute", E2EMON 2007; "Measuring load-balanced paths in
//! the Internet", IMC 2007).
//!
//! A vertex whose probes (each with a new flow) have revealed `k` next hops is done once
//! `n_k` of them went through it: if it had `k + 1` next hops, each taken with probability
//! `1 / (k + 1)` (per-flow load balancing spreads flows evenly), then `n_k` probes would all
//! have missed one of them with probability at most `1 − confidence`. So seeing only `k` after
//! `n_k` probes rejects "`k + 1` next hops" with that confidence.
//!
//! ```
//! use edgetrace_probe::{Confidence, mda::stopping_point};
//! let c95 = Confidence::new(95).unwrap();
//! assert_eq!(stopping_point(1, c95), 6); // one next hop seen: 6 probes rule out a second
//! assert_eq!(stopping_point(4, c95), 21);
//! ```

use crate::options::Confidence;

/// `n_k`: the number of probes through a vertex after which, having seen only `k` next hops
/// (`k ≥ 1`; 0 counts as 1), a `(k + 1)`-th is ruled out with the given confidence.
pub fn stopping_point(k: u32, confidence: Confidence) -> u32 {
    let hops = k.max(1) as usize + 1;
    let bound = confidence.failure_bound();
    // seen[j]: the probability that `n` probes, each landing on one of `hops` equally likely
    // next hops, have landed on exactly j distinct ones. Every term is positive, so unlike
    // inclusion–exclusion this stays exact for large k.
    let mut seen = vec![0.0f64; hops + 1];
    seen[0] = 1.0;
    let m = hops as f64;
    let mut n = 0;
    loop {
        n += 1;
        for j in (1..=hops).rev() {
            seen[j] = seen[j] * j as f64 / m + seen[j - 1] * (m - (j - 1) as f64) / m;
        }
        seen[0] = 0.0;
        // Missing at least one of the `hops` next hops after n probes.
        if 1.0 - seen[hops] <= bound {
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(confidence: u64, len: u32) -> Vec<u32> {
        let c = Confidence::new(confidence).unwrap();
        (1..=len).map(|k| stopping_point(k, c)).collect()
    }

    #[test]
    fn the_95_percent_table_of_the_mda_paper() {
        // Augustin et al., IMC 2007, Table 1 (n_1 .. n_16 at 95%).
        assert_eq!(
            table(95, 16),
            [
                6, 11, 16, 21, 27, 33, 38, 44, 51, 57, 63, 70, 76, 83, 90, 96
            ]
        );
    }

    #[test]
    fn k_zero_counts_as_one_and_higher_confidence_costs_more() {
        let c95 = Confidence::new(95).unwrap();
        assert_eq!(stopping_point(0, c95), stopping_point(1, c95));
        // Two next hops, one seen: all n probes on it has probability 2 · 2^-n.
        assert_eq!(table(99, 1), [8]); // 2^-7 = 0.0078 <= 0.01 < 2^-6
        assert_eq!(table(50, 1), [2]); // 2^-1 = 0.5 <= 0.5
        let t99 = table(99, 32);
        let t95 = table(95, 32);
        for k in 0..32 {
            assert!(t99[k] > t95[k], "k={}", k + 1);
            if k > 0 {
                assert!(t95[k] > t95[k - 1], "n_k grows with k");
            }
        }
    }

    #[test]
    fn the_rule_holds_by_simulation() {
        // With k + 1 equally likely next hops, n_k probes miss one at most 5% of the time
        // (checked for k = 1..=4 with a fixed pseudo-random sequence, 20,000 trials each).
        let c95 = Confidence::new(95).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for k in 1..=4u32 {
            let n = stopping_point(k, c95);
            let hops = u64::from(k) + 1;
            let trials = 20_000;
            let mut missed = 0;
            for _ in 0..trials {
                let mut seen = 0u64;
                for _ in 0..n {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    seen |= 1 << ((x >> 33) % hops);
                }
                if seen.count_ones() < hops as u32 {
                    missed += 1;
                }
            }
            let rate = f64::from(missed) / f64::from(trials);
            assert!(rate <= 0.055, "k={k}: n_k={n} missed {rate}");
            // And the bound is tight: by inclusion–exclusion, n_k probes miss one of k + 1
            // next hops with probability at most 5%, n_k − 1 probes with more.
            let miss = |n: u32| -> f64 {
                let m = f64::from(k + 1);
                (1..=k + 1)
                    .map(|i| {
                        let binomial =
                            (0..i).fold(1.0, |b, j| b * (m - f64::from(j)) / f64::from(j + 1));
                        let sign = if i % 2 == 1 { 1.0 } else { -1.0 };
                        sign * binomial * ((m - f64::from(i)) / m).powi(n as i32)
                    })
                    .sum()
            };
            assert!(miss(n) <= 0.05 && miss(n - 1) > 0.05, "k={k}");
        }
    }
}
