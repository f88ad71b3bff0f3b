//! The floor any reverse proxy pays, for `make bench`: hyper's HTTP/1
//! server in front of hyper-util's pooled client (the client reqwest is
//! built on), forwarding every request to one upstream with its bodies
//! streamed both ways and TCP_NODELAY on both sides. No auth, no routing,
//! no metering: what the API's `/v1` proxy adds is measured against this.
//!
//! `bare_proxy <upstream base URL>`: plain HTTP to the upstream (the
//! engine's port). `bare_proxy --relay <instance id> <relay base URL>`:
//! the same over TLS to a node's relay, as the API reaches a worker (the
//! certificate pinned for the instance, its relay key on every request;
//! read with `DATABASE_URL` and `INVENTIV_ENCRYPTION_KEY` (and
//! `INVENTIV_ENCRYPTION_KEY_VERSION`, default 1) as the API has them): the floor of any proxy that must not trust the worker's network.
//! Listens on 127.0.0.1:0 and prints
//! `{"message":"listening","addr":"127.0.0.1:<port>"}` on stdout.

use std::io::Write;

use axum::body::Body;
use axum::http::HeaderValue;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The upstream and what each request to it carries.
#[derive(Clone)]
struct Upstream<C> {
    client: Client<C, Incoming>,
    scheme: &'static str,
    authority: String,
    /// The relay key, over TLS.
    key: Option<HeaderValue>,
}

async fn forward<C: Connect + Clone + Send + Sync + 'static>(
    upstream: Upstream<C>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, hyper::http::Error> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder()
        .scheme(upstream.scheme)
        .authority(upstream.authority.as_str())
        .path_and_query(path)
        .build()?;
    *req.uri_mut() = uri;
    if let Some(key) = upstream.key {
        req.headers_mut()
            .insert(inventiv_store::relay::RELAY_KEY_HEADER, key);
    }
    match upstream.client.request(req).await {
        Ok(res) => Ok(res.map(Body::new)),
        Err(_) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty()),
    }
}

async fn serve<C: Connect + Clone + Send + Sync + 'static>(
    upstream: Upstream<C>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    writeln!(
        std::io::stdout(),
        r#"{{"message":"listening","addr":"{addr}"}}"#
    )?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| forward(upstream.clone(), req));
            // A client that goes away mid-answer is not the proxy's error.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn authority(url: &str) -> anyhow::Result<String> {
    let uri: Uri = url.parse()?;
    uri.authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| anyhow::anyhow!("{url} has no host"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    match args.as_slice() {
        [url] => {
            let client = Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build(http);
            serve(Upstream {
                client,
                scheme: "http",
                authority: authority(url)?,
                key: None,
            })
            .await
        }
        [flag, instance, url] if flag == "--relay" => {
            let version = std::env::var("INVENTIV_ENCRYPTION_KEY_VERSION")
                .ok()
                .map_or(Ok(1), |v| v.parse())?;
            let keyring = inventiv_store::crypto::Keyring::from_hex(
                &std::env::var("INVENTIV_ENCRYPTION_KEY")?,
                version,
                None,
            )
            .map_err(|e| anyhow::anyhow!("INVENTIV_ENCRYPTION_KEY: {e}"))?;
            let db = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
            let access = inventiv_store::relay::load(&db, &keyring, instance.parse()?)
                .await
                .map_err(|e| anyhow::anyhow!("loading the relay access: {e}"))?
                .ok_or_else(|| anyhow::anyhow!("instance {instance} has no relay key or pin"))?;
            db.close().await;
            http.enforce_http(false);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(inventiv_store::relay::pinned_tls(&access)?)
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            let client = Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build(https);
            serve(Upstream {
                client,
                scheme: "https",
                authority: authority(url)?,
                key: Some(inventiv_store::relay::key_header(&access)?),
            })
            .await
        }
        _ => anyhow::bail!(
            "usage: bare_proxy <upstream base URL> | bare_proxy --relay <instance id> <relay base URL>"
        ),
    }
}
