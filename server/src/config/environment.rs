//! The environment a loaded config is read against later, when the routing table is built: providers look up
//! their key and base-URL variables (`AZURE_API_BASE`, `ANTHROPIC_API_KEY`, `COHERE_API_KEY`, ...) then, not at
//! load time. It must be the same environment the config was loaded with, or a config's `environment_variables`
//! section (which LiteLLM puts in `os.environ`) and a test's injected variables would reach interpolation only.

use std::{collections::BTreeMap, fmt, sync::Arc};

use super::EnvLookup;

/// The config's own `environment_variables` first, then the process environment, or a fixed set of variables
/// for a caller that must not touch the process environment (tests run in parallel).
#[derive(Clone, Default)]
pub struct Environment {
    local: BTreeMap<String, String>,
    /// `None`: the process environment.
    fixed: Option<Arc<BTreeMap<String, String>>>,
}

impl Environment {
    /// The config's `environment_variables` over the process environment.
    pub(super) fn new(local: BTreeMap<String, String>) -> Self {
        Self { local, fixed: None }
    }

    /// The same, over exactly `vars` instead of the process environment.
    pub(super) fn over(self, vars: Arc<BTreeMap<String, String>>) -> Self {
        Self { fixed: Some(vars), ..self }
    }
}

impl EnvLookup for Environment {
    fn get(&self, name: &str) -> Option<String> {
        self.local.get(name).cloned().or_else(|| match &self.fixed {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        })
    }
}

/// Names only: values may be keys.
impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fixed = self.fixed.as_ref().map(|vars| vars.keys().collect::<Vec<_>>());
        f.debug_struct("Environment").field("local", &self.local.keys()).field("fixed", &fixed).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_configs_own_variables_come_first_then_the_given_ones_or_the_process() {
        let yaml = "environment_variables:\n  AZURE_API_BASE: http://from-config\nmodel_list: []\n";
        let vars = BTreeMap::from([
            ("AZURE_API_BASE".to_owned(), "http://given".to_owned()),
            ("AZURE_API_KEY".to_owned(), "key-given-0001".to_owned()),
        ]);
        let given = Config::load_str_with_vars(yaml, vars).unwrap_or_else(|e| unreachable!("{e}"));
        let env = &given.environment;
        assert_eq!(env.get("AZURE_API_BASE").as_deref(), Some("http://from-config"));
        assert_eq!(env.get("AZURE_API_KEY").as_deref(), Some("key-given-0001"));
        assert_eq!(env.get("PATH"), None, "given variables replace the process environment");
        assert!(!format!("{env:?}").contains("key-given-0001"), "{env:?}");

        let process = Config::load_str(yaml, &|_: &str| None).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(process.environment.get("AZURE_API_BASE").as_deref(), Some("http://from-config"));
        assert_eq!(process.environment.get("PATH"), std::env::var("PATH").ok());
    }
}
