//! The one typed error of everything said to Microsoft. Each variant keeps what diagnosis needs: the
//! token endpoint's OAuth error with its AADSTS codes and ids, Graph's error with its request id and
//! challenge, or the transport failure, always with the URL that failed.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenError {
    pub url: String,
    pub tenant: Option<String>,
    pub status: u16,
    pub error: String,
    pub error_codes: Vec<u32>,
    pub description: String,
    pub suberror: Option<String>,
    pub claims: Option<String>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub timestamp: Option<String>,
    /// Seconds the endpoint asked to wait (429 or 503), when it did.
    pub retry_after: Option<u64>,
}

impl TokenError {
    /// The first AADSTS code, the one that names the failure.
    pub fn code(&self) -> Option<u32> {
        self.error_codes.first().copied()
    }

    /// The description without the trace, correlation and timestamp tail Microsoft appends.
    pub(crate) fn message(&self) -> &str {
        let d = self.description.as_str();
        let cut =
            ["\r\nTrace ID:", " Trace ID:", "\nTrace ID:"].iter().filter_map(|m| d.find(m)).min().unwrap_or(d.len());
        d[..cut].trim()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GraphError {
    pub url: String,
    pub method: String,
    pub status: u16,
    pub code: String,
    pub inner_code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub date: Option<String>,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Dns,
    Connect,
    Tls,
    Timeout,
    Reset,
    /// The response body was cut short or unreadable.
    Body,
    /// The response was larger than the client accepts.
    TooLarge,
    Other,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TransportError {
    pub url: String,
    pub kind: TransportKind,
    pub message: String,
}

#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Error {
    #[error("request to {} failed: {} {} ({})", .0.url, .0.status, .0.error, .0.message())]
    Token(Box<TokenError>),
    #[error("{} {} failed: {} {}: {}", .0.method, .0.url, .0.status, .0.code, .0.message)]
    Graph(Box<GraphError>),
    #[error("cannot reach {}: {:?}: {}", .0.url, .0.kind, .0.message)]
    Transport(TransportError),
    /// A link or redirect pointed outside the cloud's Graph host; the token was not sent.
    #[error("refused to send a token to {url}: not the Graph host of the configured cloud ({reason})")]
    HostNotAllowed { url: String, reason: String },
    /// The response was not what the protocol promises (malformed JSON, missing fields, a link loop).
    #[error("unexpected response from {url}: {message}")]
    Protocol { url: String, message: String },
    #[error("the token is malformed: {0}")]
    Claims(String),
    #[error("sign-in did not complete: {0}")]
    SignIn(String),
    #[error("token cache: {0}")]
    Cache(String),
    #[error("configuration: {0}")]
    Config(String),
    /// Retries ran out before the request succeeded; the last failure is kept.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted { attempts: u32, last: Box<Error> },
}

impl Error {
    /// Whether trying again later can help: throttling, transient server errors and broken connections.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Graph(g) => matches!(g.status, 429 | 500 | 502 | 503 | 504),
            Error::Token(t) => matches!(t.status, 429 | 500 | 502 | 503 | 504) || t.error == "temporarily_unavailable",
            Error::Transport(t) => matches!(
                t.kind,
                TransportKind::Reset | TransportKind::Timeout | TransportKind::Body | TransportKind::Connect
            ),
            _ => false,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<u64> {
        match self {
            Error::Graph(g) => g.retry_after,
            Error::Token(t) => t.retry_after,
            _ => None,
        }
    }

    /// The error behind retries, for diagnosis.
    pub fn root(&self) -> &Error {
        match self {
            Error::Exhausted { last, .. } => last.root(),
            other => other,
        }
    }
}
