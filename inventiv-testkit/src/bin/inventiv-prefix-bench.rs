//! `inventiv-prefix-bench` (run by `make bench`, scripts/bench/prefix.sh):
//! the llm-d "shared prefix" workload, open loop. `--requests` streamed chat
//! completions arrive at `--rate` a second (exponential gaps, seeded: two
//! runs with the same seed send the same requests at the same moments);
//! each belongs to one of `--groups` groups (drawn at random) whose system
//! message is the group's `--prefix-tokens` words, after `--common-tokens`
//! words every request shares, and asks a question of `--question-tokens`
//! words of its own (one word is one token for the mock engine). Times the
//! first SSE event of each answer (TTFT, client side) and reads the final
//! usage (`prompt_tokens`, `prompt_tokens_details.cached_tokens`). Prints
//! one line: `sent= ok= failed= ttft_p50_ms= ttft_p90_ms= ttft_p99_ms=
//! prompt_tokens= cached_tokens= hit_pct= seconds=`.

#![expect(clippy::print_stdout, reason = "a bench tool reports on stdout")]

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// The API's address (host:port).
    #[arg(long)]
    addr: String,
    /// An API key.
    #[arg(long)]
    key: String,
    #[arg(long)]
    model: String,
    /// Groups sharing a prefix; 0: none.
    #[arg(long, default_value_t = 32)]
    groups: u64,
    #[arg(long, default_value_t = 2000)]
    prefix_tokens: usize,
    #[arg(long, default_value_t = 200)]
    question_tokens: usize,
    /// Words every request starts with (a common system prompt).
    #[arg(long, default_value_t = 0)]
    common_tokens: usize,
    /// Requests per second (mean).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    #[arg(long, default_value_t = 400)]
    requests: u64,
    #[arg(long, default_value_t = 8)]
    max_tokens: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A request not done by then failed.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
}

/// SplitMix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn uniform(state: &mut u64) -> f64 {
    (next(state) >> 11) as f64 / (1u64 << 53) as f64
}

fn words(tag: &str, n: usize) -> String {
    let mut s = String::with_capacity(n * 8);
    for i in 0..n {
        s.push_str(tag);
        s.push_str(&i.to_string());
        s.push(' ');
    }
    s
}

/// What one request gave.
struct Outcome {
    ttft: Option<Duration>,
    prompt: u64,
    cached: u64,
    ok: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let common = words("c", args.common_tokens);
    let prefixes: Vec<String> = (0..args.groups)
        .map(|g| format!("{common}{}", words(&format!("g{g}w"), args.prefix_tokens)))
        .collect();
    let mut rng = args.seed;
    let mut plan = Vec::with_capacity(usize::try_from(args.requests)?);
    let mut at = Duration::ZERO;
    for n in 0..args.requests {
        let gap = -(1.0 - uniform(&mut rng)).ln() / args.rate.max(0.001);
        at += Duration::from_secs_f64(gap);
        let system = match args.groups {
            0 => common.clone(),
            groups => prefixes[usize::try_from(next(&mut rng) % groups)?].clone(),
        };
        let question = words(&format!("q{n}s{}x", args.seed), args.question_tokens);
        let body = serde_json::json!({
            "model": args.model,
            "messages": [
                { "role": "system", "content": system },
                { "role": "user", "content": question },
            ],
            "max_tokens": args.max_tokens,
            "stream": true,
            "stream_options": { "include_usage": true },
        })
        .to_string();
        plan.push((at, body));
    }
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let timeout = Duration::from_secs(args.timeout_s);
    for (at, body) in plan {
        tokio::time::sleep_until(start + at).await;
        let (addr, key) = (args.addr.clone(), args.key.clone());
        tasks.spawn(async move {
            match tokio::time::timeout(timeout, request(&addr, &key, &body)).await {
                Ok(Ok(o)) => o,
                Ok(Err(_)) | Err(_) => Outcome {
                    ttft: None,
                    prompt: 0,
                    cached: 0,
                    ok: false,
                },
            }
        });
    }
    let (mut ttfts, mut ok, mut failed, mut prompt, mut cached) = (Vec::new(), 0u64, 0u64, 0, 0);
    while let Some(o) = tasks.join_next().await {
        let o = o.context("a request task")?;
        if o.ok {
            ok += 1;
            ttfts.extend(o.ttft);
        } else {
            failed += 1;
        }
        prompt += o.prompt;
        cached += o.cached;
    }
    ttfts.sort_unstable();
    let ms = |q: f64| {
        let i = ((ttfts.len() as f64 * q).ceil() as usize).clamp(1, ttfts.len().max(1)) - 1;
        ttfts.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "sent={} ok={ok} failed={failed} ttft_p50_ms={:.1} ttft_p90_ms={:.1} ttft_p99_ms={:.1} prompt_tokens={prompt} cached_tokens={cached} hit_pct={:.1} seconds={:.1}",
        args.requests,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        if prompt > 0 { cached as f64 * 100.0 / prompt as f64 } else { 0.0 },
        start.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// One streamed chat completion (HTTP/1.0: the body is the stream until
/// the connection closes).
async fn request(addr: &str, key: &str, body: &str) -> anyhow::Result<Outcome> {
    let sent = Instant::now();
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(
            format!(
                "POST /v1/chat/completions HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    if !line.contains(" 200 ") {
        bail!("answered {}", line.trim_end());
    }
    let mut outcome = Outcome {
        ttft: None,
        prompt: 0,
        cached: 0,
        ok: false,
    };
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(outcome);
        }
        let Some(data) = line.trim_end().strip_prefix("data:").map(str::trim) else {
            continue;
        };
        if outcome.ttft.is_none() {
            outcome.ttft = Some(sent.elapsed());
        }
        if data == "[DONE]" {
            outcome.ok = true;
            continue;
        }
        if data.contains("\"error\"") {
            bail!("an error event: {data}");
        }
        if data.contains("\"usage\"") {
            let v: serde_json::Value = serde_json::from_str(data)?;
            let usage = &v["usage"];
            if let Some(p) = usage["prompt_tokens"].as_u64() {
                outcome.prompt = p;
                outcome.cached = usage["prompt_tokens_details"]["cached_tokens"]
                    .as_u64()
                    .unwrap_or(0);
            }
        }
    }
}
