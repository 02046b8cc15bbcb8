//! What every response passes through: only `GET`/`HEAD`, a `Host` check when the explorer is
//! bound to loopback (a page on another site cannot reach it through DNS rebinding), and the
//! security headers (a strict Content-Security-Policy: no inline script, nothing from other
//! origins).

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The policy the page is built for: its own script, style and connections, nothing else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The listening address the `Host` check compares with.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    local: SocketAddr,
}

impl Guard {
    pub fn new(local: SocketAddr) -> Self {
        Guard { local }
    }

    /// On loopback only loopback names are accepted; bound wider, any host (the operator put it
    /// behind whatever name they chose).
    fn host_allowed(&self, host: Option<&str>) -> bool {
        if !self.local.ip().is_loopback() {
            return true;
        }
        let Some(host) = host else { return false };
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.contains(']') => name,
            _ => host,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

pub async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = (StatusCode::METHOD_NOT_ALLOWED, "the explorer is read-only\n").into_response();
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return secure(response);
    }
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    if !guard.host_allowed(host) {
        return secure((StatusCode::MISDIRECTED_REQUEST, "unknown host\n").into_response());
    }
    secure(next.run(request).await)
}

fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_accepts_only_loopback_names() {
        let guard = Guard::new("127.0.0.1:8470".parse().unwrap());
        for ok in ["127.0.0.1:8470", "localhost:8470", "localhost", "[::1]:8470", "127.0.0.2"] {
            assert!(guard.host_allowed(Some(ok)), "{ok}");
        }
        for bad in ["evil.example:8470", "evil.example", "127.0.0.1.evil.example", "", "localhost.evil", "10.0.0.1"] {
            assert!(!guard.host_allowed(Some(bad)), "{bad}");
        }
        assert!(!guard.host_allowed(None));
        let wide = Guard::new("0.0.0.0:8470".parse().unwrap());
        assert!(wide.host_allowed(Some("spore.lab.example")));
    }
}
