//! The floor any reverse proxy pays, for `make bench`: hyper's HTTP/1
//! server in front of hyper-util's pooled client (the client reqwest is
//! built on), forwarding every request to one upstream with its bodies
//! streamed both ways and TCP_NODELAY on both sides. No auth, no routing,
//! no metering: what the API's `/v1` proxy adds is measured against this.
//!
//! `bare_proxy <upstream base URL>`; listens on 127.0.0.1:0 and prints
//! `{"message":"listening","addr":"127.0.0.1:<port>"}` on stdout.

use std::io::Write;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Upstream = Client<HttpConnector, Incoming>;

async fn forward(
    client: Upstream,
    upstream: Uri,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, hyper::http::Error> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder()
        .scheme("http")
        .authority(upstream.authority().map_or("", |a| a.as_str()))
        .path_and_query(path)
        .build()?;
    *req.uri_mut() = uri;
    match client.request(req).await {
        Ok(res) => Ok(res.map(Body::new)),
        Err(_) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let upstream: Uri = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: bare_proxy <upstream base URL>"))?
        .parse()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Upstream = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    writeln!(
        std::io::stdout(),
        r#"{{"message":"listening","addr":"{addr}"}}"#
    )?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| forward(client.clone(), upstream.clone(), req));
            // A client that goes away mid-answer is not the proxy's error.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
