//! A local HTTP server that stands in for an LLM provider: it answers each request with the
//! next scripted reply (status, headers, body in the provider's real wire format) and records
//! what it received, so tests can check the requests byte for byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

/// One scripted reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply { status, headers: Vec::new(), body: body.to_string() }
    }

    pub fn raw(status: u16, body: &str) -> Reply {
        Reply { status, headers: Vec::new(), body: body.to_string() }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The running server; it stops with the test process.
#[derive(Debug, Clone)]
pub struct FakeLlm {
    pub addr: SocketAddr,
    replies: Arc<Mutex<Vec<Reply>>>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeLlm {
    /// Serves `replies` in order; after the last one, every request gets HTTP 500.
    pub fn start(replies: Vec<Reply>) -> std::io::Result<FakeLlm> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let fake = FakeLlm {
            addr,
            replies: Arc::new(Mutex::new(replies.into_iter().rev().collect())),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let server = fake.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = server.serve(stream);
            }
        });
        Ok(fake)
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn serve(&self, stream: std::net::TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let length: usize =
            headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let request = Request { method, path, headers, body: String::from_utf8_lossy(&body).into_owned() };
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(request);
        }
        let reply = self
            .replies
            .lock()
            .ok()
            .and_then(|mut r| r.pop())
            .unwrap_or_else(|| Reply::raw(500, "{\"error\":{\"message\":\"no more scripted replies\"}}"));
        let mut out = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&reply.body);
        let mut stream = stream;
        stream.write_all(out.as_bytes())?;
        stream.flush()
    }
}
