//! `net` entries (spec 40 §2): `scheme://host[:port]`, parsed by the WHATWG parser of the
//! `url` crate (the one used at request time) and accepted only in canonical form.

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::address::is_public_address;

/// The scheme of a net entry or request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NetScheme {
    /// `http`, default port 80.
    Http,
    /// `https`, default port 443.
    Https,
}

impl NetScheme {
    fn parse(text: &str) -> Option<NetScheme> {
        match text {
            "http" => Some(NetScheme::Http),
            "https" => Some(NetScheme::Https),
            _ => None,
        }
    }

    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            NetScheme::Http => "http",
            NetScheme::Https => "https",
        }
    }

    /// The port a URL of this scheme uses when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            NetScheme::Http => 80,
            NetScheme::Https => 443,
        }
    }
}

/// The host of a net entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NetHost {
    /// A DNS name in ASCII, lower case (`api.github.com`, `localhost`).
    Name(String),
    /// `*.` + the base name: any subdomain of the base at any depth, never the base itself.
    Wildcard(String),
    /// An IPv4 literal.
    Ipv4(Ipv4Addr),
    /// An IPv6 literal (written bracketed).
    Ipv6(Ipv6Addr),
}

/// The port of a net entry: one port (the scheme's default when the entry names none) or any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetPort {
    /// Exactly this port.
    Port(u16),
    /// `:*`, any port.
    Any,
}

impl Ord for NetPort {
    fn cmp(&self, other: &Self) -> Ordering {
        let key = |port: &NetPort| match port {
            NetPort::Port(n) => u32::from(*n),
            NetPort::Any => u32::MAX,
        };
        key(self).cmp(&key(other))
    }
}

impl PartialOrd for NetPort {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One validated `net` entry. `Display` gives its canonical text (no default port, no `/`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetEntry {
    scheme: NetScheme,
    host: NetHost,
    port: NetPort,
}

/// Why a `net` entry was refused (the message of `PermissionsError::Net`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetRule {
    /// The WHATWG parser refused it.
    #[error("is not a URL ({0})")]
    NotAUrl(String),
    /// Not `http` or `https`.
    #[error("has scheme `{0}`; only http and https are allowed")]
    Scheme(String),
    /// `user[:password]@`.
    #[error("has userinfo; write scheme://host[:port] only")]
    Userinfo,
    /// A path other than `/`, a query or a fragment.
    #[error("has a path, query or fragment; write scheme://host[:port] only")]
    PathQueryFragment,
    /// The parser's serialisation differs from the input.
    #[error("is not in canonical form; write `{canonical}`")]
    NotCanonical {
        /// The canonical form of the same URL.
        canonical: String,
    },
    /// An empty label, a trailing dot, or a character outside `[a-z0-9_-]`.
    #[error("has an invalid host name `{0}` (labels of a-z, 0-9, `-` and `_`; no trailing dot)")]
    HostName(String),
    /// `*` anywhere but as the whole first label.
    #[error("has a wildcard that is not the first label; only `*.` + a name is allowed")]
    WildcardPosition,
    /// `*.` + a base of fewer than two labels.
    #[error("has a wildcard base with fewer than two labels")]
    WildcardTooShort,
    /// `*.` + a base whose last label is numeric.
    #[error("has a wildcard base whose last label is numeric")]
    WildcardNumeric,
    /// `*.` + a public suffix.
    #[error("has a wildcard over the public suffix `{0}`")]
    WildcardPublicSuffix(String),
    /// Port 0.
    #[error("has port 0; use 1..65535 or `*`")]
    PortZero,
    /// `:*` on a non-public literal or `localhost`.
    #[error("has port `*` on a non-public address or localhost; name the port")]
    AnyPortNotPublic,
}

impl NetEntry {
    /// Parses one entry by the rules of spec 40 §2.
    pub fn parse(input: &str) -> Result<NetEntry, NetRule> {
        let trimmed = input.strip_suffix('/').unwrap_or(input);
        let (body, any_port) = match trimmed.strip_suffix(":*") {
            Some(rest) => (rest, true),
            None => (trimmed, false),
        };
        // Checked before the WHATWG parser, which reads a name ending in a numeric label as
        // an IPv4 address and would only say "invalid IPv4 address".
        let host_text = host_text(body);
        if let Some(base) = host_text.strip_prefix("*.") {
            check_wildcard_base_shape(base)?;
        } else if host_text.contains('*') {
            return Err(NetRule::WildcardPosition);
        }
        let url = Url::parse(body).map_err(|e| NetRule::NotAUrl(e.to_string()))?;
        let scheme =
            NetScheme::parse(url.scheme()).ok_or_else(|| NetRule::Scheme(url.scheme().into()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(NetRule::Userinfo);
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(NetRule::PathQueryFragment);
        }
        let serialised = url.as_str().strip_suffix('/').unwrap_or(url.as_str());
        if serialised != body {
            let canonical = if any_port {
                format!("{serialised}:*")
            } else {
                serialised.to_owned()
            };
            // Hint a form that is itself accepted: when the canonical text breaks another
            // rule (`HTTPS://*.CO.UK`, `http://127.1:*`), report that rule instead. The
            // serialiser is idempotent, so this recursion is one level deep.
            NetEntry::parse(&canonical)?;
            return Err(NetRule::NotCanonical { canonical });
        }
        let host = match url.host() {
            Some(Host::Domain(name)) => match name.strip_prefix("*.") {
                Some(base) => {
                    check_name(base)?;
                    check_wildcard_base_suffix(base)?;
                    NetHost::Wildcard(base.to_owned())
                }
                None => {
                    check_name(name)?;
                    NetHost::Name(name.to_owned())
                }
            },
            Some(Host::Ipv4(addr)) => NetHost::Ipv4(addr),
            Some(Host::Ipv6(addr)) => NetHost::Ipv6(addr),
            None => return Err(NetRule::NotAUrl("no host".into())),
        };
        let port = if any_port {
            let not_public = match &host {
                NetHost::Ipv4(addr) => !is_public_address(IpAddr::V4(*addr)),
                NetHost::Ipv6(addr) => !is_public_address(IpAddr::V6(*addr)),
                NetHost::Name(name) => is_localhost(name),
                NetHost::Wildcard(base) => is_localhost(base),
            };
            if not_public {
                return Err(NetRule::AnyPortNotPublic);
            }
            NetPort::Any
        } else {
            let port = url.port_or_known_default().unwrap_or(scheme.default_port());
            if port == 0 {
                return Err(NetRule::PortZero);
            }
            NetPort::Port(port)
        };
        Ok(NetEntry { scheme, host, port })
    }

    /// The scheme.
    pub fn scheme(&self) -> NetScheme {
        self.scheme
    }

    /// The host.
    pub fn host(&self) -> &NetHost {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> NetPort {
        self.port
    }

    /// Whether this entry names `addr` literally (an IP literal equal to it), the exception
    /// of spec 40 §4.1 step 3 for non-public addresses.
    pub fn names_address(&self, addr: IpAddr) -> bool {
        match (&self.host, addr) {
            (NetHost::Ipv4(own), IpAddr::V4(other)) => *own == other,
            (NetHost::Ipv6(own), IpAddr::V6(other)) => *own == other,
            _ => false,
        }
    }

    /// Entry coverage of spec 40 §2: same scheme; same host, or this is `*.d` and the other
    /// is `*.e` or a name `e` with `e` ending in `.d`; same port, or this port is `*`.
    pub fn covers(&self, other: &NetEntry) -> bool {
        if self.scheme != other.scheme || !port_covers(self.port, other.port) {
            return false;
        }
        match (&self.host, &other.host) {
            (NetHost::Wildcard(base), NetHost::Wildcard(e)) => e == base || is_below(e, base),
            (NetHost::Wildcard(base), NetHost::Name(e)) => is_below(e, base),
            (own, other) => own == other,
        }
    }

    /// Whether this entry covers a request to `scheme://host:port` (the host as the URL
    /// serialises it). Allocates nothing.
    pub fn covers_target(&self, scheme: NetScheme, host: &Host<&str>, port: u16) -> bool {
        if self.scheme != scheme || !port_covers(self.port, NetPort::Port(port)) {
            return false;
        }
        match (&self.host, host) {
            (NetHost::Name(own), Host::Domain(name)) => own == name,
            (NetHost::Wildcard(base), Host::Domain(name)) => is_below(name, base),
            (NetHost::Ipv4(own), Host::Ipv4(addr)) => own == addr,
            (NetHost::Ipv6(own), Host::Ipv6(addr)) => own == addr,
            _ => false,
        }
    }
}

impl fmt::Display for NetEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            NetHost::Name(name) => f.write_str(name)?,
            NetHost::Wildcard(base) => write!(f, "*.{base}")?,
            NetHost::Ipv4(addr) => write!(f, "{addr}")?,
            // The WHATWG serialisation (`::ffff:7f00:1`), not std's (`::ffff:127.0.0.1`).
            NetHost::Ipv6(addr) => write!(f, "{}", Host::<&str>::Ipv6(*addr))?,
        }
        match self.port {
            NetPort::Any => f.write_str(":*"),
            NetPort::Port(n) if n == self.scheme.default_port() => Ok(()),
            NetPort::Port(n) => write!(f, ":{n}"),
        }
    }
}

fn port_covers(own: NetPort, other: NetPort) -> bool {
    own == NetPort::Any || own == other
}

/// `name` is a strict subdomain of `base` (ends in `.` + base, with something before it).
fn is_below(name: &str, base: &str) -> bool {
    name.len() > base.len() + 1
        && name.ends_with(base)
        && name.as_bytes()[name.len() - base.len() - 1] == b'.'
        && !name.contains('*')
}

fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// The text between `scheme://` and the port, path or end (best effort, for the wildcard
/// pre-check only; the WHATWG parser has the last word).
fn host_text(body: &str) -> &str {
    let after = body.split_once("://").map_or(body, |(_, rest)| rest);
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.starts_with('[') {
        return host;
    }
    host.split(':').next().unwrap_or(host)
}

fn check_wildcard_base_shape(base: &str) -> Result<(), NetRule> {
    if base.contains('*') {
        return Err(NetRule::WildcardPosition);
    }
    let labels: Vec<&str> = base.split('.').collect();
    if labels.len() < 2 {
        return Err(NetRule::WildcardTooShort);
    }
    let last = labels.last().copied().unwrap_or_default();
    if is_numeric_label(last) {
        return Err(NetRule::WildcardNumeric);
    }
    Ok(())
}

/// A label the WHATWG host parser reads as a number (decimal, or `0x` hex).
fn is_numeric_label(label: &str) -> bool {
    let lower = label.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        return hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    !label.is_empty() && label.chars().all(|c| c.is_ascii_digit())
}

fn check_wildcard_base_suffix(base: &str) -> Result<(), NetRule> {
    match psl::suffix(base.as_bytes()) {
        Some(suffix) if suffix.as_bytes() == base.as_bytes() => {
            Err(NetRule::WildcardPublicSuffix(base.to_owned()))
        }
        _ => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), NetRule> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(NetRule::HostName(name.to_owned()))
    }
}
