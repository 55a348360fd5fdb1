//! A scripted Kubernetes API server on kube's tower-test mock service: each expected call
//! (method, path) is answered with a canned status and body, in order, and every request
//! is recorded for assertions. An unexpected call, a missing call or a call out of order
//! fails the test, so these tests pin the exact API traffic of a reconcile.

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// One expected call and its answer. `reply: None` echoes the request body (what a
/// server-side apply returns, near enough).
pub struct Step {
    pub method: Method,
    pub path: String,
    pub status: u16,
    pub reply: Option<Value>,
}

pub fn step(method: Method, path: &str, status: u16, reply: Option<Value>) -> Step {
    Step {
        method,
        path: path.to_string(),
        status,
        reply,
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

pub fn not_found(what: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("{what} not found"), "reason": "NotFound", "code": 404})
}

pub fn failure(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": reason, "reason": reason, "code": code})
}

/// Starts the scripted server; await the handle to get the recorded requests (it fails
/// if a step was not reached or an extra request arrived).
pub fn serve(steps: Vec<Step>) -> (Client, JoinHandle<Vec<Seen>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for (i, s) in steps.into_iter().enumerate() {
            let Some((req, send)) = handle.next_request().await else {
                panic!(
                    "step {i}: expected {} {}, but no further request came; seen: {seen:#?}",
                    s.method, s.path
                );
            };
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            assert_eq!(
                (&method, path.as_str()),
                (&s.method, s.path.as_str()),
                "step {i}: unexpected request (query {query:?}); seen so far: {:#?}",
                seen.iter()
                    .map(|x: &Seen| format!("{} {}", x.method, x.path))
                    .collect::<Vec<_>>()
            );
            let reply = s.reply.clone().unwrap_or_else(|| body.clone());
            seen.push(Seen {
                method,
                path,
                query,
                body,
            });
            // A JSON string is sent as plain text (the API server's `404 page not found`
            // for a resource type it does not serve).
            let (ctype, bytes) = match &reply {
                Value::String(text) => ("text/plain", text.clone().into_bytes()),
                other => ("application/json", serde_json::to_vec(other).unwrap()),
            };
            let resp = Response::builder()
                .status(StatusCode::from_u16(s.status).unwrap())
                .header("content-type", ctype)
                .body(Body::from(bytes))
                .unwrap();
            send.send_response(resp);
        }
        // Nothing more may come.
        if let Ok(Some((req, _))) =
            tokio::time::timeout(std::time::Duration::from_millis(50), handle.next_request()).await
        {
            panic!("unexpected extra request {} {}", req.method(), req.uri());
        }
        seen
    });
    (client, task)
}
