//! Writes the API's OpenAPI document (what `GET /openapi.json` serves) to
//! stdout, without a database or a running API: the dashboard's
//! `tools/gen-api.sh` generates its types from it.

use std::io::Write;

fn main() -> anyhow::Result<()> {
    let (_, doc) = inventiv_api::startup::api();
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &doc)?;
    writeln!(out)?;
    Ok(())
}
