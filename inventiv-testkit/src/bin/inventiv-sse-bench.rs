//! `inventiv-sse-bench` (run by `make bench`): event → SSE client latency.
//! Connects `--clients` clients to the API's `/events/stream` and waits for
//! each one's snapshot; then sends one heartbeat per line of `--workers`
//! (each from its own instance, so none is throttled), `--rate` a second,
//! numbering the event in `requests_running`, and times when every client
//! receives the matching `worker.heartbeat` event (one clock: this
//! process's). Prints one line: deliveries, p50, p99 and max in ms.

#![expect(clippy::print_stdout, reason = "a bench tool reports on stdout")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// The API's address (host:port).
    #[arg(long)]
    addr: String,
    /// A session token of a member of the organization the workers belong to.
    #[arg(long)]
    token: String,
    /// Lines "<instance id> <worker token>": one event per line.
    #[arg(long)]
    workers: PathBuf,
    /// SSE clients to connect.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Events per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
}

/// (event number, when a client received it).
type Delivery = (usize, Instant);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let workers: Vec<(String, String)> = std::fs::read_to_string(&args.workers)
        .with_context(|| format!("reading {}", args.workers.display()))?
        .lines()
        .filter_map(|l| {
            let (id, token) = l.split_once(' ')?;
            Some((id.to_owned(), token.trim().to_owned()))
        })
        .collect();
    if workers.is_empty() {
        bail!("no worker in {}", args.workers.display());
    }
    let started = Instant::now();
    let (deliveries, mut received) = mpsc::unbounded_channel::<Delivery>();
    let (ready_tx, mut ready) = mpsc::channel::<anyhow::Result<()>>(args.clients);
    for _ in 0..args.clients {
        let (addr, token) = (args.addr.clone(), args.token.clone());
        let (deliveries, ready_tx) = (deliveries.clone(), ready_tx.clone());
        tokio::spawn(async move {
            if let Err(e) = client(&addr, &token, deliveries, &ready_tx).await {
                let _ = ready_tx.send(Err(e)).await;
            }
        });
    }
    drop(deliveries);
    for _ in 0..args.clients {
        match tokio::time::timeout(Duration::from_secs(120), ready.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => return Err(e.context("an SSE client failed")),
            Ok(None) | Err(_) => bail!("the SSE clients did not all connect within 120 s"),
        }
    }
    let connected = started.elapsed();

    let mut sent = Vec::with_capacity(workers.len());
    let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rate.max(1));
    for (k, (id, token)) in workers.iter().enumerate() {
        tick.tick().await;
        sent.push(Instant::now());
        heartbeat(&args.addr, id, token, k).await?;
    }
    let expected = args.clients * workers.len();
    let mut latencies = Vec::with_capacity(expected);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while latencies.len() < expected {
        match tokio::time::timeout_at(deadline, received.recv()).await {
            Ok(Some((k, at))) => {
                if let Some(s) = sent.get(k) {
                    latencies.push(at.saturating_duration_since(*s));
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    latencies.sort_unstable();
    let ms = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
        latencies
            .get(i)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "clients={} events={} delivered={}/{} connect_s={:.1} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        args.clients,
        workers.len(),
        latencies.len(),
        expected,
        connected.as_secs_f64(),
        ms(0.50),
        ms(0.99),
        ms(1.0),
    );
    Ok(())
}

/// One SSE client: reports ready after the snapshot, then every
/// `worker.heartbeat` it receives (HTTP/1.0: the stream is the body until
/// the connection closes, no chunk framing).
async fn client(
    addr: &str,
    token: &str,
    deliveries: mpsc::UnboundedSender<Delivery>,
    ready: &mpsc::Sender<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(
            format!(
                "GET /events/stream HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    if !line.contains(" 200 ") {
        bail!("/events/stream answered {}", line.trim_end());
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            bail!("/events/stream ended in its headers");
        }
        if line.trim_end().is_empty() {
            break;
        }
    }
    let mut event = String::new();
    let mut waiting = true;
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            bail!("/events/stream ended");
        }
        let at = Instant::now();
        let text = line.trim_end();
        if let Some(name) = text.strip_prefix("event:") {
            event = name.trim().to_owned();
        } else if let Some(data) = text.strip_prefix("data:") {
            if event == "snapshot" && waiting {
                waiting = false;
                ready.send(Ok(())).await?;
            } else if event == "worker.heartbeat" {
                let v: serde_json::Value = serde_json::from_str(data.trim())?;
                if let Some(k) = v["requests_running"].as_u64() {
                    deliveries.send((usize::try_from(k)?, at))?;
                }
            }
        }
    }
}

/// A valid heartbeat (schema version 2) numbered `k`; fails unless 200.
async fn heartbeat(addr: &str, id: &str, token: &str, k: usize) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "schema_version": 2, "instance_id": id, "boot_id": "sse-bench",
        "agent": { "version": "0.2.0", "bundle_sha256": "ab".repeat(32) },
        "status": "ready", "model_id": "bench/model",
        "engine": { "ready": true, "requests_running": k, "requests_waiting": 0, "restarts": 0 },
        "sent_at": chrono::Utc::now().to_rfc3339(),
    })
    .to_string();
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream
        .write_all(
            format!(
                "POST /internal/workers/heartbeat HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    if !answer.starts_with("HTTP/1.1 200") {
        bail!(
            "heartbeat {k} answered {}",
            answer.lines().next().unwrap_or("")
        );
    }
    Ok(())
}
