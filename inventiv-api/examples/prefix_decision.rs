//! The prefix-aware routing decision's cost, for `make bench` (no criterion:
//! a loop and a clock). One decision is what the proxy adds per request
//! for it: reading the prompt's text out of the body (the `messages` field
//! of the body's one parse), cutting it into chained block hashes, finding
//! each candidate's longest matching chain in the route's record, ordering
//! the candidates, recording the choice. The record holds 32 shared
//! prefixes spread over 4 workers, plus the questions sent so far; the
//! prompt is a 4k-token chat (a 2,000-token shared prefix, then a question)
//! of short words (~6 bytes each: a pessimistic ~1.5 tokens per word for a
//! BPE tokenizer, so 4k tokens is taken as 16 kB of text).
//!
//! `prefix_decision [ITERATIONS] [THREADS]`: prints one line,
//! `decisions=N threads=T prompt_bytes=B blocks=K mean_us=… p50_us=… p99_us=…`
//! (with T threads deciding at once on the same route, as concurrent
//! requests do).

#![expect(clippy::print_stdout, reason = "a bench tool reports on stdout")]

use std::sync::Arc;
use std::time::Instant;

use inventiv_api::proxy::prefix::{
    order, Candidate, PrefixIndex, PrefixSettings, PromptBlocks, PromptText,
};
use uuid::Uuid;

#[derive(serde::Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    messages: Option<PromptText<'a>>,
}

fn words(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{prefix}{i:03} ")).collect()
}

/// A chat body of about 16 kB of text: group `g`'s shared prefix, then
/// question `q`.
fn body(g: usize, q: usize) -> String {
    serde_json::json!({
        "model": "m",
        "messages": [
            { "role": "system", "content": words(&format!("g{g}w"), 1400) },
            { "role": "user", "content": words(&format!("q{q}x"), 1400) },
        ],
        "max_tokens": 16,
        "stream": true,
    })
    .to_string()
}

fn decide(
    index: &PrefixIndex,
    settings: &PrefixSettings,
    workers: &[Uuid],
    body: &[u8],
) -> Option<Uuid> {
    let parsed: Body = serde_json::from_slice(body).ok()?;
    let blocks = PromptBlocks::of(
        parsed.messages?.pieces(),
        settings.block_bytes,
        settings.max_blocks,
    );
    let matched = index.matched(&blocks, workers);
    let candidates: Vec<Candidate> = matched
        .into_iter()
        .zip(workers)
        .map(|(matched, w)| Candidate {
            outstanding: 1,
            queue_depth: 0,
            matched,
            tie: blocks.tie(*w),
        })
        .collect();
    let first = *order(&candidates, blocks.len(), settings).first()?;
    let worker = *workers.get(first)?;
    index.record(&blocks, worker, settings.capacity);
    Some(worker)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let threads: usize = args.next().map_or(Ok(1), |a| a.parse())?;
    let settings = PrefixSettings::default();
    let index = Arc::new(PrefixIndex::default());
    let workers: Arc<Vec<Uuid>> = Arc::new((0..4).map(|_| Uuid::new_v4()).collect());
    // The record after some traffic: each group's prompts went to one worker.
    for g in 0..32 {
        for q in 0..4 {
            let blocks = PromptBlocks::of(
                serde_json::from_str::<Body>(&body(g, 1000 + g * 4 + q))?
                    .messages
                    .unwrap_or_default()
                    .pieces(),
                settings.block_bytes,
                settings.max_blocks,
            );
            index.record(&blocks, workers[g % 4], settings.capacity);
        }
    }
    // Bodies made beforehand: what is timed is the decision only.
    let bodies: Arc<Vec<String>> = Arc::new((0..256).map(|i| body(i % 32, i)).collect());
    let prompt_bytes = bodies[0].len();
    let blocks = PromptBlocks::of(
        serde_json::from_str::<Body>(&bodies[0])?
            .messages
            .unwrap_or_default()
            .pieces(),
        settings.block_bytes,
        settings.max_blocks,
    )
    .len();
    let handles: Vec<_> = (0..threads.max(1))
        .map(|t| {
            let (index, workers, bodies) = (index.clone(), workers.clone(), bodies.clone());
            std::thread::spawn(move || {
                let mut took = Vec::with_capacity(iterations);
                for i in 0..iterations {
                    let body = bodies[(i + t * 7) % bodies.len()].as_bytes();
                    let start = Instant::now();
                    let chosen = decide(&index, &settings, &workers, body);
                    took.push(start.elapsed().as_secs_f64() * 1e6);
                    std::hint::black_box(chosen);
                }
                took
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("a bench thread panicked"))?,
        );
    }
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    println!(
        "decisions={} threads={} prompt_bytes={prompt_bytes} blocks={blocks} mean_us={mean:.2} p50_us={:.2} p99_us={:.2}",
        all.len(),
        threads.max(1),
        at(0.5),
        at(0.99)
    );
    Ok(())
}
