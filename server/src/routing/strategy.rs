//! Deployment choice within a model group: pure functions, no I/O, no clocks, randomness passed in.
//!
//! `choose` is the one decision: among the available candidates, the lowest `order` tier, then the strategy
//! (LiteLLM's `router_settings.routing_strategy`), with ties and near-ties shared by weight and `roll`.

pub use crate::config::RoutingStrategy as Strategy;

/// What a strategy knows of one deployment, read from its live stats at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Candidate {
    /// Cooling down, over its rpm/tpm cap, or excluded by the caller: never chosen.
    pub available: bool,
    /// `litellm_params.order`: lower tiers first; `None` sorts after every tier (LiteLLM takes the lowest order
    /// among the deployments that declare one, so an undeclared one serves only when none of those can).
    pub order: Option<u32>,
    pub weight: u64,
    pub in_flight: u64,
    /// Moving average of time to first byte (a stream's first event); `None` until the first successful call.
    pub latency: Option<f64>,
    /// Tokens used in the current minute.
    pub minute_tokens: u64,
    /// Input plus output price per token; `None` when the model has no price (chosen after every priced one).
    pub cost_per_token: Option<f64>,
}

/// Whether a deployment with these rpm/tpm caps may take another call this minute.
pub fn under_caps(rpm: Option<u64>, tpm: Option<u64>, minute_requests: u64, minute_tokens: u64) -> bool {
    rpm.is_none_or(|cap| minute_requests < cap) && tpm.is_none_or(|cap| minute_tokens < cap)
}

/// Picks a candidate: the available ones of the lowest `order` tier, then the best by `strategy`, shared by
/// weight (and `roll`, uniform in `[0, 1)`) among equals. `None` when no candidate is available.
pub fn choose(strategy: Strategy, candidates: &[Candidate], roll: f64) -> Option<usize> {
    let tier = candidates.iter().filter(|c| c.available).map(|c| c.order.unwrap_or(u32::MAX)).min()?;
    let in_tier = |c: &Candidate| c.available && c.order.unwrap_or(u32::MAX) == tier;
    let weights: Vec<u64> = candidates.iter().map(|c| c.weight).collect();
    let among = |keep: &dyn Fn(&Candidate) -> bool| {
        weighted_pick(&weights, |i| in_tier(&candidates[i]) && keep(&candidates[i]), roll)
            // Zero weights everywhere: still pick, first come.
            .or_else(|| candidates.iter().position(|c| in_tier(c) && keep(c)))
    };
    let tiered = || candidates.iter().filter(|c| in_tier(c));
    match strategy {
        // Round robin itself needs the group's turn counter (`rules::round_robin`); here, its weighted fallback.
        Strategy::SimpleShuffle | Strategy::WeightedRoundRobin => among(&|_| true),
        Strategy::LeastBusy => {
            let least = tiered().map(|c| c.in_flight).min()?;
            among(&|c| c.in_flight == least)
        }
        Strategy::UsageBased => {
            let least = tiered().map(|c| c.minute_tokens).min()?;
            among(&|c| c.minute_tokens == least)
        }
        Strategy::LatencyBased { buffer } => {
            // Deployments without a sample yet are tried first, so every deployment gets measured.
            if tiered().any(|c| c.latency.is_none()) {
                return among(&|c| c.latency.is_none());
            }
            let best = tiered().filter_map(|c| c.latency).fold(f64::INFINITY, f64::min);
            let limit = best + best * buffer.max(0.0);
            among(&|c| c.latency.is_some_and(|l| l <= limit))
        }
        Strategy::CostBased => {
            let cheapest = tiered().filter_map(|c| c.cost_per_token).fold(f64::INFINITY, f64::min);
            if cheapest.is_finite() {
                among(&|c| c.cost_per_token == Some(cheapest))
            } else {
                among(&|_| true)
            }
        }
    }
}

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

    fn c(order: Option<u32>, weight: u64) -> Candidate {
        Candidate { available: true, order, weight, ..Candidate::default() }
    }

    #[test]
    fn strategies_choose_the_best_available_candidate() {
        let busy = |n| Candidate { in_flight: n, ..c(None, 1) };
        let slow = |l: Option<f64>| Candidate { latency: l, ..c(None, 1) };
        let used = |t| Candidate { minute_tokens: t, ..c(None, 1) };
        let priced = |p: Option<f64>| Candidate { cost_per_token: p, ..c(None, 1) };
        let off = |x: Candidate| Candidate { available: false, ..x };
        let lat = Strategy::LatencyBased { buffer: 0.0 };
        let cases: Vec<(&str, Strategy, Vec<Candidate>, f64, Option<usize>)> = vec![
            ("shuffle low roll", Strategy::SimpleShuffle, vec![c(None, 1), c(None, 3)], 0.1, Some(0)),
            ("shuffle high roll", Strategy::SimpleShuffle, vec![c(None, 1), c(None, 3)], 0.9, Some(1)),
            ("nothing available", Strategy::SimpleShuffle, vec![off(c(None, 1))], 0.5, None),
            ("empty", Strategy::LeastBusy, vec![], 0.5, None),
            ("least busy", Strategy::LeastBusy, vec![busy(2), busy(0), busy(1)], 0.0, Some(1)),
            ("least busy, unavailable skipped", Strategy::LeastBusy, vec![busy(2), off(busy(0))], 0.0, Some(0)),
            ("least busy tie by roll", Strategy::LeastBusy, vec![busy(1), busy(0), busy(0)], 0.9, Some(2)),
            (
                "least busy tie by weight",
                Strategy::LeastBusy,
                vec![busy(0), Candidate { weight: 9, ..busy(0) }],
                0.2,
                Some(1),
            ),
            ("fastest", lat, vec![slow(Some(0.2)), slow(Some(0.02))], 0.0, Some(1)),
            ("unsampled first", lat, vec![slow(Some(0.02)), slow(None)], 0.0, Some(1)),
            ("unsampled but unavailable", lat, vec![slow(Some(0.2)), off(slow(None))], 0.0, Some(0)),
            (
                "outside the buffer",
                Strategy::LatencyBased { buffer: 0.5 },
                vec![slow(Some(0.1)), slow(Some(0.2))],
                0.99,
                Some(0),
            ),
            (
                "within the buffer",
                Strategy::LatencyBased { buffer: 0.5 },
                vec![slow(Some(0.1)), slow(Some(0.14))],
                0.99,
                Some(1),
            ),
            ("least used", Strategy::UsageBased, vec![used(500), used(20), used(40)], 0.0, Some(1)),
            ("least used, unavailable skipped", Strategy::UsageBased, vec![off(used(0)), used(40)], 0.0, Some(1)),
            ("cheapest", Strategy::CostBased, vec![priced(Some(3e-6)), priced(Some(1e-6))], 0.0, Some(1)),
            ("priced before unpriced", Strategy::CostBased, vec![priced(None), priced(Some(1e-3))], 0.0, Some(1)),
            ("all unpriced: by weight", Strategy::CostBased, vec![priced(None), priced(None)], 0.9, Some(1)),
            ("zero weights still pick", Strategy::LeastBusy, vec![c(None, 0), c(None, 0)], 0.5, Some(0)),
        ];
        for (name, strategy, candidates, roll, want) in cases {
            assert_eq!(choose(strategy, &candidates, roll), want, "{name}");
        }
    }

    #[test]
    fn lower_order_tiers_serve_while_any_of_them_is_available() {
        let off = |x: Candidate| Candidate { available: false, ..x };
        let busy = Candidate { in_flight: 9, ..c(Some(1), 1) };
        let cases: Vec<(Vec<Candidate>, Option<usize>)> = vec![
            (vec![c(Some(2), 100), c(Some(1), 1)], Some(1)),
            (vec![c(Some(2), 1), off(c(Some(1), 1))], Some(0)),
            (vec![c(None, 1), c(Some(3), 1)], Some(1)),
            (vec![c(Some(2), 1), busy], Some(1)),
            (vec![off(c(Some(2), 1)), off(c(Some(1), 1))], None),
        ];
        for strategy in [Strategy::SimpleShuffle, Strategy::LeastBusy, Strategy::UsageBased, Strategy::CostBased] {
            for (candidates, want) in &cases {
                for roll in [0.0, 0.5, 0.99] {
                    assert_eq!(choose(strategy, candidates, roll), *want, "{strategy:?} {candidates:?}");
                }
            }
        }
    }

    #[test]
    fn caps_are_per_minute_counts() {
        let cases = [
            (None, None, 1000, 1000, true),
            (Some(5), None, 4, 0, true),
            (Some(5), None, 5, 0, false),
            (None, Some(100), 0, 99, true),
            (None, Some(100), 0, 100, false),
            (Some(5), Some(100), 1, 100, false),
        ];
        for (rpm, tpm, requests, tokens, want) in cases {
            assert_eq!(under_caps(rpm, tpm, requests, tokens), want, "{rpm:?} {tpm:?} {requests} {tokens}");
        }
    }
}
