//! `--log-format` (or `SPORE_LOG_FORMAT`): text for people, or one JSON object per line
//! (`timestamp`, `level`, `target`, `message` and the event's fields at the top level) for a
//! cluster's log pipeline. Logs go to standard error either way.

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format the command line chose, for [`init`] to use.
pub fn choose(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// Starts logging (`RUST_LOG` filters, `info` by default).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Json => logs.json().flatten_event(true).init(),
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
}
