//! The seed's routing rules as pure decisions over a group's candidates: context-window fit, capability and cost
//! preferences, and smooth weighted round robin. `RoutingTable::pick_for` applies them before the strategy.
//!
//! Contract: no I/O, no clock; the prompt is counted through [`Prompt`], only when a rule needs the count.

use super::strategy::Candidate;

pub use crate::llm::tokens::Encoding;

/// What a request asks of a deployment beyond its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    pub vision: bool,
    pub tools: bool,
    pub long_context: bool,
}

impl Caps {
    /// From the config's capability names (`vision`, `function-calling`, `long-context`; others ignored).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut caps = Self::default();
        for name in names {
            match name {
                "vision" => caps.vision = true,
                "function-calling" | "function_calling" | "tools" => caps.tools = true,
                "long-context" | "long_context" => caps.long_context = true,
                _ => {}
            }
        }
        caps
    }
}

/// A request's prompt, measured lazily: counting tokens costs CPU, so it happens only when a rule needs it.
pub trait Prompt: std::fmt::Debug {
    /// An upper bound on the prompt's tokens under any BPE encoding (its byte length: every token is a byte or more).
    fn upper_bound(&self) -> u64;
    fn tokens(&self, encoding: Encoding) -> u64;
    /// Images and tools in the request (`long_context` is decided here, from the count).
    fn needs(&self) -> Caps;
}

/// What one deployment offers the rules.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Traits {
    /// Input tokens it accepts; `None`: unknown, never excluded.
    pub window: Option<u64>,
    /// The catalog's `max_output_tokens`: the longest answer it can give (bounds a budget reservation).
    pub max_output: Option<u64>,
    pub encoding: Encoding,
    pub caps: Caps,
    /// $ per 1K tokens (`metadata.cost`, else the average of the catalog's prompt and completion price).
    pub cost_per_1k: Option<f64>,
    /// Seconds: `metadata.latency`, the latency strategy's prior until calls are measured.
    pub latency: Option<f64>,
}

/// The table-wide settings of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Settings {
    pub pre_call_checks: bool,
    pub capability_based: bool,
    pub context_threshold: Option<u64>,
    pub cost_threshold: Option<f64>,
}

/// No deployment's window fits the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    /// Counted with the encoding of the deployment with the largest window.
    pub tokens: u64,
    pub largest_window: u64,
}

/// Whether a group's windows make counting worth it: they differ (one prompt can fit some and not others), or a
/// `context_threshold` needs the count. Decided once per group at table build.
pub fn counts_tokens(settings: &Settings, traits: &[Traits]) -> bool {
    if !settings.pre_call_checks {
        return false;
    }
    let first = traits.first().map(|t| t.window);
    settings.context_threshold.is_some() || traits.iter().any(|t| Some(t.window) != first)
}

/// Marks the candidates the request may go to: windows that fit the prompt (hard), then the preferences (soft: each
/// applies only when an available candidate satisfies it): `long-context` for a prompt over some window or over
/// `context_threshold`, what the request needs under `capability_based`, and the price at or under `cost_threshold`.
pub fn restrict(
    settings: &Settings,
    counts_tokens: bool,
    traits: &[Traits],
    candidates: &mut [Candidate],
    prompt: Option<&dyn Prompt>,
) -> Result<(), TooLong> {
    let mut wants = Caps::default();
    if let Some(prompt) = prompt {
        if counts_tokens {
            wants.long_context = fit(settings, traits, candidates, prompt)?;
        }
        if settings.capability_based {
            let needs = prompt.needs();
            wants.vision = needs.vision;
            wants.tools = needs.tools;
        }
    }
    let preferences: [(bool, &dyn Fn(&Traits) -> bool); 4] = [
        (wants.long_context, &|t| t.caps.long_context),
        (wants.vision, &|t| t.caps.vision),
        (wants.tools, &|t| t.caps.tools),
        (
            settings.cost_threshold.is_some(),
            &|t| matches!((t.cost_per_1k, settings.cost_threshold), (Some(c), Some(max)) if c <= max),
        ),
    ];
    for (wanted, has) in preferences {
        if wanted && candidates.iter().zip(traits).any(|(c, t)| c.available && has(t)) {
            for (c, t) in candidates.iter_mut().zip(traits) {
                c.available &= has(t);
            }
        }
    }
    Ok(())
}

/// Excludes the candidates whose window the prompt exceeds; `true` when the prompt is long: over some window, or
/// over `context_threshold`.
fn fit(
    settings: &Settings,
    traits: &[Traits],
    candidates: &mut [Candidate],
    prompt: &dyn Prompt,
) -> Result<bool, TooLong> {
    let bound = prompt.upper_bound();
    let smallest = traits.iter().map(|t| t.window.unwrap_or(u64::MAX)).min().unwrap_or(u64::MAX);
    if bound <= smallest && settings.context_threshold.is_none_or(|t| bound <= t) {
        return Ok(false);
    }
    let mut counted: [Option<u64>; 2] = [None, None];
    let mut count = |e: Encoding| *counted[e as usize].get_or_insert_with(|| prompt.tokens(e));
    let fits: Vec<bool> = traits.iter().map(|t| t.window.is_none_or(|w| count(t.encoding) <= w)).collect();
    if !fits.iter().any(|f| *f) {
        let largest = traits.iter().filter_map(|t| t.window.map(|w| (w, t.encoding))).max_by_key(|(w, _)| *w);
        let (largest_window, encoding) = largest.unwrap_or((0, Encoding::Cl100k));
        return Err(TooLong { tokens: count(encoding), largest_window });
    }
    // A prompt too long for some window is a long prompt: `long-context` deployments are preferred among the rest.
    let too_long_somewhere = fits.iter().any(|f| !f);
    for (c, fits) in candidates.iter_mut().zip(fits) {
        c.available &= fits;
    }
    let long = too_long_somewhere
        || settings.context_threshold.is_some_and(|t| {
            let tokens = counted.iter().flatten().max().copied().unwrap_or_else(|| prompt.tokens(Encoding::Cl100k));
            tokens > t
        });
    Ok(long)
}

/// The longest schedule [`schedule`] builds; larger weight sums are scaled down to it.
const MAX_SCHEDULE: u64 = 10_000;

/// nginx's smooth weighted round robin as a precomputed cycle of candidate indexes: each weight's share, spread out
/// (weights 5:1:1 give a a b a c a a, not a a a a a b c). Zero weights never appear.
pub fn schedule(weights: &[u64]) -> Vec<u32> {
    let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    if total == 0 {
        return Vec::new();
    }
    let scaled: Vec<i64> = if total > u128::from(MAX_SCHEDULE) {
        weights
            .iter()
            .map(|w| if *w == 0 { 0 } else { ((u128::from(*w) * u128::from(MAX_SCHEDULE) / total) as i64).max(1) })
            .collect()
    } else {
        weights.iter().map(|w| *w as i64).collect()
    };
    let divisor = scaled.iter().fold(0, |g, w| gcd(g, *w));
    let weights: Vec<i64> = scaled.iter().map(|w| w / divisor.max(1)).collect();
    let sum: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(sum as usize);
    for _ in 0..sum {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += w;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= sum;
        out.push(best as u32);
    }
    out
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The round-robin pick for the `turn`-th request: the scheduled candidate, else the next scheduled one that is
/// available in the lowest available `order` tier. `None` when the schedule has none.
pub fn round_robin(schedule: &[u32], turn: u64, candidates: &[Candidate]) -> Option<usize> {
    let tier = candidates.iter().filter(|c| c.available).map(|c| c.order.unwrap_or(u32::MAX)).min()?;
    let len = schedule.len() as u64;
    (0..len)
        .map(|k| schedule[((turn + k) % len) as usize] as usize)
        .find(|&i| candidates.get(i).is_some_and(|c| c.available && c.order.unwrap_or(u32::MAX) == tier))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Text {
        bytes: u64,
        tokens: u64,
        needs: Caps,
    }

    impl Prompt for Text {
        fn upper_bound(&self) -> u64 {
            self.bytes
        }
        fn tokens(&self, encoding: Encoding) -> u64 {
            // o200k packs a little tighter, as it does on English text.
            match encoding {
                Encoding::Cl100k => self.tokens,
                Encoding::O200k => self.tokens - self.tokens / 10,
            }
        }
        fn needs(&self) -> Caps {
            self.needs
        }
    }

    fn traits(window: Option<u64>, caps: &[&str], cost: Option<f64>) -> Traits {
        Traits {
            max_output: None,
            window,
            encoding: Encoding::Cl100k,
            caps: Caps::from_names(caps.iter().copied()),
            cost_per_1k: cost,
            latency: None,
        }
    }

    fn available(n: usize) -> Vec<Candidate> {
        vec![Candidate { available: true, weight: 1, ..Candidate::default() }; n]
    }

    fn allowed(c: &[Candidate]) -> Vec<bool> {
        c.iter().map(|c| c.available).collect()
    }

    const CHECKS: Settings =
        Settings { pre_call_checks: true, capability_based: false, context_threshold: None, cost_threshold: None };

    #[test]
    fn windows_decide_who_may_serve() {
        let small = traits(Some(8_000), &[], None);
        let large = traits(Some(200_000), &["long-context"], None);
        let unknown = traits(None, &[], None);
        let prompt = |bytes, tokens| Text { bytes, tokens, needs: Caps::default() };
        // (traits, prompt bytes, prompt tokens, allowed after, or the error)
        type Case = (Vec<Traits>, u64, u64, Result<Vec<bool>, TooLong>);
        let cases: Vec<Case> = vec![
            (vec![small, large], 5_000, 1_200, Ok(vec![true, true])),
            (vec![small, large], 60_000, 7_999, Ok(vec![true, true])),
            (vec![small, large], 60_000, 8_001, Ok(vec![false, true])),
            (vec![small, unknown], 60_000, 9_000, Ok(vec![false, true])),
            (vec![small, large], 900_000, 250_000, Err(TooLong { tokens: 250_000, largest_window: 200_000 })),
            (vec![small, unknown, large], 60_000, 9_000, Ok(vec![false, false, true])),
            (vec![small, unknown, large], 60_000, 10, Ok(vec![true, true, true])),
        ];
        for (t, bytes, tokens, want) in cases {
            let mut c = available(t.len());
            let got = restrict(&CHECKS, counts_tokens(&CHECKS, &t), &t, &mut c, Some(&prompt(bytes, tokens)));
            assert_eq!(got.map(|()| allowed(&c)), want, "{bytes} bytes, {tokens} tokens");
        }
    }

    #[test]
    fn tokens_are_counted_only_when_a_rule_needs_them() {
        #[derive(Debug)]
        struct Uncountable;
        impl Prompt for Uncountable {
            fn upper_bound(&self) -> u64 {
                100
            }
            fn tokens(&self, _: Encoding) -> u64 {
                unreachable!("the byte bound was enough")
            }
            fn needs(&self) -> Caps {
                Caps::default()
            }
        }
        let t = [traits(Some(8_000), &[], None), traits(Some(200_000), &[], None)];
        let mut c = available(2);
        assert_eq!(restrict(&CHECKS, counts_tokens(&CHECKS, &t), &t, &mut c, Some(&Uncountable)), Ok(()));
        let same = [traits(Some(8_000), &[], None), traits(Some(8_000), &[], None)];
        assert!(!counts_tokens(&CHECKS, &same), "equal windows: the upstream's own error says it");
        assert!(counts_tokens(&Settings { context_threshold: Some(10), ..CHECKS }, &same));
        assert!(!counts_tokens(&Settings::default(), &t), "off without pre-call checks");
    }

    #[test]
    fn preferences_apply_only_when_someone_available_satisfies_them() {
        let vision = traits(None, &["vision"], Some(0.03));
        let tools = traits(None, &["function-calling", "long-context"], Some(0.01));
        let plain = traits(None, &[], None);
        let caps = Settings { capability_based: true, context_threshold: Some(1_000), ..CHECKS };
        let ask =
            |vision, tools, tokens| Text { bytes: 50_000, tokens, needs: Caps { vision, tools, long_context: false } };
        // (settings, prompt, unavailable before, allowed after)
        let cases: Vec<(Settings, Text, Vec<usize>, Vec<bool>)> = vec![
            (caps, ask(true, false, 10), vec![], vec![true, false, false]),
            (caps, ask(false, true, 10), vec![], vec![false, true, false]),
            (caps, ask(true, false, 10), vec![0], vec![false, true, true]),
            (caps, ask(false, false, 5_000), vec![], vec![false, true, false]),
            (caps, ask(false, false, 10), vec![], vec![true, true, true]),
            (Settings { capability_based: false, ..caps }, ask(true, false, 10), vec![], vec![true, true, true]),
            (
                Settings { cost_threshold: Some(0.02), ..CHECKS },
                ask(false, false, 10),
                vec![],
                vec![false, true, false],
            ),
            (
                Settings { cost_threshold: Some(0.02), ..CHECKS },
                ask(false, false, 10),
                vec![1],
                vec![true, false, true],
            ),
        ];
        let t = [vision, tools, plain];
        for (i, (settings, prompt, down, want)) in cases.into_iter().enumerate() {
            let mut c = available(3);
            for d in down {
                c[d].available = false;
            }
            assert_eq!(restrict(&settings, counts_tokens(&settings, &t), &t, &mut c, Some(&prompt)), Ok(()));
            assert_eq!(allowed(&c), want, "case {i}");
        }
    }

    #[test]
    fn encodings_follow_the_model_family() {
        for (model, want) in [
            ("gpt-4o-mini", Encoding::O200k),
            ("openai/gpt-4.1", Encoding::O200k),
            ("o3-mini", Encoding::O200k),
            ("gpt-4", Encoding::Cl100k),
            ("gpt-3.5-turbo", Encoding::Cl100k),
            ("claude-3-5-sonnet", Encoding::Cl100k),
        ] {
            assert_eq!(Encoding::for_model(model), want, "{model}");
        }
    }

    #[test]
    fn smooth_weighted_round_robin_spreads_each_share() {
        let cases: &[(&[u64], &[u32])] = &[
            (&[5, 1, 1], &[0, 0, 1, 0, 2, 0, 0]),
            (&[600, 400], &[0, 1, 0, 1, 0]),
            (&[1, 1], &[0, 1]),
            (&[0, 2], &[1]),
            (&[0, 0], &[]),
        ];
        for (weights, want) in cases {
            assert_eq!(schedule(weights), *want, "{weights:?}");
        }
        let huge = schedule(&[u64::MAX / 2, u64::MAX / 4, 1]);
        assert!(huge.len() as u64 <= MAX_SCHEDULE + 2 && huge.contains(&2), "scaled, zero-free: {}", huge.len());
        let share = huge.iter().filter(|i| **i == 0).count() as f64 / huge.len() as f64;
        assert!((share - 2.0 / 3.0).abs() < 0.01, "{share}");
    }

    #[test]
    fn round_robin_skips_unavailable_and_higher_tiers() {
        let s = schedule(&[3, 2]);
        let mut c = available(2);
        let picks: Vec<Option<usize>> = (0..5).map(|n| round_robin(&s, n, &c)).collect();
        assert_eq!(picks.iter().filter(|p| **p == Some(0)).count(), 3);
        c[0].available = false;
        assert!((0..5).all(|n| round_robin(&s, n, &c) == Some(1)));
        c[0].available = true;
        c[1].order = Some(2);
        c[0].order = Some(1);
        assert!((0..5).all(|n| round_robin(&s, n, &c) == Some(0)), "the lower order tier first");
        c[0].available = false;
        c[1].available = false;
        assert_eq!(round_robin(&s, 0, &c), None);
        assert_eq!(round_robin(&[], 0, &available(1)), None);
    }
}
