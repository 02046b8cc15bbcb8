//! Which addresses a node learns from its peers and how many connections one address may hold,
//! so that a peer can neither steer the node's dials nor fill its slots.
//!
//! An address learned by PEX is dialed only if it is a global IP literal, unless the peer that
//! told us is itself on a loopback or private address (a lab's own network, or tests): a public
//! peer can never make the node dial into its LAN, its loopback, link-local services or a host
//! name of the peer's choosing. Configured peers are exempt (the user chose them).

use std::net::IpAddr;

use super::parse_address;

/// The network group of `ip`, as Bitcoin Core buckets peers: its /16 for IPv4, its /32 for
/// IPv6 (one operator rarely holds addresses in many). The dial book shares its learned places
/// among tellers by this, so one network cannot fill it with addresses of its choosing.
pub fn group(ip: IpAddr) -> u64 {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            (1 << 32) | (u64::from(a) << 8) | u64::from(b)
        }
        IpAddr::V6(v6) => {
            let [s0, s1, ..] = v6.segments();
            (u64::from(s0) << 16) | u64::from(s1)
        }
    }
}

/// True for addresses of the public internet: not loopback, private (RFC 1918, unique local),
/// link-local, shared (CGNAT), unspecified, multicast, broadcast or documentation.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_global(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// Whether an address that a peer at `teller` sent in a `pex_response` may be dialed.
pub fn may_learn(teller: IpAddr, address: &str) -> bool {
    let Some((host, _)) = parse_address(address) else { return false };
    if !is_global(teller) {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(is_global)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_peers_cannot_point_us_inward() {
        let public: IpAddr = "203.0.114.9".parse().unwrap();
        assert!(may_learn(public, "198.51.99.7:7470"));
        assert!(may_learn(public, "[2a00:1450::1]:7470"));
        for inward in [
            "127.0.0.1:7470",
            "10.1.2.3:7470",
            "192.168.0.1:22",
            "172.16.5.5:7470",
            "169.254.169.254:80",
            "100.64.0.1:7470",
            "0.0.0.0:7470",
            "[::1]:7470",
            "[fd00::1]:7470",
            "[fe80::1]:7470",
            "[::ffff:10.0.0.1]:7470",
            "metadata.internal:80",
            "localhost:7470",
        ] {
            assert!(!may_learn(public, inward), "{inward}");
        }
        // Within a lab's network (or on loopback), its peers may name each other.
        let lab: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(may_learn(lab, "10.0.0.6:7470") && may_learn(lab, "node-2.lab:7470"));
        assert!(!may_learn(lab, "not an address"));
    }
}
