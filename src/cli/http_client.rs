//! The HTTP client of `holdfast apply`: `ureq` (blocking, rustls with the
//! webpki roots), for `https://` and `http://` URLs. Redirects are not
//! followed (the request carries the API key), and 4xx/5xx answers are
//! returned to the caller, which reports the server's error body.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Largest response read (a diff of a large tenant is big, but bounded).
const MAX_RESPONSE: u64 = 256 << 20;

/// Kept as is in a path segment or query value: RFC 3986 unreserved, `:`, `@`.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b':').remove(b'@');

/// A server URL: `http[s]://host[:port][/base]`, without a trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url(String);

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let uri: ureq::http::Uri = s.parse().map_err(|_| format!("`{s}` is not a URL"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(format!("`{s}` is not an http:// or https:// URL")),
        }
        let authority = uri.authority().ok_or_else(|| format!("`{s}`: expected http[s]://host[:port]"))?;
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return Err(format!("`{s}`: expected http[s]://host[:port]"));
        }
        let port = authority.as_str().strip_prefix(authority.host()).unwrap_or("");
        if let Some(p) = port.strip_prefix(':').filter(|p| p.parse::<u16>().is_err()) {
            return Err(format!("`{s}`: `{p}` is not a port"));
        }
        if uri.query().is_some() {
            return Err(format!("`{s}`: the server URL takes no query"));
        }
        Ok(Url(s.trim_end_matches('/').to_string()))
    }
}

/// Percent-encodes a path segment or query value (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, KEEP).to_string()
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends one `PUT`; `path` starts with `/` and may carry a query.
pub fn put(
    url: &Url,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("holdfast/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let target = format!("{}{path}", url.0);
    let mut req = agent.put(&target);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut res = req.send(body).map_err(|e| describe(&url.0, e))?;
    let status = res.status().as_u16();
    let body = res.body_mut().with_config().limit(MAX_RESPONSE).read_to_vec().map_err(|e| describe(&url.0, e))?;
    Ok(Response { status, body })
}

/// A transport error in words that name the server.
fn describe(server: &str, e: ureq::Error) -> String {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            format!("cannot connect to `{server}`: {io}")
        }
        // rustls reports a failed handshake as invalid data.
        ureq::Error::Io(io) if io.kind() == ErrorKind::InvalidData && server.starts_with("https:") => {
            format!("the TLS handshake with `{server}` failed ({io}); does it serve https on that port?")
        }
        ureq::Error::Io(io) => format!("`{server}`: {io}"),
        ureq::Error::ConnectionFailed => format!("cannot connect to `{server}`"),
        ureq::Error::HostNotFound => format!("cannot connect to `{server}`: the host is not found"),
        ureq::Error::Timeout(t) => format!("`{server}` did not answer in time ({t})"),
        ureq::Error::BodyExceedsLimit(n) => format!("`{server}` answered with more than {n} bytes"),
        e => format!("`{server}`: {e}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(Url::parse("http://127.0.0.1:8080").unwrap().0, "http://127.0.0.1:8080");
        assert_eq!(Url::parse("https://example.test/holdfast/").unwrap().0, "https://example.test/holdfast");
        assert_eq!(Url::parse("http://[::1]:9000").unwrap().0, "http://[::1]:9000");
        assert!(Url::parse("ftp://x").unwrap_err().contains("not an http:// or https:// URL"));
        assert!(Url::parse("example.test").is_err());
        assert!(Url::parse("http://x:port").unwrap_err().contains("`port` is not a port"));
        assert!(Url::parse("http://x:70000").is_err());
        assert!(Url::parse("http://user:pw@x").is_err());
        assert_eq!(encode("a b/c.yaml"), "a%20b%2Fc.yaml");
        assert_eq!(encode("acme:prod@x~y_z-1"), "acme:prod@x~y_z-1");
    }

    #[test]
    fn a_closed_port_is_named() {
        // Bind then drop: the port is (almost surely) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let e = put(&url, "/", &[], b"", Duration::from_secs(5)).unwrap_err();
        assert!(e.starts_with("cannot connect to `http://127.0.0.1:"), "{e}");
    }

    #[test]
    fn https_urls_speak_tls_so_the_key_never_goes_out_in_clear() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut first = vec![0; 512];
            let n = conn.read(&mut first).unwrap();
            first.truncate(n);
            first // dropping the connection ends the handshake
        });
        let url = Url::parse(&format!("https://127.0.0.1:{port}")).unwrap();
        let key = "hf_secret_key_value";
        let auth = format!("Bearer {key}");
        let e = put(&url, "/v1/tenants/t/policy", &[("authorization", &auth)], b"roles: {}", Duration::from_secs(5))
            .unwrap_err();
        assert!(e.contains(&format!("https://127.0.0.1:{port}")), "{e}");
        let first = seen.join().unwrap();
        assert_eq!(first.first(), Some(&0x16), "a TLS handshake record comes first: {first:?}");
        assert!(!String::from_utf8_lossy(&first).contains(key));
    }
}
