//! The REST client: every call answers JSON or a `CliError` carrying the server's code and message.

use std::time::Duration;

use serde_json::Value;

use crate::error::{CliError, Result};

pub struct Client {
    http: reqwest::Client,
    base: String,
    admin_token: Option<String>,
}

impl Client {
    pub fn new(base: &str, timeout: Duration, admin_token: Option<&str>) -> Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| CliError::Failed(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client { http, base: base.trim_end_matches('/').to_owned(), admin_token: admin_token.map(str::to_owned) })
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(self.url(path)), path).await
    }

    /// A GET carrying the operator token when there is one: reads the operator may see more of
    /// (an auction's reserve price).
    pub async fn get_as_operator(&self, path: &str) -> Result<Value> {
        self.send(self.authorized(self.http.get(self.url(path))), path).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.authorized(self.http.post(self.url(path))).json(body), path).await
    }

    /// POSTs with an `Idempotency-Key`, so that sending the same call again is safe.
    pub async fn post_idempotent(&self, path: &str, body: &Value, key: &str) -> Result<Value> {
        self.send(self.authorized(self.http.post(self.url(path))).header("idempotency-key", key).json(body), path).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.authorized(self.http.put(self.url(path))).json(body), path).await
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.admin_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder, path: &str) -> Result<Value> {
        let url = self.url(path);
        let response = request.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = response.status();
        let body: Value =
            response.json().await.map_err(|e| CliError::Failed(format!("unreadable answer from {url}: {e}")))?;
        if status.is_success() {
            return Ok(body);
        }
        let text = |key: &str| body["error"][key].as_str().map(str::to_owned);
        Err(CliError::Server {
            status: status.as_u16(),
            code: text("code").unwrap_or_else(|| "error".to_owned()),
            message: text("message").unwrap_or_else(|| format!("{status} from {url}")),
        })
    }
}

/// The reason a request never got an answer, in words.
pub fn unreachable(url: &str, error: &reqwest::Error) -> CliError {
    let reason = if error.is_timeout() {
        "no answer in time (see --timeout)".to_owned()
    } else if error.is_connect() {
        // The innermost cause says what went wrong: refused, an unknown host, or TLS (such as a
        // certificate nobody here trusts).
        let mut innermost = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(e) = source {
            innermost = e.to_string();
            source = e.source();
        }
        innermost
    } else {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(e) = source {
            text = format!("{text}: {e}");
            source = e.source();
        }
        text
    };
    CliError::Unreachable { url: url.to_owned(), reason }
}
