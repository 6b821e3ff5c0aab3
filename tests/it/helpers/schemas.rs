//! The official Plaid OpenAPI schemas as JSON-Schema validators. The spec is read where it
//! lives (`$PLAID_OPENAPI_DIR`, else `../shared/plaid-openapi` beside the crate), never copied.
//! OpenAPI 3.0 specifics are translated: `nullable: true` becomes a type union (or `anyOf`
//! with null), boolean `exclusiveMinimum` / `exclusiveMaximum` are dropped.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;

pub struct Spec {
    components: Value,
    fallback: Option<Value>,
    validators: HashMap<String, jsonschema::Validator>,
}

pub fn spec_dir() -> PathBuf {
    std::env::var_os("PLAID_OPENAPI_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/plaid-openapi")
        })
}

fn load(path: &std::path::Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("the spec parses as YAML");
    let mut value: Value = serde_json::to_value(yaml).expect("the spec converts to JSON");
    translate(&mut value);
    Some(json!({"components": value["components"].take()}))
}

/// Load the spec, or say plainly why the test is skipped.
pub fn load_spec() -> Option<Spec> {
    let dir = spec_dir();
    let Some(components) = load(&dir.join("subset.yml")) else {
        eprintln!(
            "SKIPPED: Plaid OpenAPI spec not found at {} (set PLAID_OPENAPI_DIR)",
            dir.join("subset.yml").display()
        );
        return None;
    };
    Some(Spec {
        components,
        fallback: None,
        validators: HashMap::new(),
    })
}

fn translate(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                translate(child);
            }
            for key in ["exclusiveMinimum", "exclusiveMaximum"] {
                if map.get(key).is_some_and(Value::is_boolean) {
                    map.remove(key);
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                if let Some(Value::String(kind)) = map.get("type").cloned() {
                    map.insert("type".into(), json!([kind, "null"]));
                    if let Some(Value::Array(options)) = map.get_mut("enum") {
                        if !options.contains(&Value::Null) {
                            options.push(Value::Null);
                        }
                    }
                } else {
                    let inner = Value::Object(std::mem::take(map));
                    let mut wrapped = Map::new();
                    wrapped.insert("anyOf".into(), json!([{"type": "null"}, inner]));
                    *map = wrapped;
                }
            } else if map.get("nullable") == Some(&Value::Bool(false)) {
                map.remove("nullable");
            }
        }
        Value::Array(items) => items.iter_mut().for_each(translate),
        _ => {}
    }
}

impl Spec {
    fn has(doc: &Value, name: &str) -> bool {
        doc["components"]["schemas"].get(name).is_some()
    }

    /// The document holding `name`: the subset, else (for schemas the subset left out) the
    /// full spec beside it.
    fn document_for(&mut self, name: &str) -> Option<&Value> {
        if Self::has(&self.components, name) {
            return Some(&self.components);
        }
        if self.fallback.is_none() {
            self.fallback = load(&spec_dir().join("2020-09-14.yml"));
        }
        self.fallback.as_ref().filter(|doc| Self::has(doc, name))
    }

    /// Validate `instance` against `#/components/schemas/<name>`; panics with every violation.
    pub fn validate(&mut self, name: &str, instance: &Value) {
        if !self.validators.contains_key(name) {
            let Some(document) = self.document_for(name) else {
                panic!("schema {name} is in neither the subset nor the full spec");
            };
            let mut root = document.clone();
            root["$ref"] = json!(format!("#/components/schemas/{name}"));
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("schema {name} compiles: {e}"));
            self.validators.insert(name.to_owned(), validator);
        }
        let validator = &self.validators[name];
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{name} violations:\n{}\ninstance: {instance:#}",
            errors.join("\n")
        );
    }
}
