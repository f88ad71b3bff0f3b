//! `inventiv-fair-bench` (run by `make bench`, scripts/bench/fairness.sh):
//! closed-loop clients of one or more flows (an API key and a model each)
//! sending streamed chat completions to the API's `/v1` for `--secs`
//! seconds. Per flow, one line: requests answered 200, 429 and otherwise,
//! the time to first token (p50, p99) and the mean duration of the 200s,
//! and their rate. A 429 waits its `Retry-After` before the next request.
//! A flow may start later than the others (`after_ms`): a burst into a
//! deployment another organization already uses.

#![expect(clippy::print_stdout, reason = "a bench tool reports on stdout")]

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// The API's base URL (http://host:port).
    #[arg(long)]
    api: String,
    /// A flow: `name,key,model,clients[,after_ms]`; repeated. Its clients
    /// start `after_ms` after the first (default 0) and stop with the others.
    #[arg(long = "flow", required = true)]
    flows: Vec<String>,
    /// How long the clients send.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Tokens asked per answer.
    #[arg(long, default_value_t = 8)]
    max_tokens: u32,
}

struct Flow {
    name: String,
    key: String,
    model: String,
    clients: usize,
    after: Duration,
}

/// One request's outcome: its flow, its status, its TTFT and duration.
type Outcome = (usize, u16, Duration, Duration);

fn parse(flow: &str) -> anyhow::Result<Flow> {
    let parts: Vec<&str> = flow.split(',').collect();
    let (name, key, model, clients, after) = match parts.as_slice() {
        [name, key, model, clients] => (name, key, model, clients, "0"),
        [name, key, model, clients, after] => (name, key, model, clients, *after),
        _ => bail!("--flow {flow}: expected name,key,model,clients[,after_ms]"),
    };
    Ok(Flow {
        name: (*name).to_owned(),
        key: (*key).to_owned(),
        model: (*model).to_owned(),
        clients: clients.parse().context("clients")?,
        after: Duration::from_millis(after.parse().context("after_ms")?),
    })
}

/// Whether `seen` holds a content delta with text (not the role's empty one).
fn has_content(seen: &[u8]) -> bool {
    const KEY: &[u8] = br#""content":""#;
    seen.windows(KEY.len() + 1)
        .any(|w| w.starts_with(KEY) && w.last() != Some(&b'"'))
}

async fn one(
    http: &reqwest::Client,
    url: &str,
    flow: &Flow,
    body: &str,
) -> anyhow::Result<(u16, Duration, Duration, Option<u64>)> {
    let started = Instant::now();
    let mut r = http
        .post(url)
        .bearer_auth(&flow.key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await?;
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut seen = Vec::new();
    let mut ttft = None;
    while let Some(chunk) = r.chunk().await? {
        if ttft.is_none() {
            seen.extend_from_slice(&chunk);
            if has_content(&seen) {
                ttft = Some(started.elapsed());
                seen = Vec::new();
            }
        }
    }
    let total = started.elapsed();
    Ok((status, ttft.unwrap_or(total), total, retry))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let flows: Vec<Flow> = args
        .flows
        .iter()
        .map(|f| parse(f))
        .collect::<anyhow::Result<_>>()?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .build()?;
    let url = format!("{}/v1/chat/completions", args.api.trim_end_matches('/'));
    let run = Duration::from_secs(args.secs);
    if let Some(late) = flows.iter().find(|f| f.after >= run) {
        bail!("flow {} starts after the run's end", late.name);
    }
    let start = Instant::now();
    let until = start + run;
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let flows = std::sync::Arc::new(flows);
    for (i, flow) in flows.iter().enumerate() {
        let body = serde_json::json!({
            "model": flow.model, "stream": true, "max_tokens": args.max_tokens,
            "messages": [{ "role": "user", "content": format!("fair bench {}", flow.name) }],
        })
        .to_string();
        for _ in 0..flow.clients {
            let (http, url, tx, body, flows) = (
                http.clone(),
                url.clone(),
                tx.clone(),
                body.clone(),
                flows.clone(),
            );
            tokio::spawn(async move {
                let flow = &flows[i];
                tokio::time::sleep_until((start + flow.after).into()).await;
                while Instant::now() < until {
                    let done =
                        tokio::time::timeout_at(until.into(), one(&http, &url, flow, &body)).await;
                    let Ok(result) = done else { break };
                    let (status, ttft, total, retry) =
                        result.unwrap_or((0, Duration::ZERO, Duration::ZERO, None));
                    let _ = tx.send((i, status, ttft, total));
                    let pause = match status {
                        200 => None,
                        429 => Some(Duration::from_secs(retry.unwrap_or(1).max(1))),
                        _ => Some(Duration::from_millis(100)),
                    };
                    if let Some(pause) = pause {
                        tokio::time::sleep_until(until.min(Instant::now() + pause).into()).await;
                    }
                }
            });
        }
    }
    drop(tx);
    let mut outcomes: Vec<Vec<Outcome>> = flows.iter().map(|_| Vec::new()).collect();
    while let Some(o) = rx.recv().await {
        if let Some(list) = outcomes.get_mut(o.0) {
            list.push(o);
        }
    }
    for (flow, list) in flows.iter().zip(outcomes) {
        let ok: Vec<&Outcome> = list.iter().filter(|o| o.1 == 200).collect();
        let mut ttfts: Vec<Duration> = ok.iter().map(|o| o.2).collect();
        ttfts.sort();
        let mean = ok.iter().map(|o| o.3.as_secs_f64()).sum::<f64>() / ok.len().max(1) as f64;
        let refused = list.iter().filter(|o| o.1 == 429).count();
        println!(
            "flow={} requests={} ok={} r429={} other={} ttft_p50_ms={:.1} ttft_p99_ms={:.1} mean_ms={:.1} ok_per_s={:.1}",
            flow.name,
            list.len(),
            ok.len(),
            refused,
            list.len() - ok.len() - refused,
            percentile(&ttfts, 0.5),
            percentile(&ttfts, 0.99),
            mean * 1000.0,
            ok.len() as f64 / (run - flow.after).as_secs_f64(),
        );
    }
    Ok(())
}
