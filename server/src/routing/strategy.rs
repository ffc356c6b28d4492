//! Deployment choice within a model group: pure functions, no I/O, no clocks, randomness passed in.

/// LiteLLM's `simple-shuffle`: weighted random among the available deployments, where a deployment's weight is
/// its `weight`, else its `rpm`, else its `tpm`, else 1 (LiteLLM reads them in that order).
///
/// `roll` is uniform in `[0, 1)`. Returns `None` when no deployment is available.
pub fn weighted_pick(weights: &[u64], available: impl Fn(usize) -> bool, roll: f64) -> Option<usize> {
    // Why u128: weights are the config's `rpm`/`tpm` (u64) when `weight` is absent, so their sum can exceed u64
    // (a panic with overflow checks, a wrapped total and a wrong pick without).
    let total: u128 = weights.iter().enumerate().filter(|(i, _)| available(*i)).map(|(_, w)| u128::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut target = (roll.clamp(0.0, 1.0) * total as f64) as u128;
    target = target.min(total - 1);
    for (i, w) in weights.iter().enumerate() {
        if !available(i) {
            continue;
        }
        let w = u128::from(*w);
        if target < w {
            return Some(i);
        }
        target -= w;
    }
    None
}

/// The weight `weighted_pick` uses for one deployment.
pub fn weight_of(weight: Option<u32>, rpm: Option<u64>, tpm: Option<u64>) -> u64 {
    weight.map(u64::from).or(rpm).or(tpm).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_by_weight_and_availability() {
        let all = |_: usize| true;
        let cases: &[(&[u64], &[bool], f64, Option<usize>)] = &[
            (&[1], &[true], 0.0, Some(0)),
            (&[1, 1], &[true, true], 0.49, Some(0)),
            (&[1, 1], &[true, true], 0.51, Some(1)),
            (&[1, 3], &[true, true], 0.24, Some(0)),
            (&[1, 3], &[true, true], 0.26, Some(1)),
            (&[1, 3], &[true, true], 0.999_999, Some(1)),
            (&[1, 3], &[true, true], 1.0, Some(1)),
            (&[1, 3], &[false, true], 0.0, Some(1)),
            (&[1, 3], &[true, false], 0.9, Some(0)),
            (&[1, 3], &[false, false], 0.5, None),
            (&[0, 0], &[true, true], 0.5, None),
            (&[], &[], 0.5, None),
        ];
        for (weights, avail, roll, want) in cases {
            assert_eq!(weighted_pick(weights, |i| avail[i], *roll), *want, "{weights:?} {avail:?} {roll}");
        }
        assert_eq!(weighted_pick(&[5], all, 0.3), Some(0));
    }

    #[test]
    fn weights_summing_past_u64_pick_by_share() {
        // See: issue 12, finding 1 (the config_loader fuzz harness): two `rpm: 18446744073709551615` deployments
        // in one group overflowed the total.
        let all = |_: usize| true;
        assert_eq!(weighted_pick(&[u64::MAX, u64::MAX], all, 0.25), Some(0));
        assert_eq!(weighted_pick(&[u64::MAX, u64::MAX], all, 0.75), Some(1));
        assert_eq!(weighted_pick(&[u64::MAX, 2], all, 0.0), Some(0));
        assert_eq!(weighted_pick(&[u64::MAX, 2], all, 1.0), Some(1));
        assert_eq!(weighted_pick(&[u64::MAX, 1, u64::MAX], |i| i != 0, 0.0), Some(1));
    }

    #[test]
    fn weight_precedence() {
        let cases = [
            (Some(3), Some(100), Some(1000), 3),
            (None, Some(100), Some(1000), 100),
            (None, None, Some(1000), 1000),
            (None, None, None, 1),
        ];
        for (w, rpm, tpm, want) in cases {
            assert_eq!(weight_of(w, rpm, tpm), want);
        }
    }

    #[test]
    fn distribution_follows_weights() {
        let mut counts = [0u32; 2];
        for i in 0..1000 {
            let roll = f64::from(i) / 1000.0;
            if let Some(k) = weighted_pick(&[1, 4], |_| true, roll) {
                counts[k] += 1;
            }
        }
        assert_eq!(counts, [200, 800]);
    }
}
