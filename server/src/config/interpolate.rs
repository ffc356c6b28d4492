//! Secret and environment interpolation on the raw YAML tree, before typed parsing.
//!
//! Two LiteLLM spellings: a whole value `os.environ/VAR`, and `${VAR}` anywhere inside a string. A variable
//! that is not set is an error naming the variable and the key path; it never becomes an empty string.

use serde_yaml::Value;

use super::ConfigError;

/// Looks a variable up: the config's own `environment_variables:` map first, then the process environment.
pub trait EnvLookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> EnvLookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Rewrites every string in `value` in place, tracking the key path for error messages.
pub fn interpolate(value: &mut Value, env: &dyn EnvLookup) -> Result<(), ConfigError> {
    walk(value, &mut String::new(), env)
}

fn walk(value: &mut Value, path: &mut String, env: &dyn EnvLookup) -> Result<(), ConfigError> {
    match value {
        Value::String(s) => {
            if let Some(new) = expand(s, env).map_err(|var| ConfigError::MissingEnv { path: path.clone(), var })? {
                *s = new;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, env)?;
                path.truncate(len);
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k.as_str().unwrap_or("?"));
                walk(v, path, env)?;
                path.truncate(len);
            }
        }
        Value::Tagged(tagged) => walk(&mut tagged.value, path, env)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Returns the expanded string, `None` when nothing needed expanding, or the name of a missing variable.
fn expand(s: &str, env: &dyn EnvLookup) -> Result<Option<String>, String> {
    if let Some(var) = s.strip_prefix("os.environ/") {
        return env.get(var).map(Some).ok_or_else(|| var.to_owned());
    }
    if !s.contains("${") {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            // An unterminated `${` is literal text, as in shells.
            out.push_str(&rest[start..]);
            return Ok(Some(out));
        };
        let var = &after[..end];
        out.push_str(&env.get(var).ok_or_else(|| var.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-123".into()),
            "HOST" => Some("example.com".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_strings() {
        let cases: &[(&str, Result<Option<&str>, &str>)] = &[
            ("plain", Ok(None)),
            ("os.environ/KEY", Ok(Some("sk-123"))),
            ("${KEY}", Ok(Some("sk-123"))),
            ("https://${HOST}/v1", Ok(Some("https://example.com/v1"))),
            ("${HOST}:${KEY}", Ok(Some("example.com:sk-123"))),
            ("literal ${ unterminated", Ok(Some("literal ${ unterminated"))),
            ("os.environ/NOPE", Err("NOPE")),
            ("a ${NOPE} b", Err("NOPE")),
        ];
        for (input, want) in cases {
            let got = expand(input, &env);
            let want = want.map(|o| o.map(str::to_owned)).map_err(str::to_owned);
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn missing_variable_names_the_key_path() {
        let mut v: Value = serde_yaml::from_str(
            "model_list:\n  - model_name: a\n    litellm_params:\n      api_key: os.environ/MISSING_KEY\n",
        )
        .unwrap_or(Value::Null);
        let err = interpolate(&mut v, &env).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("MISSING_KEY"), "{err}");
        assert!(err.contains("model_list[0].litellm_params.api_key"), "{err}");
    }
}
