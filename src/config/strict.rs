//! Strict configuration: a key that no setting reads stops the start, naming the key.
//!
//! serde ignores unknown keys, so `PLAIDHOOK__API__TOKEN__ADMIN` (singular) or a misspelt
//! `[webhooks]` table would be dropped silently and the process would run on defaults: every
//! API call 401, or webhooks refused, with no hint why. `serde_ignored` reports each key the
//! deserializer skipped; the `[sim]` table is checked here by hand, because its behaviour
//! settings are `#[serde(flatten)]`ed and serde skips unknown keys of a flattened struct
//! without telling anyone.

use serde_json::Value;

use super::DEFAULT_TOML;
use crate::sim::SimConfig;

/// The keys of `[sim]` that `SimSettings` reads itself, beside its flattened `SimConfig`.
const SIM_OWN_KEYS: &[&str] = &["host", "port", "embedded", "state_file", "fresh"];

/// The keys of the merged `[sim]` table that neither `SimSettings` nor `SimConfig` reads, as
/// full paths (`sim.sede`).
pub(super) fn unknown_sim_keys(raw: &config::Config) -> Vec<String> {
    let Ok(table) = raw.get_table("sim") else {
        return Vec::new();
    };
    let known = sim_keys();
    let mut unknown: Vec<String> = table
        .keys()
        .filter(|key| !known.iter().any(|k| k == key.as_str()))
        .map(|key| format!("sim.{key}"))
        .collect();
    unknown.sort();
    unknown
}

/// Every key `[sim]` accepts.
fn sim_keys() -> Vec<String> {
    let behaviour = match serde_json::to_value(SimConfig::default()) {
        Ok(Value::Object(fields)) => fields.into_iter().map(|(key, _)| key).collect(),
        _ => Vec::new(),
    };
    SIM_OWN_KEYS
        .iter()
        .map(|key| (*key).to_owned())
        .chain(behaviour)
        .collect()
}

/// Fails with every unknown key named, each with the environment variable that would set it
/// and, when a known key is one typo away, that key.
pub(super) fn refuse_unknown(mut unknown: Vec<String>) -> anyhow::Result<()> {
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    unknown.dedup();
    let known = known_paths();
    let named: Vec<String> = unknown
        .iter()
        .map(|path| {
            let variable = format!("PLAIDHOOK__{}", path.replace('.', "__").to_uppercase());
            match suggestion(path, &known) {
                Some(near) => format!("`{path}` ({variable}; did you mean `{near}`?)"),
                None => format!("`{path}` ({variable})"),
            }
        })
        .collect();
    anyhow::bail!(
        "unknown setting{} {}: no setting has that name; check the spelling in \
         config/<environment>.toml and in PLAIDHOOK__* environment variables",
        if named.len() == 1 { "" } else { "s" },
        named.join(", ")
    )
}

/// Every setting's path in the defaults (`api.tokens`, `sync.page_size`, …) plus `[sim]`'s.
fn known_paths() -> Vec<String> {
    let mut paths = Vec::new();
    let defaults = config::Config::builder()
        .add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ))
        .build()
        .and_then(|c| c.try_deserialize::<Value>());
    if let Ok(Value::Object(sections)) = defaults {
        for (section, value) in sections {
            if let Value::Object(keys) = value {
                paths.extend(keys.keys().map(|key| format!("{section}.{key}")));
            }
            paths.push(section);
        }
    }
    paths.extend(sim_keys().into_iter().map(|key| format!("sim.{key}")));
    paths
}

/// The known path with the same parent that is closest to `path`, if it is a typo away.
fn suggestion<'a>(path: &str, known: &'a [String]) -> Option<&'a str> {
    let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    known
        .iter()
        .filter_map(|candidate| {
            let (candidate_parent, candidate_leaf) =
                candidate.rsplit_once('.').unwrap_or(("", candidate));
            (candidate_parent == parent).then(|| (edit_distance(leaf, candidate_leaf), candidate))
        })
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.as_str())
}

/// Levenshtein distance; keys are short, so the quadratic table is nothing.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_answered_with_the_key_it_was_meant_to_be() {
        let known = known_paths();
        assert_eq!(suggestion("api.token", &known), Some("api.tokens"));
        assert_eq!(suggestion("sync.page_sise", &known), Some("sync.page_size"));
        assert_eq!(suggestion("sim.sede", &known), Some("sim.seed"));
        assert_eq!(suggestion("sync.something_else", &known), None);
    }

    #[test]
    fn every_key_of_sim_config_is_known_so_none_is_refused() {
        let keys = sim_keys();
        for key in ["host", "port", "seed", "transaction_extra_fields", "today"] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
    }

    #[test]
    fn the_error_names_each_key_and_its_variable() {
        let error = refuse_unknown(vec!["api.token".into(), "webhooks".into()])
            .unwrap_err()
            .to_string();
        assert!(error.contains("`api.token` (PLAIDHOOK__API__TOKEN; did you mean `api.tokens`?)"));
        assert!(error.contains("`webhooks` (PLAIDHOOK__WEBHOOKS; did you mean `webhook`?)"));
        assert!(refuse_unknown(Vec::new()).is_ok());
    }
}
