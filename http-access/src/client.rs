//! How the harness's clients reach a server that may want credentials or
//! speak TLS with a private CA.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::prelude::{Engine, BASE64_STANDARD};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// A server's URL, `http[s]://[USER:PASSWORD@]HOST:PORT[/PREFIX]`, as its
/// base without the credentials (which errors may then name) and the
/// credentials as a Basic `Authorization` value, as Confluent's clients
/// take `basic.auth.user.info` and rpk its `-X user= -X pass=`.
pub fn split_url(url: &str, what: &str) -> Result<(String, Option<String>), String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(format!(
            "`{url}`: {what} URL is http://HOST:PORT or https://HOST:PORT"
        ));
    }
    let authorization = (!parsed.username().is_empty()).then(|| {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = decode(parsed.username());
        let password = decode(parsed.password().unwrap_or(""));
        format!(
            "Basic {}",
            BASE64_STANDARD.encode(format!("{user}:{password}"))
        )
    });
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok((
        parsed.as_str().trim_end_matches('/').to_string(),
        authorization,
    ))
}

/// An HTTP(S) client that hands every status back, trusting the system's
/// CAs or only the PEM certificates in `ca`.
pub fn agent(timeout: Duration, ca: Option<&Path>) -> Result<ureq::Agent> {
    let mut tls = TlsConfig::builder().provider(TlsProvider::NativeTls);
    if let Some(path) = ca {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let certificates = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect::<Vec<Certificate<'static>>>();
        if certificates.is_empty() {
            anyhow::bail!("{} holds no PEM certificate", path.display());
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certificates));
    }
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .tls_config(tls.build())
        .build()
        .into())
}

/// What a path segment keeps as it is: RFC 3986's unreserved characters
/// (letters, digits, `-`, `.`, `_`, `~`), which producers should not encode
/// (section 2.3) and simple servers and proxies do not decode.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A name as one path segment of a URL: everything but the unreserved
/// characters percent-encoded, `/` included.
pub fn path_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_segment_keeps_the_unreserved_characters() {
        assert_eq!(path_segment("clicks-value"), "clicks-value");
        assert_eq!(path_segment("a.b_c~d"), "a.b_c~d");
        assert_eq!(path_segment("a/b c?d#é"), "a%2Fb%20c%3Fd%23%C3%A9");
    }

    #[test]
    fn credentials_leave_the_url() {
        assert_eq!(
            split_url("https://al%40ice:p%3Ass@registry:8081/", "a registry"),
            Ok((
                "https://registry:8081".to_string(),
                Some(format!("Basic {}", BASE64_STANDARD.encode("al@ice:p:ss")))
            ))
        );
        assert_eq!(
            split_url("http://127.0.0.1:9644", "an admin"),
            Ok(("http://127.0.0.1:9644".to_string(), None))
        );
        assert!(split_url("ftp://x:1", "an admin")
            .unwrap_err()
            .contains("an admin URL is http://HOST:PORT"));
    }
}
