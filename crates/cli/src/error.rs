//! The CLI's failures and their exit codes (documented in `--help`).

/// What went wrong, in words an operator can act on; never a backtrace.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad flags or input: nothing was sent. Exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The server refused, with its code and message. Exit code 1.
    #[error("{message} ({code}, HTTP {status})")]
    Server { status: u16, code: String, message: String },
    /// A service could not be reached. Exit code 3.
    #[error(
        "cannot reach {url}: {reason}\nhint: is the service running? `scripts/dev.sh` starts the stack; --api-url / AUCTION_API_URL and --ws-url / AUCTION_WS_URL point elsewhere"
    )]
    Unreachable { url: String, reason: String },
    /// Anything else (an unreadable answer, a declined confirmation). Exit code 1.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Unreachable { .. } => 3,
            CliError::Server { .. } | CliError::Failed(_) => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;
