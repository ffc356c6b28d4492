//! The immutable routing snapshot: model groups and their deployments, rebuilt on start and on reload and
//! published through `ArcSwap`. The request path reads it without locks or messages.
//!
//! Contract: no I/O and no clock reads. The price catalog arrives loaded, the environment through `EnvLookup`,
//! and the time through `now_ms` arguments.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use actix::Recipient;

use super::{
    rules::{self, Caps, Encoding, Prompt, Traits},
    stats::{DeploymentStats, ReportFailure},
    strategy::{self, Candidate, Strategy},
};
use crate::{
    config::{Config, ConfigError, EnvLookup, GroupRetry, RetrySettings},
    error::ApiError,
    llm::PerClass,
    pricing::{self, Catalog, Pricing},
    providers::Provider,
};

/// One deployment of a model group, as the request path sees it.
#[derive(Debug)]
pub struct Deployment {
    /// Safe to show callers (`x-tollgate-deployment`): `model_info.id` or `<model_name>#<index>`.
    pub id: String,
    pub model_group: String,
    pub provider: Provider,
    /// `provider.endpoint()`, built once: every call's log record names it.
    pub api_base: String,
    pub upstream_model: String,
    /// The whole of a non-streaming call (`timeout`).
    pub timeout: Duration,
    /// A streaming call's start to its first event (`stream_timeout`).
    pub stream_timeout: Duration,
    /// The longest pause between a stream's chunks after its first event (`stream_idle_timeout`).
    pub stream_idle_timeout: Duration,
    /// Parameters the provider cannot take are dropped instead of refused.
    pub drop_params: bool,
    /// `model_info.mode: embedding`: health checks send one short embedding instead of a 1-token chat.
    pub embedding: bool,
    /// `router_settings.allowed_fails_policy`: which failures the settlement reports to the worker
    /// (`routing::circuit::counts`).
    pub allowed_fails_policy: PerClass,
    pub weight: u64,
    /// `litellm_params.order`: the priority tier (lowest first).
    pub order: Option<u32>,
    /// Calls and tokens per minute; at either cap the deployment is unavailable until the next minute.
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub pricing: Pricing,
    pub stats: Arc<DeploymentStats>,
    /// The deployment's worker; `None` only in tables built for `check-config`.
    pub worker: Option<Recipient<ReportFailure>>,
}

#[derive(Debug, Default)]
pub struct ModelGroup {
    pub deployments: Vec<Arc<Deployment>>,
    /// Per deployment, what the seed's rules read (window, capabilities, cost).
    pub traits: Vec<Traits>,
    /// Per deployment, its weight in this group: its own, or in a model shared by several names its share by
    /// `router.weights`.
    pub weights: Vec<u64>,
    /// The weighted round robin's cycle of deployment indexes, and the number of turns taken.
    schedule: Vec<u32>,
    turn: AtomicU64,
    /// Whether a prompt's tokens may need counting (see `rules::counts_tokens`).
    counts_tokens: bool,
    /// `fallback_config` retries, instead of `num_retries` and backoff.
    pub retry: Option<GroupRetry>,
}

impl ModelGroup {
    fn push(&mut self, deployment: Arc<Deployment>, traits: Traits, weight: u64) {
        self.deployments.push(deployment);
        self.traits.push(traits);
        self.weights.push(weight);
    }
}

#[derive(Debug, Default)]
pub struct RoutingTable {
    /// foldhash, not std's SipHash: looked up on every request, by names the config holds (it is seeded per process too).
    groups: foldhash::HashMap<String, ModelGroup>,
    /// Retries and fallbacks, part of the snapshot so a reload changes them with the deployments.
    pub retries: RetrySettings,
    /// `router_settings.routing_strategy`.
    pub strategy: Strategy,
    /// `router_settings.hedge_after_ms`, by model group.
    hedge_after: foldhash::HashMap<String, Duration>,
    /// `general_settings.background_health_checks`: workers probe their deployments, and `GET /health` answers
    /// from their latest results instead of probing when asked.
    pub background_health_checks: bool,
    /// Group names in config order, for `/v1/models`, then the models several names serve by `router.weights`.
    names: Vec<String>,
    /// The seed's rules (context windows, capabilities, cost threshold).
    pub rules: rules::Settings,
}

impl RoutingTable {
    /// Resolves every deployment against `catalog`; `attach` gives each one its live stats and worker (the
    /// router starts workers, handing a worker the provider when it has credentials to refresh).
    pub fn build(
        config: &Config,
        env: &dyn EnvLookup,
        catalog: &Catalog,
        attach: impl FnMut(&str, &Arc<DeploymentStats>, &Provider) -> Option<Recipient<ReportFailure>>,
    ) -> Result<Self, ConfigError> {
        Self::rebuild(config, env, catalog, None, attach)
    }

    /// Like [`RoutingTable::build`], keeping the live stats (latency, counters, cooldown) of every deployment of
    /// `previous` that is unchanged: same id, provider, upstream model and endpoint. A reload then neither forgets
    /// a deployment's cooldown nor resets its counters.
    pub fn rebuild(
        config: &Config,
        env: &dyn EnvLookup,
        catalog: &Catalog,
        previous: Option<&RoutingTable>,
        mut attach: impl FnMut(&str, &Arc<DeploymentStats>, &Provider) -> Option<Recipient<ReportFailure>>,
    ) -> Result<Self, ConfigError> {
        let seed = &config.router.rules;
        let mut table = Self {
            retries: config.router.retries.clone(),
            strategy: config.router.strategy,
            rules: rules::Settings {
                pre_call_checks: seed.pre_call_checks,
                capability_based: seed.capability_based,
                context_threshold: seed.context_threshold,
                cost_threshold: seed.cost_threshold,
            },
            hedge_after: config.router.hedge_after.iter().map(|(g, d)| (g.clone(), *d)).collect(),
            background_health_checks: config.health_checks.background_interval.is_some(),
            ..Self::default()
        };
        for d in &config.deployments {
            let (provider, upstream_model) = Provider::resolve(d, env)?;
            let priced_as = d.base_model.as_deref().unwrap_or(&upstream_model);
            let (input, output) = match provider {
                // The built-in mock costs nothing unless the config gives it prices (to demo spend tracking).
                Provider::Mock(_) => (d.input_cost_per_token.or(Some(0.0)), d.output_cost_per_token.or(Some(0.0))),
                Provider::OpenAi(_) | Provider::Native(_) => (d.input_cost_per_token, d.output_cost_per_token),
            };
            let pricing = pricing::resolve(catalog, provider.name(), priced_as, input, output);
            let kept = previous.and_then(|p| p.deployments().find(|old| old.id == d.id)).filter(|old| {
                old.provider.name() == provider.name()
                    && old.upstream_model == upstream_model
                    && old.api_base == provider.endpoint()
            });
            let stats = kept.map_or_else(Arc::default, |old| old.stats.clone());
            let worker = attach(&d.id, &stats, &provider);
            let given = seed.traits.get(&d.id).cloned().unwrap_or_default();
            let traits = Traits {
                window: given.window.or_else(|| pricing::context_window(provider.name(), priced_as)),
                max_output: pricing::max_output_tokens(provider.name(), priced_as),
                encoding: Encoding::for_model(&upstream_model),
                caps: Caps::from_names(given.capabilities.iter().map(String::as_str)),
                cost_per_1k: given.cost_per_1k.or(match pricing {
                    Pricing::Priced(p) => Some((p.input_cost_per_token + p.output_cost_per_token) / 2.0 * 1000.0),
                    Pricing::Unpriced => None,
                }),
                latency: given.latency_ms.map(|ms| ms / 1000.0),
            };
            let deployment = Deployment {
                id: d.id.clone(),
                model_group: d.model_name.clone(),
                api_base: provider.endpoint(),
                provider,
                upstream_model,
                timeout: d.timeout,
                stream_timeout: d.stream_timeout,
                stream_idle_timeout: d.stream_idle_timeout,
                drop_params: d.drop_params,
                embedding: config.health_checks.embedding.contains(&d.id),
                allowed_fails_policy: config.router.allowed_fails_policy,
                weight: strategy::weight_of(d.weight, d.rpm, d.tpm),
                order: config.router.order.get(&d.id).copied(),
                rpm: d.rpm,
                tpm: d.tpm,
                pricing,
                stats,
                worker,
            };
            if !table.groups.contains_key(&d.model_name) {
                table.names.push(d.model_name.clone());
            }
            let weight = deployment.weight;
            let group = table.groups.entry(d.model_name.clone()).or_default();
            group.push(Arc::new(deployment), traits, weight);
        }
        table.add_shared_models(&seed.weights);
        for (name, group) in &mut table.groups {
            group.schedule = rules::schedule(&group.weights);
            group.counts_tokens = rules::counts_tokens(&table.rules, &group.traits);
            group.retry = seed.group_retries.get(name).copied();
            if group.counts_tokens {
                // Start-up and reload pay for the vocabularies, not the first long prompt.
                group.traits.iter().for_each(|t| crate::llm::tokens::warm(t.encoding));
            }
        }
        Ok(table)
    }

    /// The seed's regional weights: the names in `weights` whose deployments serve one upstream model also serve
    /// it under that model's own name (unless a group has that name), each deployment weighted by its name's share
    /// (and its own weight within its name).
    fn add_shared_models(&mut self, weights: &BTreeMap<String, f64>) {
        /// Shares are fractions; this makes them integer weights with three significant digits to spare.
        const SCALE: f64 = 1_000_000.0;
        let mut shared: BTreeMap<String, (ModelGroup, Vec<String>)> = BTreeMap::new();
        // Config order, so the round robin's cycle starts with the first name listed in model_list.
        for name in &self.names {
            let (Some(share), Some(group)) = (weights.get(name), self.groups.get(name)) else { continue };
            let own: u64 = group.weights.iter().sum::<u64>().max(1);
            for (i, d) in group.deployments.iter().enumerate() {
                let (virtual_group, names) = shared.entry(d.upstream_model.clone()).or_default();
                let weight = (share * SCALE * group.weights[i] as f64 / own as f64).round().max(1.0) as u64;
                virtual_group.push(d.clone(), group.traits[i], weight);
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        for (model, (group, names)) in shared {
            if names.len() >= 2 && !self.groups.contains_key(&model) {
                self.names.push(model.clone());
                self.groups.insert(model, group);
            }
        }
    }

    pub fn model_names(&self) -> &[String] {
        &self.names
    }

    /// How long a call of `group` may go without a first byte before the request is hedged, if it is.
    pub fn hedge_after(&self, group: &str) -> Option<Duration> {
        self.hedge_after.get(group).copied()
    }

    pub fn group(&self, name: &str) -> Option<&ModelGroup> {
        self.groups.get(name)
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.names.iter().filter_map(|n| self.groups.get(n)).flat_map(|g| g.deployments.iter())
    }

    /// Deployments no price is known for, to be warned about once per model when the table is published.
    pub fn unpriced(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.deployments().filter(|d| d.pricing == Pricing::Unpriced)
    }

    /// One warning per deployment that sends its API key over plain `http://` to another machine. Names the
    /// deployment and host, never the key.
    pub fn cleartext_key_warnings(&self) -> Vec<String> {
        self.deployments()
            .filter_map(|d| {
                let host = d.provider.cleartext_key_host()?;
                Some(format!(
                    "deployment `{}` sends its API key over plain http:// to `{host}`, which is not this machine: \
                     anyone on that network path can read the key; use https:// unless the network is trusted",
                    d.id
                ))
            })
            .collect()
    }

    /// Picks a deployment of `model` by the table's strategy, skipping those cooling down or at their rpm/tpm cap
    /// at `now` (`clock::monotonic_ms`) and, while any other is available, those already `tried` by this request
    /// (ids). `roll` is uniform in `[0, 1)`.
    pub fn pick(&self, model: &str, roll: f64, now: u64, tried: &[String]) -> Result<&Arc<Deployment>, ApiError> {
        self.pick_for(model, None, roll, now, tried)
    }

    /// [`RoutingTable::pick`] for a request whose `prompt` the seed's rules may read: deployments whose context
    /// window it exceeds are skipped (none fits: `context_length_exceeded`), and those offering what it needs
    /// preferred.
    pub fn pick_for(
        &self,
        model: &str,
        prompt: Option<&dyn Prompt>,
        roll: f64,
        now: u64,
        tried: &[String],
    ) -> Result<&Arc<Deployment>, ApiError> {
        let group = self.groups.get(model).ok_or_else(|| ApiError::ModelNotFound(model.to_owned()))?;
        let mut candidates = self.candidates(group, prompt, now).map_err(|e| ApiError::ContextWindowExceeded {
            model: model.to_owned(),
            tokens: e.tokens,
            window: e.largest_window,
        })?;
        let turn = match self.strategy {
            Strategy::WeightedRoundRobin => group.turn.fetch_add(1, Relaxed),
            _ => 0,
        };
        let choose = |candidates: &[Candidate]| match self.strategy {
            Strategy::WeightedRoundRobin => rules::round_robin(&group.schedule, turn, candidates)
                .or_else(|| strategy::choose(self.strategy, candidates, roll)),
            other => strategy::choose(other, candidates, roll),
        };
        let mut healthy: Vec<bool> = candidates.iter().map(|c| c.available).collect();
        for (c, d) in candidates.iter_mut().zip(&group.deployments) {
            c.available &= !tried.contains(&d.id);
        }
        // A deployment whose probe another request claimed in the meantime is passed over; each pass claims or
        // excludes one, so this ends.
        let mut pick = None;
        for _ in 0..=candidates.len() {
            let chosen = choose(&candidates).or_else(|| {
                // Every healthy deployment was tried: any healthy one.
                for (c, healthy) in candidates.iter_mut().zip(&healthy) {
                    c.available = *healthy;
                }
                choose(&candidates)
            });
            match chosen {
                Some(i) if !group.deployments[i].stats.claim() => {
                    candidates[i].available = false;
                    if let Some(h) = healthy.get_mut(i) {
                        *h = false;
                    }
                }
                other => {
                    pick = other;
                    break;
                }
            }
        }
        match pick {
            Some(i) => Ok(&group.deployments[i]),
            None => Err(ApiError::NoHealthyDeployment {
                model: model.to_owned(),
                retry_after_secs: group.deployments.iter().map(|d| wait_secs(d, now)).min().unwrap_or(1).max(1),
            }),
        }
    }
}

impl RoutingTable {
    /// Whether the next pick for a request that `tried` these deployments must repeat one (no healthy deployment
    /// of `model` is left untried). Claims nothing.
    pub fn repeats(&self, model: &str, now: u64, tried: &[String]) -> bool {
        self.repeats_for(model, None, now, tried)
    }

    /// [`RoutingTable::repeats`] for a request whose `prompt` the rules read: a deployment the prompt does not fit
    /// (or that a preference passes over) is not one a retry could go to.
    pub fn repeats_for(&self, model: &str, prompt: Option<&dyn Prompt>, now: u64, tried: &[String]) -> bool {
        let Some(group) = self.groups.get(model) else { return true };
        let Ok(candidates) = self.candidates(group, prompt, now) else { return true };
        !group.deployments.iter().zip(&candidates).any(|(d, c)| c.available && !tried.contains(&d.id))
    }

    /// What the strategies know of each deployment of `group` at `now`, in this group (its weights) and with the
    /// seed's rules applied for `prompt`.
    fn candidates(
        &self,
        group: &ModelGroup,
        prompt: Option<&dyn Prompt>,
        now: u64,
    ) -> Result<Vec<Candidate>, rules::TooLong> {
        let mut candidates: Vec<Candidate> = (group.deployments.iter().zip(&group.traits).zip(&group.weights))
            .map(|((d, t), w)| Candidate {
                weight: *w,
                latency: d.stats.latency().or(t.latency),
                // A blended price p per token is p for prompt and p for completion.
                cost_per_token: t.cost_per_1k.map(|c| 2.0 * c / 1000.0),
                ..candidate(d, now)
            })
            .collect();
        rules::restrict(&self.rules, group.counts_tokens, &group.traits, &mut candidates, prompt)?;
        Ok(candidates)
    }
}

/// What the strategies know of `d` at `now`, read from its atomics.
fn candidate(d: &Deployment, now: u64) -> Candidate {
    let (minute_requests, minute_tokens) = d.stats.minute_usage(now);
    Candidate {
        available: d.stats.admits(now) && strategy::under_caps(d.rpm, d.tpm, minute_requests, minute_tokens),
        order: d.order,
        weight: d.weight,
        in_flight: d.stats.in_flight.load(Relaxed),
        latency: d.stats.latency(),
        minute_tokens,
        cost_per_token: match d.pricing {
            Pricing::Priced(p) => Some(p.input_cost_per_token + p.output_cost_per_token),
            Pricing::Unpriced => None,
        },
    }
}

/// Seconds until `d` may serve again: the rest of its cooldown, or of the minute when it is at a cap.
fn wait_secs(d: &Deployment, now: u64) -> u64 {
    let (requests, tokens) = d.stats.minute_usage(now);
    let cap_wait =
        if strategy::under_caps(d.rpm, d.tpm, requests, tokens) { 0 } else { (60_000 - now % 60_000).div_ceil(1000) };
    d.stats.cooldown_left_secs(now).max(cap_wait)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn table(yaml: &str) -> RoutingTable {
        let env = |_: &str| None;
        let config = Config::load_str(yaml, &env).unwrap_or_else(|e| unreachable!("{e}"));
        RoutingTable::build(&config, &env, pricing::vendored(), |_, _, _| None).unwrap_or_else(|e| unreachable!("{e}"))
    }

    const NOW: u64 = 1_000_000;

    #[test]
    fn groups_deployments_by_model_name_in_config_order() {
        let t = table(
            "model_list:\n  - {model_name: b, litellm_params: {model: mock/x}}\n  - {model_name: a, litellm_params: {model: mock/y, weight: 3}}\n  - {model_name: b, litellm_params: {model: mock/z}}\n",
        );
        assert_eq!(t.model_names(), ["b", "a"]);
        assert_eq!(t.group("b").map(|g| g.deployments.len()), Some(2));
        assert_eq!(t.group("a").map(|g| g.deployments[0].weight), Some(3));
        assert!(matches!(t.pick("nope", 0.0, NOW, &[]), Err(ApiError::ModelNotFound(_))));
        assert_eq!(t.pick("b", 0.9, NOW, &[]).map(|d| d.id.as_str()).ok(), Some("b#2"));
    }

    #[test]
    fn skips_cooling_deployments_and_reports_when_none_left() {
        let t = table("model_list:\n  - {model_name: a, litellm_params: {model: mock/x}}\n  - {model_name: a, litellm_params: {model: mock/y}}\n");
        let group = t.group("a").map(|g| g.deployments.clone()).unwrap_or_default();
        group[0].stats.cooldown_until_ms.store(NOW + 60_000, Ordering::Relaxed);
        for roll in [0.0, 0.3, 0.99] {
            assert_eq!(t.pick("a", roll, NOW, &[]).map(|d| d.id.as_str()).ok(), Some("a#1"));
        }
        group[1].stats.cooldown_until_ms.store(NOW + 3_000, Ordering::Relaxed);
        match t.pick("a", 0.5, NOW, &[]) {
            Err(ApiError::NoHealthyDeployment { retry_after_secs, .. }) => assert_eq!(retry_after_secs, 3),
            other => unreachable!("{other:?}"),
        }
    }

    #[test]
    fn a_rebuild_keeps_the_stats_of_unchanged_deployments_only() {
        let env = |_: &str| None;
        let load = |yaml: &str| Config::load_str(yaml, &env).unwrap_or_else(|e| unreachable!("{e}"));
        let before = load("model_list:\n  - {model_name: a, litellm_params: {model: mock/x}}\n  - {model_name: b, litellm_params: {model: mock/y}}\n");
        let old = RoutingTable::build(&before, &env, pricing::vendored(), |_, _, _| None)
            .unwrap_or_else(|e| unreachable!("{e}"));
        if let Some(g) = old.group("a") {
            g.deployments[0].stats.cooldown_until_ms.store(NOW + 5_000, Ordering::Relaxed);
        }
        // `a` unchanged, `b` now a different model, `c` new.
        let after = load("model_list:\n  - {model_name: a, litellm_params: {model: mock/x}}\n  - {model_name: b, litellm_params: {model: mock/z}}\n  - {model_name: c, litellm_params: {model: mock/x}}\n");
        let new = RoutingTable::rebuild(&after, &env, pricing::vendored(), Some(&old), |_, _, _| None)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let stats = |t: &RoutingTable, g: &str| t.group(g).map(|g| g.deployments[0].stats.clone());
        let same = |g: &str| match (stats(&old, g), stats(&new, g)) {
            (Some(a), Some(b)) => Arc::ptr_eq(&a, &b),
            _ => false,
        };
        assert!(same("a") && !same("b"), "kept only for the unchanged deployment");
        assert!(new.group("a").is_some_and(|g| g.deployments[0].stats.is_cooling_down(NOW)), "its cooldown too");
        assert!(!new.group("c").is_some_and(|g| g.deployments[0].stats.is_cooling_down(NOW)));
    }

    #[test]
    fn after_a_cooldown_one_call_probes_before_traffic_returns() {
        use crate::routing::stats::{PROBE_DUE, PROBE_RUNNING};
        let t = table("model_list:\n  - {model_name: a, litellm_params: {model: mock/x}}\n  - {model_name: a, litellm_params: {model: mock/y}}\n");
        let group = t.group("a").map(|g| g.deployments.clone()).unwrap_or_default();
        let probe = |i: usize| group[i].stats.probe.load(Ordering::Relaxed);
        // The worker's cooldown has ended; a probe is due.
        group[0].stats.cooldown_until_ms.store(NOW - 1, Ordering::Relaxed);
        group[0].stats.probe.store(PROBE_DUE, Ordering::Relaxed);
        let picked = |roll| t.pick("a", roll, NOW, &[]).map(|d| d.id.clone()).ok();
        assert_eq!(picked(0.0), Some("a#0".into()), "the first call goes: it is the probe");
        assert_eq!(probe(0), PROBE_RUNNING);
        for roll in [0.0, 0.4, 0.9] {
            assert_eq!(picked(roll), Some("a#1".into()), "nothing else while the probe runs");
        }
        assert!(t.repeats("a", NOW, &["a#1".to_owned()]), "the probing deployment is not available to a retry");
        group[0].stats.probe_done(false);
        assert_eq!(probe(0), PROBE_DUE, "a failed probe: the next call probes again (after the worker's cooldown)");
        assert_eq!(picked(0.0), Some("a#0".into()));
        group[0].stats.probe_done(true);
        assert_eq!(probe(0), 0, "a healthy probe closes the circuit");
        assert_eq!(picked(0.0), Some("a#0".into()));
        assert_eq!(picked(0.0), Some("a#0".into()), "traffic again, no probe");
    }

    #[test]
    fn prefers_deployments_the_request_has_not_tried() {
        let t = table("model_list:\n  - {model_name: a, litellm_params: {model: mock/x}}\n  - {model_name: a, litellm_params: {model: mock/y}}\n");
        let tried = ["a#0".to_owned()];
        for roll in [0.0, 0.3, 0.99] {
            assert_eq!(t.pick("a", roll, NOW, &tried).map(|d| d.id.as_str()).ok(), Some("a#1"));
        }
        let both = ["a#0".to_owned(), "a#1".to_owned()];
        assert_eq!(t.pick("a", 0.0, NOW, &both).map(|d| d.id.as_str()).ok(), Some("a#0"), "all tried: any healthy one");
    }

    #[test]
    fn the_strategy_reads_each_deployments_price_caps_and_order() {
        let t = table(
            "router_settings: {routing_strategy: cost-based-routing}\nmodel_list:\n  - {model_name: a, litellm_params: {model: mock/x, order: 1, input_cost_per_token: 0.002, output_cost_per_token: 0.002}}\n  - {model_name: a, litellm_params: {model: mock/y, order: 1, rpm: 2, input_cost_per_token: 0.001, output_cost_per_token: 0.001}}\n  - {model_name: a, litellm_params: {model: mock/z, order: 2, input_cost_per_token: 0.5, output_cost_per_token: 0.5}}\n",
        );
        let pick = |now| t.pick("a", 0.5, now, &[]).map(|d| d.id.clone()).unwrap_or_default();
        let group = t.group("a").map(|g| g.deployments.clone()).unwrap_or_default();
        assert_eq!(group[2].order, Some(2));
        assert_eq!(pick(NOW), "a#1", "the cheapest of order 1");
        group[1].stats.count_minute_request(NOW);
        group[1].stats.count_minute_request(NOW);
        assert_eq!(pick(NOW), "a#0", "the cheapest is at its rpm for this minute");
        assert_eq!(pick(NOW + 60_000), "a#1", "a new minute");
        group[0].stats.cooldown_until_ms.store(NOW + 60_000, Ordering::Relaxed);
        assert_eq!(pick(NOW), "a#2", "only the higher order is left");
        group[2].stats.cooldown_until_ms.store(NOW + 60_000, Ordering::Relaxed);
        match t.pick("a", 0.5, NOW, &[]) {
            Err(ApiError::NoHealthyDeployment { retry_after_secs, .. }) => {
                assert_eq!(retry_after_secs, (60_000 - NOW % 60_000).div_ceil(1000), "the rest of the minute");
            }
            other => unreachable!("{other:?}"),
        }
    }

    #[test]
    fn text_completion_models_resolve_to_their_dialect_and_price() {
        let env = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk-test".to_owned());
        for model in ["gpt-3.5-turbo-instruct", "text-completion-openai/gpt-3.5-turbo-instruct"] {
            let yaml = format!("model_list:\n  - {{model_name: a, litellm_params: {{model: {model}}}}}\n");
            let config = Config::load_str(&yaml, &env).unwrap_or_else(|e| unreachable!("{e}"));
            let t = RoutingTable::build(&config, &env, pricing::vendored(), |_, _, _| None)
                .unwrap_or_else(|e| unreachable!("{model}: {e}"));
            let d = t.deployments().next().cloned().unwrap_or_else(|| unreachable!());
            assert_eq!(
                (d.provider.name(), d.upstream_model.as_str()),
                ("text-completion-openai", "gpt-3.5-turbo-instruct")
            );
            assert_eq!(d.provider.endpoint(), "https://api.openai.com/v1", "{model}");
            assert!(matches!(d.pricing, Pricing::Priced(p) if p.input_cost_per_token == 1.5e-6), "{model}");
        }
    }

    #[test]
    fn unsupported_and_unknown_providers_fail_with_the_path() {
        let env = |_: &str| None;
        for (model, want) in [
            ("sagemaker/x", "not supported yet"),
            ("anthropic/claude", "ANTHROPIC_API_KEY"),
            ("nope/x", "unknown provider `nope`"),
            ("openai/gpt-4o", "OPENAI_API_KEY"),
            ("custom/x", "api_base"),
        ] {
            let yaml = format!("model_list:\n  - {{model_name: a, litellm_params: {{model: {model}}}}}\n");
            let config = Config::load_str(&yaml, &env).unwrap_or_else(|e| unreachable!("{e}"));
            let err = RoutingTable::build(&config, &env, pricing::vendored(), |_, _, _| None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("model_list[0].litellm_params"), "{model}: {err}");
            assert!(err.contains(want), "{model}: {err}");
        }
    }

    #[derive(Debug)]
    struct Tokens(u64);

    impl Prompt for Tokens {
        fn upper_bound(&self) -> u64 {
            self.0 * 4
        }
        fn tokens(&self, _: Encoding) -> u64 {
            self.0
        }
        fn needs(&self) -> Caps {
            Caps::default()
        }
    }

    const REGIONS: &str = "model_list:\n  - {model_name: us, litellm_params: {model: mock/gpt-4}}\n  - {model_name: eu, litellm_params: {model: mock/gpt-4}}\n  - {model_name: other, litellm_params: {model: mock/gpt-3}}\n";

    #[test]
    fn names_sharing_a_model_serve_it_by_their_weights_in_round_robin() {
        let t = table(&format!(
            "{REGIONS}router: {{type: weighted_round_robin, weights: {{us: 0.6, eu: 0.4, other: 1, missing: 1}}}}\n"
        ));
        assert_eq!(t.model_names(), ["us", "eu", "other", "gpt-4"], "the shared model is listed too");
        let picks: Vec<String> =
            (0..10).filter_map(|_| t.pick("gpt-4", 0.0, NOW, &[]).ok().map(|d| d.id.clone())).collect();
        assert_eq!(picks.iter().filter(|id| *id == "us#0").count(), 6, "{picks:?}");
        assert_eq!(picks[..5], ["us#0", "eu#1", "us#0", "eu#1", "us#0"], "spread, not bunched");
        assert!((0..5).all(|_| t.pick("eu", 0.0, NOW, &[]).map(|d| d.id.as_str()).ok() == Some("eu#1")));
        let us = t.group("gpt-4").map(|g| g.deployments[0].clone());
        assert!(us.is_some_and(|d| d.model_group == "us"), "the same deployment, its stats shared");
        // A deployment cooling down is passed over; the turn moves on.
        if let Some(g) = t.group("us") {
            g.deployments[0].stats.cooldown_until_ms.store(NOW + 1_000, Ordering::Relaxed);
        }
        assert!((0..5).all(|_| t.pick("gpt-4", 0.0, NOW, &[]).map(|d| d.id.as_str()).ok() == Some("eu#1")));
        let named = table(&format!("{REGIONS}  - {{model_name: gpt-4, litellm_params: {{model: mock/x}}}}\nrouter: {{weights: {{us: 1, eu: 1}}}}\n"));
        assert_eq!(named.group("gpt-4").map(|g| g.deployments.len()), Some(1), "a real group of that name wins");
        let unweighted = table(REGIONS);
        assert!(unweighted.group("gpt-4").is_none(), "only with router.weights");
    }

    #[test]
    fn the_prompt_goes_where_its_window_fits() {
        let t = table("model_list:\n  - {model_name: g, litellm_params: {model: mock/small, metadata: {max_tokens: 1000}}}\n  - {model_name: g, litellm_params: {model: mock/large}, model_info: {max_input_tokens: 100000}}\nrouter_settings: {enable_pre_call_checks: true}\n");
        let pick = |tokens, roll| t.pick_for("g", Some(&Tokens(tokens)), roll, NOW, &[]).map(|d| d.id.clone());
        for roll in [0.0, 0.99] {
            assert_eq!(pick(5_000, roll).ok().as_deref(), Some("g#1"));
        }
        assert_eq!(pick(10, 0.0).ok().as_deref(), Some("g#0"), "a short prompt may go to either");
        let large = ["g#1".to_owned()];
        assert!(t.repeats_for("g", Some(&Tokens(5_000)), NOW, &large), "a retry can only repeat the large one");
        assert!(!t.repeats_for("g", Some(&Tokens(10)), NOW, &large));
        match pick(200_000, 0.0) {
            Err(ApiError::ContextWindowExceeded { tokens, window, .. }) => {
                assert_eq!((tokens, window), (200_000, 100_000))
            }
            other => unreachable!("{other:?}"),
        }
        let off = table("model_list:\n  - {model_name: g, litellm_params: {model: mock/small, metadata: {max_tokens: 1000}}}\n  - {model_name: g, litellm_params: {model: mock/large, metadata: {max_tokens: 100000}}}\n");
        assert!(off.pick_for("g", Some(&Tokens(200_000)), 0.0, NOW, &[]).is_ok(), "checks are off by default");
    }

    #[test]
    fn metadata_ranks_by_cost_and_primes_latency() {
        let t = table("model_list:\n  - {model_name: g, litellm_params: {model: mock/a, metadata: {cost: 0.03, latency: 100}}}\n  - {model_name: g, litellm_params: {model: mock/b, metadata: {cost: 0.01, latency: 900}}}\nrouter: {type: cost-based}\n");
        assert_eq!(t.pick("g", 0.0, NOW, &[]).map(|d| d.id.as_str()).ok(), Some("g#1"), "the cheaper by metadata");
        let t = table("model_list:\n  - {model_name: g, litellm_params: {model: mock/a, metadata: {latency: 900}}}\n  - {model_name: g, litellm_params: {model: mock/b, metadata: {latency: 100}}}\nrouter: {type: latency}\n");
        assert_eq!(t.pick("g", 0.0, NOW, &[]).map(|d| d.id.as_str()).ok(), Some("g#1"), "the faster by its prior");
        if let Some(g) = t.group("g") {
            g.deployments[0].stats.record_latency(Duration::from_millis(20));
        }
        assert_eq!(t.pick("g", 0.0, NOW, &[]).map(|d| d.id.as_str()).ok(), Some("g#0"), "a measurement beats a prior");
        let t = table("model_list:\n  - {model_name: g, litellm_params: {model: mock/a, metadata: {cost: 0.03}}}\n  - {model_name: g, litellm_params: {model: mock/b, metadata: {cost: 0.01}}}\nrouter: {cost_threshold: 0.02}\n");
        for roll in [0.0, 0.99] {
            assert_eq!(t.pick("g", roll, NOW, &[]).map(|d| d.id.as_str()).ok(), Some("g#1"), "under the threshold");
        }
        assert_eq!(t.pick("g", 0.0, NOW, &["g#1".to_owned()]).map(|d| d.id.as_str()).ok(), Some("g#1"));
        if let Some(g) = t.group("g") {
            g.deployments[1].stats.cooldown_until_ms.store(NOW + 1_000, Ordering::Relaxed);
        }
        assert_eq!(t.pick("g", 0.0, NOW, &[]).map(|d| d.id.as_str()).ok(), Some("g#0"), "nothing cheaper left");
    }

    #[test]
    fn windows_come_from_the_config_else_the_catalog() {
        let t = table("model_list:\n  - {model_name: g, litellm_params: {model: mock/gpt-4}}\n  - {model_name: g, litellm_params: {model: mock/gpt-4, metadata: {max_tokens: 500}}}\n  - {model_name: g, litellm_params: {model: mock/unknown}}\n");
        let windows: Vec<Option<u64>> =
            t.group("g").map(|g| g.traits.iter().map(|t| t.window).collect()).unwrap_or_default();
        assert_eq!(windows, [Some(8192), Some(500), None]);
    }
}
