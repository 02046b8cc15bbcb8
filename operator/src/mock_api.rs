//! A fake API server for unit tests of the reconcilers (in the manner of kube-rs's
//! controller-rs): a `kube::Client` over a `tower_test` mock whose requests a test's handler
//! answers, each call recorded as `METHOD path` for the test to assert on.

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One request the reconciler made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub body: Value,
}

impl Call {
    /// `METHOD path`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What the fake server answers.
pub type Handler = dyn Fn(&Call) -> (StatusCode, Value) + Send + Sync;

/// The calls seen so far, in order.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    /// Every call but Event writes (which are spawned beside the reconcile), as `METHOD path`.
    pub fn lines(&self) -> Vec<String> {
        self.all().iter().filter(|c| !c.path.contains("/events")).map(Call::line).collect()
    }

    pub fn all(&self) -> Vec<Call> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The body of the first call whose `METHOD path` is `line`.
    pub fn body(&self, line: &str) -> Option<Value> {
        self.all().into_iter().find(|c| c.line() == line).map(|c| c.body)
    }
}

/// A client served by `handler`, and the record of its calls.
pub fn client(handler: Box<Handler>) -> (Client, Calls) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls = Calls::default();
    let seen = calls.clone();
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let call = Call { method, path, body };
            let (status, answer) = handler(&call);
            seen.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(call);
            let bytes = serde_json::to_vec(&answer).unwrap_or_default();
            let response = Response::builder().status(status).body(Body::from(bytes));
            respond.send_response(response.unwrap_or_else(|_| Response::new(Body::empty())));
        }
    });
    (Client::new(service, "default"), calls)
}

/// The API server's answer for an object that does not exist.
pub fn not_found() -> (StatusCode, Value) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "not found", "reason": "NotFound", "code": 404});
    (StatusCode::NOT_FOUND, status)
}

/// Created or patched: the object as sent (what the API server would return, near enough).
pub fn echo(call: &Call) -> (StatusCode, Value) {
    let status = if call.method == "POST" { StatusCode::CREATED } else { StatusCode::OK };
    (status, call.body.clone())
}
