//! JSON Schema (what callers write for tool parameters and `response_format`) as the OpenAPI 3 subset Gemini's
//! `Schema` accepts. Gemini answers 400 "Invalid JSON payload received. Unknown name ..." for keys outside the
//! subset (`$schema`, `additionalProperties`, `$ref`, `strict`, ...), so only known keys are kept; local `$ref`s
//! are inlined; `type: [T, "null"]` and `anyOf` with a `null` member become `nullable`; a string `const` becomes a
//! one-value `enum`. The output is bounded ([`BUDGET`], [`MAX_NESTING`]), so a caller's schema whose references
//! fan out or recurse cannot make the request, the work or the recursion explode.

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

/// What the conversions of one request may write beyond twice their input, in nodes plus string bytes
/// (references inlined included); past it, the rest of a schema is `{"type": "object"}`. Shared by all the
/// schemas of a request, so many small schemas that fan out cannot add up.
const BUDGET: usize = 1 << 16;
/// Deepest chain of inlined references (a recursive schema stops here).
const MAX_REF_DEPTH: usize = 16;
/// Deepest nesting of schemas in the output (the converter recurses once per level).
const MAX_NESTING: usize = 64;

/// A tool's `parameters`, or `None` when it takes no arguments: Gemini rejects an `OBJECT` schema with empty
/// `properties`, and a declaration without `parameters` means "no arguments".
pub(super) fn parameters(schema: &Value, budget: &mut usize) -> Option<Value> {
    let converted = convert(schema, budget);
    let takes_nothing = converted.get("properties").is_none()
        && converted.get("anyOf").is_none()
        && matches!(converted.get("type").and_then(Value::as_str), None | Some("object"));
    (!takes_nothing).then_some(converted)
}

/// Any schema (`response_format.json_schema.schema`).
pub(super) fn convert(schema: &Value, budget: &mut usize) -> Value {
    let mut c = Converter { root: schema, budget: *budget };
    let out = c.node(schema, 0, 0);
    *budget = c.budget;
    out
}

/// The budget for converting `schemas`, all the schemas of one request.
pub(super) fn budget<'a>(schemas: impl Iterator<Item = &'a Value>) -> usize {
    schemas.fold(BUDGET, |b, s| b.saturating_add(weight(s).saturating_mul(2)))
}

struct Converter<'a> {
    root: &'a Value,
    budget: usize,
}

impl<'a> Converter<'a> {
    /// `schema` converted; `refs` references were followed to reach it, at `nesting` levels deep.
    fn node(&mut self, schema: &Value, refs: usize, nesting: usize) -> Value {
        let Value::Object(obj) = schema else {
            // `true` / `{}`-like schemas: anything.
            return Value::Object(Map::new());
        };
        if self.budget == 0 || nesting >= MAX_NESTING {
            return object_type();
        }
        self.budget -= 1;
        let below = nesting + 1;
        if let Some(Value::String(r)) = obj.get("$ref") {
            return match self.resolve(r) {
                Some(target) if refs < MAX_REF_DEPTH => {
                    let mut inlined = self.node(target, refs + 1, nesting);
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
            self.budget = self.budget.saturating_sub(key.len() + 1);
            match key.as_str() {
                "properties" => {
                    let Value::Object(props) = value else { continue };
                    if props.is_empty() {
                        continue;
                    }
                    let mut converted = Map::new();
                    for (name, s) in props {
                        self.budget = self.budget.saturating_sub(name.len() + 1);
                        converted.insert(name.clone(), self.node(s, refs, below));
                    }
                    out.insert(key.clone(), Value::Object(converted));
                }
                "items" => {
                    out.insert(key.clone(), self.node(value, refs, below));
                }
                "anyOf" => {
                    let Value::Array(list) = value else { continue };
                    let mut members = Vec::with_capacity(list.len());
                    for member in list {
                        if member.get("type").and_then(Value::as_str) == Some("null") {
                            out.insert("nullable".into(), Value::Bool(true));
                        } else {
                            members.push(self.node(member, refs, below));
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
                        out.insert(key.clone(), self.charge(other));
                    }
                },
                "format" => {
                    if value.as_str().is_some_and(|f| FORMATS.contains(&f)) {
                        out.insert(key.clone(), value.clone());
                    }
                }
                _ => {
                    out.insert(key.clone(), self.charge(value));
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

    /// A copy of `value`, paid for from the budget (an `enum` of a referenced schema is copied once per use).
    fn charge(&mut self, value: &Value) -> Value {
        self.budget = self.budget.saturating_sub(weight(value));
        value.clone()
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

/// Size of a value in nodes plus string bytes (linear; values parsed by serde_json are at most 128 deep).
fn weight(v: &Value) -> usize {
    match v {
        Value::String(s) => 1 + s.len(),
        Value::Array(a) => a.iter().fold(1, |n, v| n.saturating_add(weight(v))),
        Value::Object(o) => o.iter().fold(1, |n, (k, v)| n.saturating_add(k.len()).saturating_add(weight(v))),
        _ => 1,
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
            assert_eq!(parameters(&input, &mut budget([&input].into_iter())), want, "{input}");
        }
    }

    #[test]
    fn fan_out_of_references_is_bounded() {
        // Each level refers to the next twice, down to a 100 KB enum: 2^12 copies of it if inlined naively.
        let mut defs = Map::new();
        for i in 0..12 {
            let next = format!("#/$defs/d{}", i + 1);
            let def = json!({"type": "object", "properties": {"a": {"$ref": next}, "b": {"$ref": next}}});
            defs.insert(format!("d{i}"), def);
        }
        let big: Vec<String> = (0..10_000).map(|i| format!("value-{i:04}")).collect();
        defs.insert("d12".into(), json!({"type": "string", "enum": big}));
        let schema = json!({"$defs": defs, "type": "object", "properties": {"root": {"$ref": "#/$defs/d0"}}});
        let input = schema.to_string().len();
        let out = convert(&schema, &mut budget([&schema].into_iter())).to_string().len();
        assert!(out < 4 * input + 4 * BUDGET, "{out} bytes from {input}");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = json!({"type": "string"});
        for _ in 0..100 {
            deep = json!({"type": "array", "items": deep});
        }
        let out = convert(&deep, &mut budget([&deep].into_iter()));
        let mut levels = 0;
        let mut at = &out;
        while let Some(items) = at.get("items") {
            levels += 1;
            at = items;
        }
        assert_eq!((levels, at), (MAX_NESTING, &json!({"type": "object"})));
    }
}
