//! Which IP addresses are globally reachable (spec 40 §4.1 step 3), judged by the IANA
//! special-purpose address registries for IPv4 and IPv6, and on the IPv4 address embedded in
//! IPv4-mapped, IPv4-compatible, 6to4 and NAT64 forms. Used here to refuse a `*` port on a
//! non-public literal (40 §2), and later by the fetch resolver.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `addr` is globally reachable (not loopback, private, link-local, documentation,
/// shared, multicast, reserved or an embedding of such an IPv4 address).
pub fn is_public_address(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(addr: Ipv4Addr) -> bool {
    let [a, b, c, _] = addr.octets();
    let blocked = a == 0 // "this network"
        || a == 10
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !blocked
}

fn is_public_v6(addr: Ipv6Addr) -> bool {
    let segments = addr.segments();
    let octets = addr.octets();
    let embedded =
        |at: usize| Ipv4Addr::new(octets[at], octets[at + 1], octets[at + 2], octets[at + 3]);
    // IPv4-mapped ::ffff:0:0/96 and IPv4-compatible ::/96 (which includes :: and ::1).
    if segments[..5] == [0, 0, 0, 0, 0] && (segments[5] == 0xffff || segments[5] == 0) {
        return segments[5] == 0xffff && is_public_v4(embedded(12));
    }
    // NAT64: 64:ff9b::/96 carries an IPv4 address; 64:ff9b:1::/48 is local-use.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded(12));
    }
    if segments[0] == 0x64 && segments[1] == 0xff9b && segments[2] == 1 {
        return false;
    }
    // 6to4: 2002::/16 carries an IPv4 address in bits 16..48.
    if segments[0] == 0x2002 {
        return is_public_v4(embedded(2));
    }
    let blocked = (segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]) // discard-only
        || (segments[0] == 0x2001 && segments[1] < 0x0200) // IETF protocol assignments (2001::/23)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x3fff && segments[1] < 0x1000) // documentation (3fff::/20)
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || segments[0] >> 8 == 0xff; // multicast
    !blocked
}
