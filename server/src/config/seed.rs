//! The seed article's routing dialect, mapped onto tollgate's routing settings: the top-level `router:` section,
//! `fallback_config:`, each deployment's `litellm_params.metadata` and model_info's window and capability flags.
//!
//! Contract: every value is validated here (a bad one is an error naming its path) and every mapping leaves one
//! line in [`RoutingRules::mappings`], which `check-config` prints, so nothing the seed wrote is silently dropped.

use std::{collections::BTreeMap, time::Duration};

use super::{
    raw::{RawFallbackConfig, RawModelEntry, RawRouterSettings, RawSeedRouter},
    ConfigError, RetrySettings, RoutingStrategy,
};

/// `router.type` values.
const TYPES: &[&str] = &["latency", "cost-based", "capability-based", "weighted_round_robin"];
/// `router.routing_strategy` values.
const SEED_STRATEGIES: &[&str] = &["cost_optimized"];
/// `fallback_config[].retry_attempts` above this would hold a caller for minutes.
const MAX_RETRY_ATTEMPTS: u32 = 10;
const MAX_RETRY_DELAY_SECS: f64 = 60.0;

/// What one deployment tells routing about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentTraits {
    /// `metadata.cost`: $ per 1K tokens, blended.
    pub cost_per_1k: Option<f64>,
    /// `metadata.latency`, milliseconds.
    pub latency_ms: Option<f64>,
    /// `model_info.max_input_tokens`, else `metadata.max_tokens` (the catalog's window is applied later, by the
    /// routing table, which has the resolved model).
    pub window: Option<u64>,
    /// `metadata.capabilities`, plus `vision` for `supports_vision` and `function-calling` for
    /// `supports_function_calling`.
    pub capabilities: Vec<String>,
}

/// `fallback_config[]`'s retries for one model group, replacing `num_retries` and the backoff there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupRetry {
    pub retries: u32,
    /// Fixed wait between those calls.
    pub delay: Duration,
}

/// The seed's rules in the form routing reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutingRules {
    /// Context windows are checked before calling (`enable_pre_call_checks`, or any `router:` section).
    pub pre_call_checks: bool,
    /// `router.type: capability-based`: images, tools and long prompts prefer deployments that list them.
    pub capability_based: bool,
    /// $ per 1K tokens: deployments above it serve only when none at or below it is available.
    pub cost_threshold: Option<f64>,
    /// Prompts longer than this many tokens prefer `long-context` deployments.
    pub context_threshold: Option<u64>,
    /// `router.weights`: model name → share, for the names that serve one model together.
    pub weights: BTreeMap<String, f64>,
    /// Deployment id → what it says about itself.
    pub traits: BTreeMap<String, DeploymentTraits>,
    /// Model group → its `fallback_config` retries.
    pub group_retries: BTreeMap<String, GroupRetry>,
    /// `key: value → what tollgate does`, one line per seed key given, for `check-config`.
    pub mappings: Vec<String>,
}

/// A deployment's traits from its `metadata` and `model_info`.
pub(super) fn traits(path: &str, entry: &RawModelEntry) -> Result<DeploymentTraits, ConfigError> {
    let mut out = DeploymentTraits::default();
    if let Some(m) = &entry.litellm_params.metadata {
        let at = |key: &str| format!("{path}.litellm_params.metadata.{key}");
        if let Some(cost) = m.cost {
            if !(cost.is_finite() && cost >= 0.0) {
                return Err(ConfigError::invalid(
                    at("cost"),
                    format!("must be $ per 1K tokens, 0 or more, got {cost}"),
                ));
            }
            out.cost_per_1k = Some(cost);
        }
        if let Some(latency) = m.latency {
            if !(latency.is_finite() && latency >= 0.0) {
                return Err(ConfigError::invalid(
                    at("latency"),
                    format!("must be milliseconds, 0 or more, got {latency}"),
                ));
            }
            out.latency_ms = Some(latency);
        }
        if m.max_tokens == Some(0) {
            return Err(ConfigError::invalid(at("max_tokens"), "must be a positive number of tokens"));
        }
        out.window = m.max_tokens;
        out.capabilities.clone_from(&m.capabilities);
    }
    let info = &entry.model_info;
    if info.max_input_tokens == Some(0) {
        return Err(ConfigError::invalid(
            format!("{path}.model_info.max_input_tokens"),
            "must be a positive number of tokens",
        ));
    }
    out.window = info.max_input_tokens.or(out.window);
    for (flag, capability) in [(info.supports_vision, "vision"), (info.supports_function_calling, "function-calling")] {
        if flag == Some(true) && !out.capabilities.iter().any(|c| c == capability) {
            out.capabilities.push(capability.to_owned());
        }
    }
    Ok(out)
}

/// Applies `router:` over `strategy` (from `router_settings`), filling `rules`; the strategy to route by.
pub(super) fn router(
    router: Option<&RawSeedRouter>,
    settings: &RawRouterSettings,
    strategy: RoutingStrategy,
    rules: &mut RoutingRules,
) -> Result<RoutingStrategy, ConfigError> {
    rules.pre_call_checks = settings.enable_pre_call_checks.unwrap_or(false) || router.is_some();
    if settings.enable_pre_call_checks == Some(true) {
        rules.mappings.push(
            "router_settings.enable_pre_call_checks: true → deployments whose context window the prompt exceeds are \
             skipped"
                .into(),
        );
    }
    let Some(router) = router else { return Ok(strategy) };
    if router.kind.is_some() || router.routing_strategy.is_some() {
        if let Some(other) = &settings.routing_strategy {
            let key = if router.kind.is_some() { "router.type" } else { "router.routing_strategy" };
            return Err(ConfigError::invalid(
                key,
                format!(
                    "both `{key}` and `router_settings.routing_strategy` (`{other}`) choose the routing strategy; \
                     keep one of them"
                ),
            ));
        }
    }
    if settings.enable_pre_call_checks != Some(true) {
        rules.mappings.push(
            "router: (any key) → context-window pre-call checks on (router_settings.enable_pre_call_checks)".into(),
        );
    }
    let buffer = settings.routing_strategy_args.lowest_latency_buffer.unwrap_or(0.0);
    let mut chosen = strategy;
    if let Some(kind) = router.kind.as_deref() {
        let (to, line) = match kind {
            "latency" => (
                RoutingStrategy::LatencyBased { buffer },
                "routing_strategy latency-based-routing (metadata.latency is the prior until calls are measured)",
            ),
            "cost-based" => (
                RoutingStrategy::CostBased,
                "routing_strategy cost-based-routing (metadata.cost ranks over the catalog price)",
            ),
            "capability-based" => {
                rules.capability_based = true;
                (
                    RoutingStrategy::SimpleShuffle,
                    "routing_strategy simple-shuffle among the deployments listing what the request needs \
                     (vision for images, function-calling for tools, long-context above context_threshold)",
                )
            }
            "weighted_round_robin" => (
                RoutingStrategy::WeightedRoundRobin,
                "weighted round robin (tollgate extension: smooth, deterministic, by weight)",
            ),
            other => {
                return Err(ConfigError::invalid(
                    "router.type",
                    format!("unknown router type `{other}`; accepted: {}", TYPES.join(", ")),
                ))
            }
        };
        chosen = to;
        rules.mappings.push(format!("router.type: {kind} → {line}"));
    }
    if let Some(name) = router.routing_strategy.as_deref() {
        if !SEED_STRATEGIES.contains(&name) {
            return Err(ConfigError::invalid(
                "router.routing_strategy",
                format!("unknown strategy `{name}`; accepted: {}", SEED_STRATEGIES.join(", ")),
            ));
        }
        if router.kind.is_none() {
            chosen = RoutingStrategy::CostBased;
            rules.mappings.push(format!("router.routing_strategy: {name} → routing_strategy cost-based-routing"));
        } else {
            rules
                .mappings
                .push(format!("router.routing_strategy: {name} → the cost_threshold tier over router.type's strategy"));
        }
    }
    if let Some(t) = router.cost_threshold {
        if !(t.is_finite() && t >= 0.0) {
            return Err(ConfigError::invalid("router.cost_threshold", format!("must be $ per 1K tokens, got {t}")));
        }
        rules.cost_threshold = Some(t);
        rules.mappings.push(format!(
            "router.cost_threshold: {t} → deployments above ${t} per 1K tokens serve only when none at or below it is \
             available"
        ));
    }
    if let Some(t) = router.context_threshold {
        if t == 0 {
            return Err(ConfigError::invalid("router.context_threshold", "must be a positive number of tokens"));
        }
        rules.context_threshold = Some(t);
        rules.mappings.push(format!(
            "router.context_threshold: {t} → prompts over {t} tokens go to long-context deployments when one is \
             available"
        ));
    }
    for (name, share) in &router.weights {
        if !(share.is_finite() && *share > 0.0) {
            return Err(ConfigError::invalid(
                format!("router.weights.{name}"),
                format!("must be a positive share, got {share}"),
            ));
        }
    }
    if !router.weights.is_empty() {
        rules.weights.clone_from(&router.weights);
        let list: Vec<String> = router.weights.iter().map(|(n, s)| format!("{n} {s}")).collect();
        rules.mappings.push(format!(
            "router.weights: {} → a request for the model these names share is split by these shares",
            list.join(", ")
        ));
    }
    Ok(chosen)
}

/// Maps `fallback_config:` onto `retries.fallbacks` and per-group retries; warns about names in it and in
/// `router.weights` that no `model_list` entry has. `groups` are the config's model names.
pub(super) fn fallback_config(
    list: &[RawFallbackConfig],
    settings: &RawRouterSettings,
    retries: &mut RetrySettings,
    rules: &mut RoutingRules,
    groups: &[&str],
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (i, entry) in list.iter().enumerate() {
        let path = format!("fallback_config[{i}]");
        let name = entry.model_name.trim();
        if name.is_empty() {
            return Err(ConfigError::invalid(format!("{path}.model_name"), "must not be empty"));
        }
        if rules.group_retries.contains_key(name) {
            return Err(ConfigError::invalid(format!("{path}.model_name"), format!("`{name}` has an entry already")));
        }
        if settings.fallbacks.iter().flatten().any(|m| m.contains_key(name)) {
            return Err(ConfigError::invalid(
                format!("{path}.fallback_to"),
                format!(
                    "`{name}` also has a chain in `router_settings.fallbacks`; give its fallbacks in one of the two"
                ),
            ));
        }
        let attempts = entry.retry_attempts.unwrap_or(retries.num_retries);
        if attempts > MAX_RETRY_ATTEMPTS {
            return Err(ConfigError::invalid(
                format!("{path}.retry_attempts"),
                format!("must be at most {MAX_RETRY_ATTEMPTS}, got {attempts}"),
            ));
        }
        let delay = entry.retry_delay.unwrap_or(0.0);
        let delay = Duration::try_from_secs_f64(delay)
            .ok()
            .filter(|d| d.as_secs_f64() <= MAX_RETRY_DELAY_SECS)
            .ok_or_else(|| {
                ConfigError::invalid(
                    format!("{path}.retry_delay"),
                    format!("must be seconds from 0 to {MAX_RETRY_DELAY_SECS}, got {delay}"),
                )
            })?;
        for (j, target) in std::iter::once(name).chain(entry.fallback_to.iter().map(String::as_str)).enumerate() {
            if !groups.contains(&target) {
                let key = if j == 0 { "model_name".to_owned() } else { format!("fallback_to[{}]", j - 1) };
                warnings.push(format!("`{path}.{key}`: no model_list entry is named `{target}`"));
            }
        }
        rules.group_retries.insert(name.to_owned(), GroupRetry { retries: attempts, delay });
        if !entry.fallback_to.is_empty() {
            retries.fallbacks.insert(name.to_owned(), entry.fallback_to.clone());
        }
        rules.mappings.push(format!(
            "fallback_config[{i}]: {name} → {attempts} retries {}s apart (fixed), then router_settings.fallbacks \
             {name}: [{}]",
            delay.as_secs_f64(),
            entry.fallback_to.join(", ")
        ));
    }
    for name in rules.weights.keys().filter(|n| !groups.contains(&n.as_str())) {
        warnings.push(format!("`router.weights.{name}`: no model_list entry is named `{name}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(yaml: &str) -> Result<Config, String> {
        Config::load_str(yaml, &|_: &str| None).map_err(|e| e.to_string())
    }

    const SEED: &str = r#"
model_list:
  - model_name: gpt-4-us
    litellm_params:
      model: mock/gpt-4
      metadata: {cost: 0.03, latency: 800, max_tokens: 8192, capabilities: [function-calling, code], region: us}
  - model_name: gpt-4-eu
    litellm_params: {model: mock/gpt-4, metadata: {cost: 0.03, latency: 900, max_tokens: 8192}}
  - model_name: claude-long
    litellm_params: {model: mock/claude, metadata: {cost: 0.015, max_tokens: 100000, capabilities: [long-context, vision]}}
    model_info: {max_input_tokens: 200000, supports_function_calling: true}
router:
  type: weighted_round_robin
  routing_strategy: cost_optimized
  cost_threshold: 0.02
  context_threshold: 8000
  weights: {gpt-4-us: 0.6, gpt-4-eu: 0.4}
fallback_config:
  - model_name: gpt-4-us
    fallback_to: [gpt-4-eu, claude-long]
    retry_attempts: 3
    retry_delay: 1
"#;

    #[test]
    fn the_seeds_keys_map_onto_routing_settings() {
        let cfg = load(SEED).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(cfg.warnings.is_empty(), "unknown metadata keys are accepted silently: {:?}", cfg.warnings);
        let rules = &cfg.router.rules;
        assert_eq!(cfg.router.strategy, RoutingStrategy::WeightedRoundRobin);
        assert!(rules.pre_call_checks && !rules.capability_based);
        assert_eq!((rules.cost_threshold, rules.context_threshold), (Some(0.02), Some(8000)));
        assert_eq!(rules.weights.get("gpt-4-us"), Some(&0.6));
        let us = &rules.traits["gpt-4-us#0"];
        assert_eq!((us.cost_per_1k, us.latency_ms, us.window), (Some(0.03), Some(800.0), Some(8192)));
        assert_eq!(us.capabilities, ["function-calling", "code"]);
        let long = &rules.traits["claude-long#2"];
        assert_eq!(long.window, Some(200_000), "model_info.max_input_tokens wins over metadata.max_tokens");
        assert_eq!(long.capabilities, ["long-context", "vision", "function-calling"]);
        assert_eq!(rules.group_retries["gpt-4-us"], GroupRetry { retries: 3, delay: Duration::from_secs(1) });
        assert_eq!(cfg.router.retries.fallbacks["gpt-4-us"], ["gpt-4-eu", "claude-long"]);
        let lines = rules.mappings.join("\n");
        for want in [
            "router.type: weighted_round_robin → weighted round robin",
            "router.routing_strategy: cost_optimized → the cost_threshold tier",
            "router.cost_threshold: 0.02 →",
            "router.context_threshold: 8000 →",
            "router.weights: gpt-4-eu 0.4, gpt-4-us 0.6 →",
            "fallback_config[0]: gpt-4-us → 3 retries 1s apart (fixed), then router_settings.fallbacks gpt-4-us: [gpt-4-eu, claude-long]",
        ] {
            assert!(lines.contains(want), "{want}\n{lines}");
        }
    }

    #[test]
    fn router_types_choose_the_strategy() {
        let cases = [
            ("router: {type: latency}", RoutingStrategy::LatencyBased { buffer: 0.0 }, false),
            ("router: {type: cost-based}", RoutingStrategy::CostBased, false),
            ("router: {type: capability-based}", RoutingStrategy::SimpleShuffle, true),
            ("router: {type: weighted_round_robin}", RoutingStrategy::WeightedRoundRobin, false),
            ("router: {routing_strategy: cost_optimized}", RoutingStrategy::CostBased, false),
            ("router: {cost_threshold: 0.01}", RoutingStrategy::SimpleShuffle, false),
            ("router_settings: {routing_strategy: least-busy}", RoutingStrategy::LeastBusy, false),
        ];
        for (yaml, strategy, capability_based) in cases {
            let cfg = load(&format!("{yaml}\n")).unwrap_or_else(|e| unreachable!("{yaml}: {e}"));
            assert_eq!(cfg.router.strategy, strategy, "{yaml}");
            assert_eq!(cfg.router.rules.capability_based, capability_based, "{yaml}");
            assert_eq!(cfg.router.rules.pre_call_checks, yaml.starts_with("router:"), "{yaml}");
        }
        let cfg = load("router_settings: {enable_pre_call_checks: true}\n").unwrap_or_else(|e| unreachable!("{e}"));
        assert!(cfg.router.rules.pre_call_checks);
        assert!(cfg.warnings.is_empty(), "no longer `not supported yet`: {:?}", cfg.warnings);
    }

    #[test]
    fn bad_seed_values_name_their_path() {
        let entry =
            |extra: &str| format!("model_list:\n  - model_name: a\n    litellm_params: {{model: mock/a{extra}}}\n");
        let cases = [
            ("router: {type: fastest}\n".to_owned(), "router.type", "latency, cost-based"),
            ("router: {routing_strategy: cheapest}\n".to_owned(), "router.routing_strategy", "cost_optimized"),
            (
                "router: {type: latency}\nrouter_settings: {routing_strategy: least-busy}\n".to_owned(),
                "router.type",
                "router_settings.routing_strategy",
            ),
            (
                "router: {routing_strategy: cost_optimized}\nrouter_settings: {routing_strategy: least-busy}\n".to_owned(),
                "router.routing_strategy",
                "router_settings.routing_strategy",
            ),
            ("router: {cost_threshold: -1}\n".to_owned(), "router.cost_threshold", "per 1K"),
            ("router: {context_threshold: 0}\n".to_owned(), "router.context_threshold", "positive"),
            ("router: {weights: {a: 0}}\n".to_owned(), "router.weights.a", "positive"),
            ("router: {weights: {a: lots}}\n".to_owned(), "router.weights.a", ""),
            (entry(", metadata: {cost: -0.1}"), "model_list[0].litellm_params.metadata.cost", "0 or more"),
            (entry(", metadata: {latency: -5}"), "model_list[0].litellm_params.metadata.latency", "milliseconds"),
            (entry(", metadata: {max_tokens: 0}"), "model_list[0].litellm_params.metadata.max_tokens", "positive"),
            (entry(", metadata: {capabilities: vision}"), "model_list[0].litellm_params.metadata.capabilities", ""),
            (
                "model_list:\n  - {model_name: a, litellm_params: {model: mock/a}, model_info: {max_input_tokens: 0}}\n"
                    .to_owned(),
                "model_list[0].model_info.max_input_tokens",
                "positive",
            ),
            ("fallback_config: [{model_name: ' '}]\n".to_owned(), "fallback_config[0].model_name", "empty"),
            ("fallback_config: [{model_name: a, retry_attempts: 11}]\n".to_owned(), "fallback_config[0].retry_attempts", "at most 10"),
            ("fallback_config: [{model_name: a, retry_delay: -1}]\n".to_owned(), "fallback_config[0].retry_delay", "seconds"),
            ("fallback_config: [{model_name: a, retry_delay: 61}]\n".to_owned(), "fallback_config[0].retry_delay", "60"),
            ("fallback_config: [{model_name: a}, {model_name: a}]\n".to_owned(), "fallback_config[1].model_name", "already"),
            (
                "fallback_config: [{model_name: a, fallback_to: [b]}]\nrouter_settings: {fallbacks: [{a: [c]}]}\n".to_owned(),
                "fallback_config[0].fallback_to",
                "router_settings.fallbacks",
            ),
            ("fallback_config: [{fallback_to: [b]}]\n".to_owned(), "fallback_config[0]", "model_name"),
        ];
        for (yaml, path, words) in cases {
            let err = load(&yaml).err().unwrap_or_default();
            assert!(err.contains(path) && err.contains(words), "{yaml}: {err:?} should name {path} and say {words}");
        }
    }

    #[test]
    fn fallback_config_names_unknown_groups_in_warnings_and_defaults_its_retries() {
        let cfg = load(
            "model_list:\n  - {model_name: a, litellm_params: {model: mock/a}}\nrouter_settings: {num_retries: 1}\nfallback_config: [{model_name: a, fallback_to: [nope]}]\n",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.warnings, ["`fallback_config[0].fallback_to[0]`: no model_list entry is named `nope`"]);
        assert_eq!(cfg.router.rules.group_retries["a"], GroupRetry { retries: 1, delay: Duration::ZERO });
        let cfg = load(
            "model_list:\n  - {model_name: a, litellm_params: {model: mock/a}}\nrouter: {weights: {a: 1, b: 1}}\n",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(cfg.warnings, ["`router.weights.b`: no model_list entry is named `b`"]);
    }
}
