//! Free TCP ports for test services, picked below the kernel's ephemeral range.
//!
//! A port from `bind(0)` comes from the ephemeral range, the same pool the kernel draws the
//! local ports of outgoing connections from. Between picking a port and the service binding it,
//! a client connection (the apiserver to etcd opens dozens) can take it, and the service then
//! fails to start — or worse, a readiness probe finds someone else listening there. Ports below
//! the ephemeral range are never handed to outgoing connections, so only another listener can
//! take them; picking them at random and never twice in one process makes that unlikely.
//!
//! The test for a free port binds it without listening. A listening probe would accept
//! connections for as long as any process holds it, and a child being spawned by another test
//! thread holds a copy of every descriptor until its `exec`: a node's readiness probe could then
//! connect to that copy, and the test's first messages die with it when the child's `exec` closes
//! it (a reset, or a refused connection before the node listens). A socket that only binds
//! refuses connections, and with `SO_REUSEADDR` it does not stop the service from binding the
//! port; it still fails to bind where a listener is.

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use socket2::{Domain, Protocol, Socket, Type};

use super::TestEnvError;

/// The lowest port we hand out.
const LOWEST: u16 = 20_000;
/// Used when the kernel's range cannot be read (Linux's default lower bound).
const DEFAULT_EPHEMERAL_LOW: u16 = 32_768;
/// Attempts before giving up.
const ATTEMPTS: u32 = 1_000;

/// Ports already handed out by this process.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free TCP port on 127.0.0.1 below the ephemeral range, never the same one twice in a process.
pub fn free_port() -> Result<u16, TestEnvError> {
    let high = ephemeral_low().max(LOWEST + 1_000);
    let span = u64::from(high - LOWEST);
    let random = RandomState::new();
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for attempt in 0..ATTEMPTS {
        let port = LOWEST + (random.hash_one(attempt) % span) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if bindable(port) {
            handed_out.insert(port);
            return Ok(port);
        }
    }
    Err(TestEnvError::Setup(format!("no free port in {LOWEST}..{high} after {ATTEMPTS} attempts")))
}

/// Whether a TCP socket (`SO_REUSEADDR`, as services set it) may bind 127.0.0.1:`port`.
fn bindable(port: u16) -> bool {
    probe(port).is_some()
}

/// A TCP socket bound to 127.0.0.1:`port` that never listens, if one may be.
fn probe(port: u16) -> Option<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).ok()?;
    socket.set_reuse_address(true).ok()?;
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into()).ok()?;
    Some(socket)
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_LOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_distinct() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        let low = ephemeral_low();
        assert!(ports.iter().all(|&p| (LOWEST..low.max(LOWEST + 1_000)).contains(&p)), "{ports:?}");
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }

    #[test]
    fn a_port_with_a_listener_is_not_handed_out() {
        let port = free_port().unwrap();
        let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        assert!(!bindable(port));
    }

    /// What a probe left in a spawned child until its `exec` neither answers connections nor
    /// keeps the service from listening.
    #[test]
    fn a_leftover_probe_accepts_nothing_and_lets_the_service_listen() {
        let port = free_port().unwrap();
        let leftover = probe(port).unwrap();
        let refused = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        let service = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(service.accept().is_ok());
        drop(leftover);
    }
}
