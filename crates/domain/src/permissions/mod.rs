//! `Permissions`: what an extension declares it may reach and what a user granted
//! (spec 40 §2). A value object: parsed from the `permissions` mapping (the JSON value of the
//! manifest's YAML), kept in canonical form (each list normalised, sorted and deduplicated),
//! compared by coverage.
//!
//! - [`Permissions::covers`]: every entry of the other set is covered by one of this set.
//! - [`Permissions::added`]: what another set needs beyond this one (empty iff covered).
//! - [`Permissions::covers_url`], [`Permissions::covers_env`], [`Permissions::covers_secret`]:
//!   the allowlist check made before every `ctx.fetch` (before DNS), `ctx.env` and
//!   `ctx.secrets.get` (40 §4.1 step 2, §4.2, §4.3). O(entries); no allocation.
//!
//! A refusal is a [`PermissionsError`] naming the list and the entry, with the canonical
//! form or the rule broken; callers turn it into `manifest_invalid` or `ValidationFailed`.
//!
//! ```
//! use fen_domain::Permissions;
//! use serde_json::json;
//!
//! let declared = Permissions::from_json(&json!({
//!     "net": ["https://*.example.com", "http://127.0.0.1:8200"],
//!     "secrets": ["team:db/*"],
//! }))?;
//! let granted = Permissions::from_json(&json!({ "net": ["https://*.example.com"] }))?;
//! assert_eq!(
//!     granted.added(&declared).to_json(),
//!     json!({ "net": ["http://127.0.0.1:8200"], "secrets": ["team:db/*"] })
//! );
//! assert!(granted.covers_url(&"https://api.example.com/v1?x".parse()?));
//! assert!(!granted.covers_url(&"https://example.com/".parse()?));
//!
//! let refused = Permissions::from_json(&json!({ "net": ["http://127.1"] })).unwrap_err();
//! assert_eq!(refused.canonical(), Some("http://127.0.0.1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod address;
mod env;
mod net;
mod secrets;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};
use url::{Host, Url};

pub use address::is_public_address;
pub use env::{EnvName, EnvRule};
pub use net::{NetEntry, NetHost, NetPort, NetRule, NetScheme};
pub use secrets::{SecretRef, SecretRule};

/// At most this many entries in each of `net`, `env` and `secrets`.
pub const MAX_ENTRIES: usize = 64;

/// A canonical set of permissions. The default is the empty set (nothing declared).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Permissions {
    net: Vec<NetEntry>,
    env: Vec<EnvName>,
    secrets: Vec<SecretRef>,
}

/// Why a `permissions` value was refused. Messages name the entry and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PermissionsError {
    /// `permissions` is not a mapping.
    #[error("permissions must be a mapping with net, env and secrets lists")]
    NotAMapping,
    /// A key other than `net`, `env`, `secrets`.
    #[error("permissions has unknown key `{0}` (allowed: net, env, secrets)")]
    UnknownKey(String),
    /// A list that is not a list of strings.
    #[error("permissions.{list} must be a list of strings")]
    NotAList {
        /// `net`, `env` or `secrets`.
        list: &'static str,
    },
    /// More than [`MAX_ENTRIES`] entries.
    #[error("permissions.{list} has {count} entries; at most {MAX_ENTRIES} are allowed")]
    TooMany {
        /// `net`, `env` or `secrets`.
        list: &'static str,
        /// How many were given.
        count: usize,
    },
    /// A refused `net` entry.
    #[error("permissions.net entry `{entry}` {rule}")]
    Net {
        /// The entry as written.
        entry: String,
        /// The rule it breaks.
        rule: NetRule,
    },
    /// A refused `env` entry.
    #[error("permissions.env entry `{entry}` {rule}")]
    Env {
        /// The entry as written.
        entry: String,
        /// The rule it breaks.
        rule: EnvRule,
    },
    /// A refused `secrets` entry.
    #[error("permissions.secrets entry `{entry}` {rule}")]
    Secret {
        /// The entry as written.
        entry: String,
        /// The rule it breaks.
        rule: SecretRule,
    },
}

impl PermissionsError {
    /// The canonical form to write instead, when the refusal has one.
    pub fn canonical(&self) -> Option<&str> {
        match self {
            PermissionsError::Net {
                rule: NetRule::NotCanonical { canonical },
                ..
            } => Some(canonical),
            _ => None,
        }
    }
}

impl Permissions {
    /// The empty set.
    pub fn none() -> Permissions {
        Permissions::default()
    }

    /// Parses the `permissions` value (JSON `null` = none), every rule of spec 40 §2.
    pub fn from_json(value: &Value) -> Result<Permissions, PermissionsError> {
        let map = match value {
            Value::Null => return Ok(Permissions::none()),
            Value::Object(map) => map,
            _ => return Err(PermissionsError::NotAMapping),
        };
        if let Some(key) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "net" | "env" | "secrets"))
        {
            return Err(PermissionsError::UnknownKey(key.clone()));
        }
        let net = parse_list(map, "net", |entry| {
            NetEntry::parse(entry).map_err(|rule| PermissionsError::Net {
                entry: entry.to_owned(),
                rule,
            })
        })?;
        let env = parse_list(map, "env", |entry| {
            EnvName::parse(entry).map_err(|rule| PermissionsError::Env {
                entry: entry.to_owned(),
                rule,
            })
        })?;
        let secrets = parse_list(map, "secrets", |entry| {
            SecretRef::parse(entry).map_err(|rule| PermissionsError::Secret {
                entry: entry.to_owned(),
                rule,
            })
        })?;
        Ok(Permissions::from_entries(net, env, secrets))
    }

    /// A canonical set from already validated entries (sorted, deduplicated).
    pub fn from_entries(
        mut net: Vec<NetEntry>,
        mut env: Vec<EnvName>,
        mut secrets: Vec<SecretRef>,
    ) -> Permissions {
        net.sort();
        net.dedup();
        env.sort();
        env.dedup();
        secrets.sort();
        secrets.dedup();
        Permissions { net, env, secrets }
    }

    /// The canonical JSON value: `{"net": [...], "env": [...], "secrets": [...]}` with empty
    /// lists omitted (`{}` for none), as the lockfile and grant store pin it.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        let mut put = |key: &str, items: Vec<String>| {
            if !items.is_empty() {
                map.insert(key.to_owned(), Value::from(items));
            }
        };
        put("net", self.net.iter().map(ToString::to_string).collect());
        put("env", self.env.iter().map(ToString::to_string).collect());
        put(
            "secrets",
            self.secrets.iter().map(ToString::to_string).collect(),
        );
        Value::Object(map)
    }

    /// The `net` entries, sorted.
    pub fn net(&self) -> &[NetEntry] {
        &self.net
    }

    /// The `env` entries, sorted.
    pub fn env(&self) -> &[EnvName] {
        &self.env
    }

    /// The `secrets` entries, sorted.
    pub fn secrets(&self) -> &[SecretRef] {
        &self.secrets
    }

    /// No entry at all.
    pub fn is_empty(&self) -> bool {
        self.net.is_empty() && self.env.is_empty() && self.secrets.is_empty()
    }

    /// Whether every entry of `other` is covered by an entry of this set (spec 40 §2).
    pub fn covers(&self, other: &Permissions) -> bool {
        self.added(other).is_empty()
    }

    /// The entries of `other` not covered by this set: what a grant of `self` lacks for a
    /// declaration `other`. Empty iff `self` covers `other`.
    pub fn added(&self, other: &Permissions) -> Permissions {
        Permissions {
            net: uncovered(&self.net, &other.net, NetEntry::covers),
            env: uncovered(&self.env, &other.env, |a, b| a == b),
            secrets: uncovered(&self.secrets, &other.secrets, SecretRef::covers),
        }
    }

    /// Whether a request to `url` passes the allowlist (spec 40 §4.1 steps 1–2): scheme
    /// http/https, no userinfo, and the serialised host and effective port covered by a
    /// `net` entry. Returns the covering entry (the address rule of step 3 asks whether it
    /// names the resolved address literally).
    pub fn covering_entry(&self, url: &Url) -> Option<&NetEntry> {
        let scheme = match url.scheme() {
            "http" => NetScheme::Http,
            "https" => NetScheme::Https,
            _ => return None,
        };
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let host = url.host()?;
        let port = url.port_or_known_default()?;
        self.net
            .iter()
            .find(|entry| entry.covers_target(scheme, &host, port))
    }

    /// Whether a request to `url` passes the allowlist; see [`Permissions::covering_entry`].
    pub fn covers_url(&self, url: &Url) -> bool {
        self.covering_entry(url).is_some()
    }

    /// Whether `host` (as a URL serialises it) on `port` over `scheme` is covered.
    pub fn covers_origin(&self, scheme: NetScheme, host: &Host<&str>, port: u16) -> bool {
        self.net
            .iter()
            .any(|entry| entry.covers_target(scheme, host, port))
    }

    /// Whether `ctx.env(name)` may read `name`.
    pub fn covers_env(&self, name: &str) -> bool {
        self.env.iter().any(|entry| entry.as_str() == name)
    }

    /// Whether `ctx.secrets.get` may read `key` of `vault`, where `default_vault` is the
    /// vault that entries without one mean at call time.
    pub fn covers_secret(&self, default_vault: &str, vault: &str, key: &str) -> bool {
        self.secrets
            .iter()
            .any(|entry| entry.covers_key(default_vault, vault, key))
    }
}

fn parse_list<T>(
    map: &Map<String, Value>,
    list: &'static str,
    parse: impl Fn(&str) -> Result<T, PermissionsError>,
) -> Result<Vec<T>, PermissionsError> {
    let items = match map.get(list) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(PermissionsError::NotAList { list }),
    };
    if items.len() > MAX_ENTRIES {
        return Err(PermissionsError::TooMany {
            list,
            count: items.len(),
        });
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(text) => parse(text),
            _ => Err(PermissionsError::NotAList { list }),
        })
        .collect()
}

fn uncovered<T: Clone>(own: &[T], other: &[T], covers: impl Fn(&T, &T) -> bool) -> Vec<T> {
    other
        .iter()
        .filter(|wanted| !own.iter().any(|have| covers(have, wanted)))
        .cloned()
        .collect()
}
