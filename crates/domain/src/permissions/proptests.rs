//! Property tests of `Permissions`: canonicalisation is idempotent, a set covers itself,
//! `added(a, b)` is empty iff `a` covers `b`, a URL is covered by a canonical set iff by the
//! set it came from, and `covers_url` agrees with a string-level oracle written here without
//! the `url` crate (`oracle_case_count` prints how many cases ran).

use std::cell::Cell;

use proptest::prelude::*;
use url::Url;

use super::tests::net;
use super::*;

const LABELS: &[&str] = &["a", "api", "example", "test", "xn--gthub-zsa", "com", "x-y"];
const LITERALS: &[&str] = &[
    "127.0.0.1",
    "8.8.8.8",
    "[::1]",
    "[2606:4700::1111]",
    "localhost",
];

/// A canonical host name of 1..=4 labels from a small alphabet, so entries and URLs meet.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(LABELS), 1..=3).prop_map(|labels| labels.join("."))
}

fn scheme() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["http", "https"][..])
}

fn port() -> impl Strategy<Value = Option<u16>> {
    prop::sample::select(&[None, Some(80), Some(443), Some(8080), Some(1)][..])
}

/// Entry text: canonical when it parses (the parser may still refuse it, e.g. a wildcard
/// over a public suffix); `None` port = default, and a `:*` sometimes.
fn entry_text() -> impl Strategy<Value = String> {
    (
        scheme(),
        prop_oneof![
            name(),
            name().prop_map(|n| format!("*.{n}")),
            prop::sample::select(LITERALS).prop_map(str::to_owned),
        ],
        port(),
        any::<bool>(),
    )
        .prop_map(|(scheme, host, port, any_port)| {
            let default = if scheme == "http" { 80 } else { 443 };
            match (any_port, port) {
                (true, _) => format!("{scheme}://{host}:*"),
                (false, Some(p)) if p != default => format!("{scheme}://{host}:{p}"),
                _ => format!("{scheme}://{host}"),
            }
        })
}

fn permissions() -> impl Strategy<Value = Permissions> {
    (
        prop::collection::vec(entry_text(), 0..6),
        prop::collection::vec(prop::sample::select(&["A", "B", "AWS_REGION"][..]), 0..3),
        prop::collection::vec(
            prop::sample::select(&["x", "db/x", "db/*", "db/x/*", "t:db/*", "t:x", "t:db/x/y"][..]),
            0..4,
        ),
    )
        .prop_map(|(net, env, secrets)| {
            let net = net.iter().filter_map(|e| NetEntry::parse(e).ok()).collect();
            let env = env.iter().filter_map(|e| EnvName::parse(e).ok()).collect();
            let secrets = secrets
                .iter()
                .filter_map(|e| SecretRef::parse(e).ok())
                .collect();
            Permissions::from_entries(net, env, secrets)
        })
}

/// A request URL from the same alphabet, with a path and query that must not matter.
fn request() -> impl Strategy<Value = (String, String, Option<u16>)> {
    (
        scheme(),
        prop_oneof![
            name(),
            prop::sample::select(LITERALS).prop_map(str::to_owned)
        ],
        port(),
    )
        .prop_map(|(s, h, p)| (s.to_owned(), h, p))
}

fn request_url((scheme, host, port): &(String, String, Option<u16>)) -> String {
    match port {
        Some(p) => format!("{scheme}://{host}:{p}/some/path?q=1"),
        None => format!("{scheme}://{host}/some/path?q=1"),
    }
}

/// The oracle: spec 40 §2 coverage on plain strings, written without the `url` crate.
fn oracle_entry_covers(entry: &str, (scheme, host, port): &(String, String, Option<u16>)) -> bool {
    let Some((entry_scheme, rest)) = entry.split_once("://") else {
        return false;
    };
    let default = if scheme == "http" { 80 } else { 443 };
    let wanted_port = port.unwrap_or(default);
    // IPv6 literals carry `:` inside brackets; the port is after `]`.
    let (entry_host, entry_port) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains(']') => (&rest[..i], &rest[i + 1..]),
        _ => (rest, ""),
    };
    let port_ok = match entry_port {
        "*" => true,
        "" => wanted_port == default,
        digits => digits.parse::<u16>().ok() == Some(wanted_port),
    };
    let host_ok = match entry_host.strip_prefix("*.") {
        Some(base) => host.ends_with(&format!(".{base}")),
        None => entry_host == host,
    };
    entry_scheme == scheme && port_ok && host_ok
}

fn shuffled_with_duplicates(p: &Permissions, seed: u64) -> Permissions {
    let mut net = p.net.clone();
    net.extend(p.net.iter().take(2).cloned());
    let n = net.len().max(1);
    net.rotate_left((seed as usize) % n);
    net.reverse();
    Permissions {
        net,
        env: p.env.iter().rev().cloned().collect(),
        secrets: p
            .secrets
            .iter()
            .rev()
            .cloned()
            .chain(p.secrets.first().cloned())
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_entry_text_never_panics_and_accepted_text_is_canonical(
        scheme in prop::sample::select(&["http://", "https://", "HTTP://", "ftp://", ""][..]),
        rest in "[a-zA-Z0-9:/.*%@_\\[\\]\\-]{0,24}",
    ) {
        let input = format!("{scheme}{rest}");
        if let Ok(entry) = NetEntry::parse(&input) {
            // What is accepted prints exactly as written (a trailing `/` aside) and parses
            // back to itself.
            prop_assert_eq!(entry.to_string(), input.strip_suffix('/').unwrap_or(&input));
            prop_assert_eq!(NetEntry::parse(&entry.to_string()), Ok(entry));
        }
        // A canonical-form hint is always an entry that is accepted as written.
        if let Err(NetRule::NotCanonical { canonical }) = NetEntry::parse(&input) {
            prop_assert_eq!(NetEntry::parse(&canonical).map(|e| e.to_string()), Ok(canonical));
        }
    }

    #[test]
    fn canonicalisation_is_idempotent(p in permissions()) {
        let again = Permissions::from_json(&p.to_json()).expect("a canonical set parses");
        prop_assert_eq!(&again, &p);
        prop_assert_eq!(again.to_json(), p.to_json());
        let rebuilt = Permissions::from_entries(p.net.clone(), p.env.clone(), p.secrets.clone());
        prop_assert_eq!(rebuilt, p);
    }

    #[test]
    fn a_set_covers_itself(p in permissions()) {
        prop_assert!(p.covers(&p));
        prop_assert!(p.added(&p).is_empty());
        prop_assert!(p.covers(&Permissions::none()));
    }

    #[test]
    fn added_is_empty_iff_covered(a in permissions(), b in permissions()) {
        let added = a.added(&b);
        prop_assert_eq!(added.is_empty(), a.covers(&b));
        // Entry-wise: nothing in `added` is covered, everything left out is.
        for entry in &b.net {
            let missing = added.net.contains(entry);
            prop_assert_eq!(missing, !a.net.iter().any(|g| g.covers(entry)));
        }
        // Granting what was added makes the grant cover the declaration.
        let widened = Permissions::from_entries(
            [a.net.clone(), added.net.clone()].concat(),
            [a.env.clone(), added.env.clone()].concat(),
            [a.secrets.clone(), added.secrets.clone()].concat(),
        );
        prop_assert!(widened.covers(&b));
    }

    #[test]
    fn a_url_is_covered_by_the_canonical_set_iff_by_its_source(
        p in permissions(), seed in any::<u64>(), target in request(),
    ) {
        let raw = shuffled_with_duplicates(&p, seed);
        let canonical = Permissions::from_entries(raw.net.clone(), raw.env.clone(), raw.secrets.clone());
        prop_assert_eq!(&canonical, &p);
        let url = Url::parse(&request_url(&target)).expect("generated URLs parse");
        prop_assert_eq!(canonical.covers_url(&url), raw.covers_url(&url));
    }

    #[test]
    fn covers_url_agrees_with_a_string_oracle(
        entries in prop::collection::vec(entry_text(), 0..6), target in request(),
    ) {
        // Only entries the parser accepts are in the set; the oracle sees the same texts.
        let accepted: Vec<String> = entries
            .into_iter()
            .filter(|e| NetEntry::parse(e).is_ok())
            .collect();
        let p = net(&accepted.iter().map(String::as_str).collect::<Vec<_>>()).expect("valid");
        let url = Url::parse(&request_url(&target)).expect("generated URLs parse");
        let expected = accepted.iter().any(|e| oracle_entry_covers(e, &target));
        prop_assert_eq!(p.covers_url(&url), expected, "{:?} vs {}", accepted, request_url(&target));
    }
}

/// A request aimed at one of the entries (its host, a subdomain of it, or a wildcard's
/// base), so that a fair share of the oracle cases are covered.
fn aimed_at(
    entry: &str,
    (_, _, port): &(String, String, Option<u16>),
    deeper: bool,
) -> (String, String, Option<u16>) {
    let (scheme, rest) = entry.split_once("://").unwrap_or(("http", entry));
    let (host, entry_port) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains(']') => (&rest[..i], &rest[i + 1..]),
        _ => (rest, ""),
    };
    // The entry's own port when it names one, else the request's (default or not).
    let port = entry_port.parse::<u16>().ok().or(*port);
    let is_literal = host.starts_with('[') || host.chars().all(|c| c.is_ascii_digit() || c == '.');
    let host = match (host.strip_prefix("*."), deeper) {
        (Some(base), true) => format!("a.{base}"),
        (Some(base), false) => base.to_owned(),
        (None, true) if !is_literal => format!("api.{host}"),
        (None, _) => host.to_owned(),
    };
    (scheme.to_owned(), host, port)
}

/// Runs the oracle comparison itself to report how many cases ran (and that a fair share
/// of them were covered, so the comparison is not trivially "both false").
#[test]
fn oracle_case_count() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(10_000));
    let strategy = (
        prop::collection::vec(entry_text(), 0..6),
        request(),
        any::<prop::sample::Index>(),
        any::<bool>(),
        any::<bool>(),
    );
    let (n_cases, n_covered) = (Cell::new(0u64), Cell::new(0u64));
    runner
        .run(&strategy, |(entries, target, pick, aim, deeper)| {
            let accepted: Vec<String> = entries
                .into_iter()
                .filter(|e| NetEntry::parse(e).is_ok())
                .collect();
            let target = match (aim, accepted.is_empty()) {
                (true, false) => aimed_at(pick.get(&accepted[..]).as_str(), &target, deeper),
                _ => target,
            };
            let p = net(&accepted.iter().map(String::as_str).collect::<Vec<_>>()).expect("valid");
            let url = Url::parse(&request_url(&target)).expect("generated URLs parse");
            let expected = accepted.iter().any(|e| oracle_entry_covers(e, &target));
            prop_assert_eq!(
                p.covers_url(&url),
                expected,
                "{:?} vs {}",
                accepted,
                request_url(&target)
            );
            n_cases.set(n_cases.get() + 1);
            n_covered.set(n_covered.get() + u64::from(expected));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("oracle disagreement: {e}"));
    let (n_cases, n_covered) = (n_cases.get(), n_covered.get());
    println!("covers_url oracle: {n_cases} cases, {n_covered} covered");
    assert_eq!(n_cases, 10_000);
    assert!(
        n_covered * 10 > n_cases,
        "too few covered cases: {n_covered}/{n_cases}"
    );
}
