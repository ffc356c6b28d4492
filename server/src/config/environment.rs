//! The environment a loaded config is read against later, when the routing table is built: providers look up
//! their key and base-URL variables (`AZURE_API_BASE`, `ANTHROPIC_API_KEY`, `COHERE_API_KEY`, ...) then, not at
//! load time. It must be the same environment the config was loaded with, or a config's `environment_variables`
//! section (which LiteLLM puts in `os.environ`) and a test's injected variables would reach interpolation only.

use std::{collections::BTreeMap, sync::Arc};

use super::EnvLookup;

/// The environment providers resolve their keys, base URLs and regions against, when the routing table is built:
/// the config's `environment_variables` first (LiteLLM puts them in the process environment), then the lookup the
/// config was loaded with ([`Config::load_str_shared`]), else the process environment.
#[derive(Clone, Default)]
pub struct Env {
    local: Arc<BTreeMap<String, String>>,
    outer: Option<Arc<dyn EnvLookup + Send + Sync>>,
}

impl EnvLookup for Env {
    fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.local.get(name) {
            return Some(v.clone());
        }
        match &self.outer {
            Some(outer) => outer.get(name),
            None => std::env::var(name).ok(),
        }
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: names only.
        f.debug_struct("Env").field("local", &self.local.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl Env {
    /// The config's own `environment_variables`, looked up first.
    pub(super) fn with_local(self, local: BTreeMap<String, String>) -> Self {
        Self { local: Arc::new(local), ..self }
    }

    /// Looked up after the config's own variables, instead of the process environment.
    pub(super) fn over(self, outer: Arc<dyn EnvLookup + Send + Sync>) -> Self {
        Self { outer: Some(outer), ..self }
    }
}
