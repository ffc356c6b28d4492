//! Alerts, LiteLLM's way: `general_settings.alerting: ["slack"]` posts alerts to a Slack incoming webhook
//! (`SLACK_WEBHOOK_URL`, or one per alert type in `general_settings.alert_to_webhook_url`) for the types listed in
//! `general_settings.alert_types` (default: every type tollgate raises). The types tollgate raises:
//!
//! - `budget_alerts`: a soft budget crossed (a key's or a team's `soft_budget`), once per budget period;
//! - `cooldown_deployment`: a deployment put in cooldown (failures over `allowed_fails` or the failure rate, a
//!   rate limit, a failed probe or health check).
//!
//! Contract: an alerting channel or alert type tollgate does not send (`email`, `llm_too_slow`, ...) is a start-up
//! warning "not supported yet: <name>", never a failure and never silence; `slack` on without a webhook URL for a
//! type it sends is an error naming the setting. Webhook URLs are secrets (Slack's carry the token).

use std::collections::BTreeMap;

use super::{raw::RawGeneralSettings, ConfigError, EnvLookup};
use crate::secret::Secret;

/// What tollgate alerts about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertType {
    Budget,
    Cooldown,
}

impl AlertType {
    pub const ALL: [AlertType; 2] = [AlertType::Budget, AlertType::Cooldown];

    /// LiteLLM's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            AlertType::Budget => "budget_alerts",
            AlertType::Cooldown => "cooldown_deployment",
        }
    }

    fn parse(name: &str) -> Option<AlertType> {
        AlertType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The alert types that are on, each with the webhook it goes to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Alerting {
    pub webhooks: BTreeMap<AlertType, Secret>,
}

pub(super) fn resolve(
    general: &RawGeneralSettings,
    env: &dyn EnvLookup,
    warnings: &mut Vec<String>,
) -> Result<Option<Alerting>, ConfigError> {
    let channels = general.alerting.as_deref().unwrap_or_default();
    for other in channels.iter().filter(|c| c.as_str() != "slack") {
        warnings.push(format!(
            "general_settings.alerting: not supported yet: `{other}` (tollgate sends alerts to Slack webhooks only)"
        ));
    }
    if general.alerting_threshold.is_some() {
        warnings.push(
            "general_settings.alerting_threshold: not supported yet (slow-request alerts, `llm_too_slow`)".to_owned(),
        );
    }
    if !channels.iter().any(|c| c == "slack") {
        return Ok(None);
    }
    let types: Vec<AlertType> = match &general.alert_types {
        None => AlertType::ALL.to_vec(),
        Some(names) => {
            let mut types = Vec::new();
            for name in names {
                match AlertType::parse(name) {
                    Some(t) => types.push(t),
                    None => warnings.push(format!(
                        "general_settings.alert_types: not supported yet: `{name}` (tollgate raises {})",
                        AlertType::ALL.map(AlertType::name).join(", ")
                    )),
                }
            }
            types
        }
    };
    let per_type = general.alert_to_webhook_url.clone().unwrap_or_default();
    for name in per_type.keys().filter(|n| AlertType::parse(n).is_none()) {
        warnings.push(format!("general_settings.alert_to_webhook_url: not supported yet: `{name}`"));
    }
    let default_url = env.get("SLACK_WEBHOOK_URL").filter(|u| !u.trim().is_empty());
    let mut webhooks = BTreeMap::new();
    for t in types {
        let url = per_type.get(t.name()).cloned().filter(|u| !u.trim().is_empty()).or_else(|| default_url.clone());
        let Some(url) = url else {
            return Err(ConfigError::invalid(
                "general_settings.alerting",
                format!(
                    "`slack` needs a webhook for `{}`: set SLACK_WEBHOOK_URL or general_settings.alert_to_webhook_url.{}",
                    t.name(),
                    t.name()
                ),
            ));
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError::invalid(
                "general_settings.alert_to_webhook_url",
                format!("the webhook for `{}` is not an http(s) URL", t.name()),
            ));
        }
        webhooks.insert(t, Secret::new(url));
    }
    Ok(Some(Alerting { webhooks }))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vars(&'static [(&'static str, &'static str)]);

    impl EnvLookup for Vars {
        fn get(&self, name: &str) -> Option<String> {
            self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        }
    }

    fn general(yaml: &str) -> RawGeneralSettings {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// The webhooks resolved, or a fragment of the error.
    type Want = Result<Vec<(AlertType, &'static str)>, &'static str>;

    #[test]
    fn slack_alerts_resolve_their_webhooks_and_name_what_is_not_supported() {
        let slack = Vars(&[("SLACK_WEBHOOK_URL", "https://hooks.example/T/B/x")]);
        let cases: [(&str, &Vars, Want, usize); 6] = [
            ("{}", &slack, Ok(vec![]), 0),
            (
                "{alerting: [slack]}",
                &slack,
                Ok(vec![
                    (AlertType::Budget, "https://hooks.example/T/B/x"),
                    (AlertType::Cooldown, "https://hooks.example/T/B/x"),
                ]),
                0,
            ),
            (
                "{alerting: [slack, email], alert_types: [budget_alerts, llm_too_slow], \
                  alert_to_webhook_url: {budget_alerts: 'http://127.0.0.1:9/b'}}",
                &Vars(&[]),
                Ok(vec![(AlertType::Budget, "http://127.0.0.1:9/b")]),
                2,
            ),
            ("{alerting: [slack]}", &Vars(&[]), Err("SLACK_WEBHOOK_URL"), 0),
            ("{alerting: [slack], alert_to_webhook_url: {cooldown_deployment: 'ftp://x'}}", &slack, Err("http(s)"), 0),
            ("{alerting: [email], alerting_threshold: 300}", &slack, Ok(vec![]), 2),
        ];
        for (yaml, env, want, warned) in cases {
            let mut warnings = Vec::new();
            let got = resolve(&general(yaml), env, &mut warnings);
            match (got, want) {
                (Ok(alerting), Ok(want)) => {
                    let got: Vec<(AlertType, &str)> = alerting
                        .as_ref()
                        .map(|a| a.webhooks.iter().map(|(t, u)| (*t, u.expose())).collect())
                        .unwrap_or_default();
                    assert_eq!(got, want, "{yaml}");
                }
                (Err(e), Err(fragment)) => assert!(e.to_string().contains(fragment), "{yaml}: {e}"),
                (got, want) => unreachable!("{yaml}: got {got:?}, want {want:?}"),
            }
            assert_eq!(warnings.len(), warned, "{yaml}: {warnings:?}");
        }
    }
}
