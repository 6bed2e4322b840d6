//! The browser sign-in over a loopback redirect: a one-shot HTTP server on `127.0.0.1` that receives
//! the authorization response, and [`OAuth::interactive`], which runs the authorization-code flow
//! through it.
//!
//! It is kept apart from the protocol ([`crate::oauth`]) because it is the only place the crate
//! listens for connections rather than making them: a browser, not Microsoft, talks to it.

use std::time::Duration;

use crate::error::{Error, TokenError};
use crate::oauth::{OAuth, TokenResponse, aadsts_codes};

impl OAuth {
    /// Runs the authorization-code flow: listens on a loopback port, hands the URL to `open` (a browser
    /// or a printout), waits for the redirect, checks `state`, and redeems the code.
    pub(crate) async fn interactive(
        &self,
        tenant: &str,
        client_id: &str,
        scope: &str,
        timeout: Duration,
        open: impl FnOnce(&str),
    ) -> Result<TokenResponse, Error> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| Error::SignIn(format!("cannot listen on a loopback port for the redirect: {e}")))?;
        let port = listener.local_addr().map_err(|e| Error::SignIn(e.to_string()))?.port();
        let redirect_uri = format!("http://localhost:{port}/");
        let req = self.authorize_request(tenant, client_id, &redirect_uri, scope, None);
        open(&req.url);
        let params = tokio::time::timeout(timeout, wait_for_redirect(&listener, &req.state))
            .await
            .map_err(|_| Error::SignIn(format!("no sign-in came back within {} seconds", timeout.as_secs())))??;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        // Only the answer to this sign-in (its state checked by `wait_for_redirect`) gets here, so
        // its error is Microsoft's, not a stranger's text.
        if let Some(error) = get("error") {
            let description = get("error_description").unwrap_or_default();
            return Err(Error::Token(Box::new(TokenError {
                url: self.cloud.authorize_endpoint(tenant),
                tenant: Some(tenant.to_string()),
                status: 400,
                error,
                error_codes: aadsts_codes(&description),
                description,
                suberror: None,
                claims: None,
                trace_id: None,
                correlation_id: None,
                timestamp: None,
                retry_after: None,
            })));
        }
        let code = get("code").ok_or_else(|| Error::SignIn("the redirect carries no authorization code".into()))?;
        self.exchange_code(tenant, client_id, &code, &req, scope).await
    }
}

/// Whether two strings are equal, in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Accepts connections until one is the redirect of this sign-in (a GET whose `state` is `state`),
/// answers it, and returns its parameters. Anything else that reaches the port (a wrong or missing
/// `state`, whatever `code` or `error` it carries) is answered, logged and ignored: any local
/// process can connect to a loopback port, and must not be able to end or steer the sign-in.
async fn wait_for_redirect(listener: &tokio::net::TcpListener, state: &str) -> Result<Vec<(String, String)>, Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| Error::SignIn(e.to_string()))?;
        let mut buf = vec![0u8; 16 * 1024];
        let mut len = 0;
        // Read the request head only; a redirect carries everything in its request line.
        while len < buf.len() {
            let n = match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf[len..])).await {
                Ok(Ok(n)) => n,
                _ => 0,
            };
            if n == 0 {
                break;
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf[..len]).to_string();
        let target = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("").to_string();
        let query = target.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
        let params: Vec<(String, String)> =
            form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let answer = params.iter().any(|(k, _)| k == "code" || k == "error");
        let ours = params.iter().any(|(k, v)| k == "state" && same_secret(v, state));
        if answer && !ours {
            tracing::warn!("a redirect to the sign-in's loopback port did not carry this sign-in's state; ignored");
        }
        let done = answer && ours;
        let body = if done {
            "<!doctype html><html><body><h3>tenantscope: sign-in received.</h3><p>You can close this window.</p></body></html>"
        } else if answer {
            "<!doctype html><html><body><p>This is not the answer to the sign-in in progress; it was ignored.</p></body></html>"
        } else {
            "<!doctype html><html><body><p>Waiting for the sign-in to finish.</p></body></html>"
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(resp.as_bytes()).await;
        let _ = stream.shutdown().await;
        if done {
            return Ok(params);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn visit(port: u16, query: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        stream.write_all(format!("GET /?{query} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    }

    #[tokio::test]
    async fn only_the_redirect_with_this_sign_ins_state_ends_the_wait() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
        let port = listener.local_addr().expect("address").port();
        let waiting = tokio::spawn(async move { super::wait_for_redirect(&listener, "the-state").await });
        // A stranger's error with a wrong or missing state, and a code with a wrong state: ignored.
        for query in
            ["error=access_denied&error_description=evil", "state=guess&error=access_denied", "state=guess&code=stolen"]
        {
            let page = visit(port, query).await;
            assert!(page.contains("not the answer"), "{page}");
            assert!(!waiting.is_finished(), "{query} must not end the sign-in");
        }
        let page = visit(port, "state=the-state&code=the-code").await;
        assert!(page.contains("sign-in received"), "{page}");
        let params = waiting.await.expect("task").expect("the sign-in's own redirect");
        assert!(params.contains(&("code".to_string(), "the-code".to_string())));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(super::same_secret("abc", "abc"));
        assert!(!super::same_secret("abc", "abd") && !super::same_secret("abc", "ab"));
    }
}
