//! `inventiv-mock-engine`: read the configuration (flags, then
//! `INVENTIV_MOCK_*` variables), start logging, serve until SIGTERM, Ctrl-C
//! or an `--exit-after` fault.

use std::io::Write as _;

use anyhow::Context as _;
use inventiv_common::shutdown::cancel_on_signal;
use inventiv_common::telemetry;
use inventiv_mock_engine::build_app;
use inventiv_mock_engine::config::{Command, Config};

fn main() -> anyhow::Result<()> {
    let args = std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|a| anyhow::anyhow!("argument {a:?} is not UTF-8"))
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let config = match Config::parse(args, |key| std::env::var(key).ok())? {
        Command::Help(text) => {
            std::io::stdout().write_all(text.as_bytes())?;
            return Ok(());
        }
        Command::Run(config) => *config,
    };
    telemetry::init();
    // One worker runs a current-thread runtime: the cheapest for a
    // one-core benchmark.
    let runtime = if config.workers.get() == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers.get())
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    runtime.block_on(async {
        let app = build_app(config).await.context("cannot listen")?;
        tokio::spawn(cancel_on_signal(app.shutdown_token()));
        app.serve().await.context("server error")
    })
}
