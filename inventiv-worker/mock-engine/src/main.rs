//! `inventiv-mock-engine`: read the configuration (flags, then
//! `INVENTIV_MOCK_*` variables), start logging, serve until SIGTERM, Ctrl-C
//! or an `--exit-after` fault.

use anyhow::Context as _;
use inventiv_common::shutdown::StopSignal;
use inventiv_common::telemetry;
use inventiv_mock_engine::build_app;
use inventiv_mock_engine::config::Config;

fn main() -> anyhow::Result<()> {
    // `--help` and bad input print and exit here (0 and 2).
    let config = Config::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
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
        // Listening for signals before the port is announced: a SIGTERM
        // right after `listening` stops it cleanly.
        let stop = StopSignal::listen();
        let app = build_app(config).await.context("cannot listen")?;
        tokio::spawn(stop.cancel(app.shutdown_token()));
        app.serve().await.context("server error")
    })
}
