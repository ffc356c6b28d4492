//! JSON Schema (what callers write for tool parameters and `response_format`) as the OpenAPI 3 subset Gemini's
//! `Schema` accepts. Gemini answers 400 "Invalid JSON payload received. Unknown name ..." for keys outside the
//! subset (`$schema`, `additionalProperties`, `$ref`, `strict`, ...), so only known keys are kept; local `$ref`s
//! are inlined; `type: [T, "null"]` and `anyOf` with a `null` member become `nullable`; a string `const` becomes a
//! one-value `enum`. Work is bounded by [`NODE_BUDGET`], so a schema whose references fan out cannot make the
//! request size explode.

use serde_json::{Map, Value};

/// Keys of Gemini's `Schema` that are passed through (recursing where they hold schemas). `default` is left
/// out: some API versions reject it (providers.md 3.2).
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "items",
    "minimum",
    "maximum",
];

/// The `format`s Gemini knows; others (`uri`, `email`, ...) are dropped rather than refused.
const FORMATS: &[&str] = &["enum", "date-time", "int32", "int64", "float", "double"];

/// Most schema nodes one conversion writes, references inlined included.
const NODE_BUDGET: usize = 10_000;
/// Deepest chain of inlined references (a recursive schema stops here).
const MAX_REF_DEPTH: usize = 16;

/// A tool's `parameters`, or `None` when it takes no arguments: Gemini rejects an `OBJECT` schema with empty
/// `properties`, and a declaration without `parameters` means "no arguments".
pub(super) fn parameters(schema: &Value) -> Option<Value> {
    let converted = convert(schema);
    let takes_nothing = converted.get("properties").is_none()
        && converted.get("anyOf").is_none()
        && matches!(converted.get("type").and_then(Value::as_str), None | Some("object"));
    (!takes_nothing).then_some(converted)
}

/// Any schema (`response_format.json_schema.schema`).
pub(super) fn convert(schema: &Value) -> Value {
    let mut c = Converter { root: schema, budget: NODE_BUDGET };
    c.node(schema, 0)
}

struct Converter<'a> {
    root: &'a Value,
    budget: usize,
}

impl<'a> Converter<'a> {
    fn node(&mut self, schema: &Value, ref_depth: usize) -> Value {
        let Value::Object(obj) = schema else {
            // `true` / `{}`-like schemas: anything.
            return Value::Object(Map::new());
        };
        if self.budget == 0 {
            return object_type();
        }
        self.budget -= 1;
        if let Some(Value::String(r)) = obj.get("$ref") {
            return match self.resolve(r) {
                Some(target) if ref_depth < MAX_REF_DEPTH => {
                    let mut inlined = self.node(target, ref_depth + 1);
                    // A description beside the `$ref` describes this use of the referenced schema.
                    if let (Some(d), Value::Object(m)) = (obj.get("description"), &mut inlined) {
                        m.insert("description".into(), d.clone());
                    }
                    inlined
                }
                _ => object_type(),
            };
        }
        let mut out = Map::new();
        for (key, value) in obj {
            if !KEPT.contains(&key.as_str()) {
                continue;
            }
            match key.as_str() {
                "properties" => {
                    let Value::Object(props) = value else { continue };
                    if props.is_empty() {
                        continue;
                    }
                    let props = props.iter().map(|(name, s)| (name.clone(), self.node(s, ref_depth))).collect();
                    out.insert(key.clone(), Value::Object(props));
                }
                "items" => {
                    out.insert(key.clone(), self.node(value, ref_depth));
                }
                "anyOf" => {
                    let Value::Array(list) = value else { continue };
                    let mut members = Vec::with_capacity(list.len());
                    for member in list {
                        if member.get("type").and_then(Value::as_str) == Some("null") {
                            out.insert("nullable".into(), Value::Bool(true));
                        } else {
                            members.push(self.node(member, ref_depth));
                        }
                    }
                    out.insert(key.clone(), Value::Array(members));
                }
                "type" => match value {
                    Value::Array(types) => {
                        let named: Vec<&Value> = types.iter().filter(|t| t.as_str() != Some("null")).collect();
                        if named.len() < types.len() {
                            out.insert("nullable".into(), Value::Bool(true));
                        }
                        match named.as_slice() {
                            [] => {}
                            [one] => {
                                out.insert(key.clone(), (*one).clone());
                            }
                            many => {
                                let any =
                                    many.iter().map(|t| Value::Object(Map::from_iter([("type".into(), (*t).clone())])));
                                out.insert("anyOf".into(), Value::Array(any.collect()));
                            }
                        }
                    }
                    other => {
                        out.insert(key.clone(), other.clone());
                    }
                },
                "format" => {
                    if value.as_str().is_some_and(|f| FORMATS.contains(&f)) {
                        out.insert(key.clone(), value.clone());
                    }
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        if let Some(Value::String(c)) = obj.get("const") {
            out.entry("enum").or_insert_with(|| Value::Array(vec![Value::String(c.clone())]));
            out.entry("type").or_insert_with(|| Value::String("string".into()));
        }
        // `anyOf` left with one member after `null` was taken out is that member (Pydantic's `Optional[T]`).
        if let Some(Value::Array(members)) = out.get("anyOf") {
            if members.len() == 1 {
                if let Some(Value::Object(only)) = out.remove("anyOf").and_then(|a| a.as_array()?.first().cloned()) {
                    for (k, v) in only {
                        out.entry(k).or_insert(v);
                    }
                }
            } else if members.is_empty() {
                out.remove("anyOf");
            }
        }
        Value::Object(out)
    }

    /// A local reference (`#/$defs/Name`, `#/definitions/Name`, any `#/` JSON pointer into the root).
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let root: &'a Value = self.root;
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(root);
        }
        root.pointer(pointer)
    }
}

fn object_type() -> Value {
    Value::Object(Map::from_iter([("type".into(), Value::String("object".into()))]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn schemas_become_gemini_subset() {
        let cases = [
            (
                json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false,
                       "strict": true, "properties": {"city": {"type": "string", "format": "uri", "default": "Paris"},
                       "unit": {"type": ["string", "null"], "enum": ["c", "f"]}}, "required": ["city"]}),
                Some(json!({"type": "object", "properties": {"city": {"type": "string"},
                       "unit": {"type": "string", "nullable": true, "enum": ["c", "f"]}}, "required": ["city"]})),
            ),
            // References are inlined; a description beside the reference wins.
            (
                json!({"type": "object", "$defs": {"P": {"type": "object", "properties": {"x": {"type": "integer", "format": "int64"}}}},
                       "properties": {"p": {"$ref": "#/$defs/P", "description": "a point"},
                                      "q": {"anyOf": [{"$ref": "#/$defs/P"}, {"type": "null"}]}}}),
                Some(json!({"type": "object", "properties": {
                    "p": {"type": "object", "description": "a point", "properties": {"x": {"type": "integer", "format": "int64"}}},
                    "q": {"type": "object", "nullable": true, "properties": {"x": {"type": "integer", "format": "int64"}}}}})),
            ),
            // No arguments: no `parameters` at all.
            (json!({"type": "object", "properties": {}}), None),
            (json!({}), None),
            (json!({"type": "object", "additionalProperties": false}), None),
            // A recursive schema stops at the depth limit instead of looping.
            (
                json!({"type": "object", "properties": {"next": {"$ref": "#"}}}),
                Some({
                    let mut v = json!({"type": "object"});
                    for _ in 0..=MAX_REF_DEPTH {
                        v = json!({"type": "object", "properties": {"next": v}});
                    }
                    v
                }),
            ),
            (
                json!({"type": "object", "properties": {"k": {"const": "fixed"}, "m": {"type": ["integer", "string"]}}}),
                Some(json!({"type": "object", "properties": {"k": {"type": "string", "enum": ["fixed"]},
                       "m": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}})),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parameters(&input), want, "{input}");
        }
    }

    #[test]
    fn fan_out_of_references_is_bounded() {
        // Each level refers to the next twice: 2^40 nodes if inlined naively.
        let mut defs = Map::new();
        for i in 0..40 {
            let next = format!("#/$defs/d{}", i + 1);
            defs.insert(
                format!("d{i}"),
                json!({"type": "object", "properties": {"a": {"$ref": next}, "b": {"$ref": next}}}),
            );
        }
        defs.insert("d40".into(), json!({"type": "string"}));
        let schema = json!({"$defs": defs, "type": "object", "properties": {"root": {"$ref": "#/$defs/d0"}}});
        let out = convert(&schema).to_string();
        assert!(out.len() < 2_000_000, "{} bytes", out.len());
    }
}
