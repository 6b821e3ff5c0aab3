//! List settings, written as a TOML list or, from the environment, one comma-separated string
//! (`entries`), and the IP networks among them (`webhook.allowed_sources`,
//! `webhook.trusted_proxies`): each entry an address (`52.21.26.131`), a network
//! (`10.0.0.0/8`), or `plaid`, which stands for the addresses Plaid publishes as the sources of
//! its webhooks.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// The addresses Plaid sends webhooks from, as published in its webhook documentation
/// ("subject to change": an operator lists new ones beside `plaid` until a release has them).
pub const PLAID_WEBHOOK_SOURCES: [&str; 4] = [
    "52.21.26.131",
    "52.21.47.157",
    "52.41.247.19",
    "52.88.82.239",
];

/// The entries of a list setting, written as a TOML list or, from the environment, one
/// comma-separated string; trimmed, empty ones dropped.
pub(super) fn entries<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        List(Vec<String>),
        Joined(String),
    }
    let entries: Vec<String> = match Written::deserialize(deserializer)? {
        Written::List(entries) => entries,
        Written::Joined(joined) => joined.split(',').map(str::to_owned).collect(),
    };
    Ok(entries
        .into_iter()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect())
}

/// `#[serde(deserialize_with = "networks::list")]`
pub fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    let mut networks = Vec::new();
    for entry in entries(deserializer)? {
        let entry = entry.as_str();
        if entry.eq_ignore_ascii_case("plaid") {
            networks.extend(
                PLAID_WEBHOOK_SOURCES
                    .iter()
                    .map(|a| network(a).expect("valid")),
            );
        } else {
            networks.push(network(entry).map_err(D::Error::custom)?);
        }
    }
    Ok(networks)
}

/// `10.0.0.0/8`, or a single address as its own /32 (/128).
fn network(entry: &str) -> Result<IpNet, String> {
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{entry}` is not an IP address or network (e.g. 10.0.0.0/8)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Settings {
        #[serde(deserialize_with = "list")]
        nets: Vec<IpNet>,
    }

    fn parse(json: &str) -> Result<Vec<String>, String> {
        serde_json::from_str::<Settings>(json)
            .map(|s| s.nets.iter().map(ToString::to_string).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn lists_joined_strings_addresses_networks_and_plaid() {
        assert_eq!(
            parse(r#"{"nets": ["10.0.0.0/8", "192.0.2.1"]}"#).unwrap(),
            ["10.0.0.0/8", "192.0.2.1/32"]
        );
        assert_eq!(
            parse(r#"{"nets": "10.1.0.0/16, ::1"}"#).unwrap(),
            ["10.1.0.0/16", "::1/128"]
        );
        assert_eq!(parse(r#"{"nets": "plaid"}"#).unwrap().len(), 4);
        assert_eq!(parse(r#"{"nets": ""}"#).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_mistyped_entry_is_an_error_that_names_it() {
        let error = parse(r#"{"nets": ["10.0.0.0/8", "10.0.0.300"]}"#).unwrap_err();
        assert!(error.contains("`10.0.0.300`"), "{error}");
    }
}
