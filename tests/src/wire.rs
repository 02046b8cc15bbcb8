//! A blocking wire client for tests that speak to a node as a peer would (or as an attacker
//! would): raw bytes, framed bodies, and reading frames until one of a type arrives.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use spore_spec::Message;
use spore_spec::frame::{FrameCheck, check, frame_bytes};

/// One TCP connection to a node.
#[derive(Debug)]
pub struct Client {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Client { stream, buffer: Vec::new() })
    }

    /// False once the node has closed the connection.
    pub fn send_raw(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    pub fn send_body(&mut self, body: &[u8]) -> bool {
        self.send_raw(&frame_bytes(body))
    }

    /// Reads frames until one has `message_type`, or the deadline: `Some(true)` when it came,
    /// `Some(false)` at the deadline, `None` when the node closed the connection.
    pub fn wait_for_type(&mut self, message_type: &str, timeout: Duration) -> Option<bool> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 65536];
        while Instant::now() < deadline {
            while let Ok(FrameCheck::Complete(len)) = check(&self.buffer) {
                let body: Vec<u8> = self.buffer.drain(..4 + len).skip(4).collect();
                if Message::decode(&body).is_ok_and(|m| m.message_type() == message_type) {
                    return Some(true);
                }
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
        Some(false)
    }

    /// Frames of `message_type` that arrive within `timeout` (the connection may close).
    pub fn count_type(&mut self, message_type: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut count = 0;
        while Instant::now() < deadline {
            match self.wait_for_type(message_type, deadline.saturating_duration_since(Instant::now())) {
                Some(true) => count += 1,
                _ => break,
            }
        }
        count
    }

    /// Sends a ping and waits for the pong: the round trip, or `None` when none came within
    /// `timeout` (or the connection closed).
    pub fn ping(&mut self, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        if !self.send_body(&Message::Ping.encode_body()) {
            return None;
        }
        match self.wait_for_type("pong", timeout) {
            Some(true) => Some(start.elapsed()),
            _ => None,
        }
    }
}
