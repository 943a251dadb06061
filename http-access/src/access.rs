//! Who may call a server, and over what.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use base64::prelude::{Engine, BASE64_STANDARD};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::ssl::{SslAcceptor, SslMethod};
use warp::http::HeaderMap;

use crate::Listen;

/// The cookie a page logs in with.
pub(crate) const SESSION_COOKIE: &str = "pipeline_session";

/// What a server requires of its callers; cheap to clone.
#[derive(Clone, Default)]
pub struct Access {
    inner: Arc<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    token: Option<Vec<u8>>,
    /// The login cookie's value: an HMAC of the token, so the cookie does
    /// not carry the token itself, and holds across restarts.
    session: Option<Vec<u8>>,
    users: Vec<(Vec<u8>, Vec<u8>)>,
    tls: Option<SslAcceptor>,
    allow_unauthenticated: bool,
}

/// Says what is required, never the secrets.
impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<_> = self
            .inner
            .users
            .iter()
            .map(|(user, _)| String::from_utf8_lossy(user))
            .collect();
        f.debug_struct("Access")
            .field("token", &self.inner.token.as_ref().map(|_| "***"))
            .field("basic_users", &users)
            .field("tls", &self.inner.tls.is_some())
            .field("allow_unauthenticated", &self.inner.allow_unauthenticated)
            .finish()
    }
}

impl Verdict {
    pub(crate) fn admits(&self) -> bool {
        matches!(self, Verdict::Admitted | Verdict::Session)
    }
}

/// What a request's credentials come to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Admitted,
    /// Admitted by the login cookie: the page may offer to log out.
    Session,
    /// It sent none.
    Missing,
    /// It sent some, and they are wrong.
    Refused,
}

impl Access {
    /// Anyone may call, over plain HTTP.
    pub fn open() -> Access {
        Access::default()
    }

    pub fn with_token(self, token: &str) -> Access {
        self.change(|inner| {
            inner.token = Some(token.as_bytes().to_vec());
            inner.session = Some(session_for(token.as_bytes()));
        })
    }

    pub fn with_user(self, user: &str, password: &str) -> Access {
        self.change(|inner| {
            inner
                .users
                .push((user.as_bytes().to_vec(), password.as_bytes().to_vec()))
        })
    }

    /// Serves HTTPS with the PEM certificate chain and key in these files.
    pub fn with_tls(self, cert: &Path, key: &Path) -> Result<Access> {
        let mut tls = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            .context("setting up TLS")?;
        tls.set_certificate_chain_file(cert)
            .with_context(|| format!("--tls-cert {}: not a PEM certificate", cert.display()))?;
        let pem = std::fs::read(key)
            .with_context(|| format!("--tls-key {}: cannot read it", key.display()))?;
        let private = PKey::private_key_from_pem(&pem)
            .with_context(|| format!("--tls-key {}: not a PEM private key", key.display()))?;
        let mismatch = || {
            format!(
                "--tls-key {} is not the key of --tls-cert {}",
                key.display(),
                cert.display()
            )
        };
        tls.set_private_key(&private).with_context(mismatch)?;
        tls.check_private_key().with_context(mismatch)?;
        let tls = tls.build();
        Ok(self.change(|inner| inner.tls = Some(tls)))
    }

    /// Lets [`Access::check_listen`] pass an address beyond loopback with
    /// no authentication.
    pub fn allowing_unauthenticated(self) -> Access {
        self.change(|inner| inner.allow_unauthenticated = true)
    }

    fn change(self, edit: impl FnOnce(&mut Inner)) -> Access {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        edit(&mut inner);
        Access {
            inner: Arc::new(inner),
        }
    }

    /// Whether callers must authenticate.
    pub fn required(&self) -> bool {
        self.inner.token.is_some() || !self.inner.users.is_empty()
    }

    pub(crate) fn has_token(&self) -> bool {
        self.inner.token.is_some()
    }

    pub(crate) fn has_users(&self) -> bool {
        !self.inner.users.is_empty()
    }

    /// The TLS every listener serves with, from --tls-cert and --tls-key.
    pub fn tls(&self) -> Option<&SslAcceptor> {
        self.inner.tls.as_ref()
    }

    /// Whether --allow-unauthenticated says the network is trusted.
    pub fn allows_unauthenticated(&self) -> bool {
        self.inner.allow_unauthenticated
    }

    /// `http` or `https`, for the addresses a command prints.
    pub fn scheme(&self) -> &'static str {
        if self.inner.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Refuses to serve `listen` beyond loopback when nobody need
    /// authenticate, unless `--allow-unauthenticated` says the network is
    /// trusted.
    pub fn check_listen(&self, listen: &Listen<'_>) -> Result<()> {
        let Listen {
            what,
            flag,
            address,
            ..
        } = listen;
        if address.ip().is_loopback() || self.required() || self.inner.allow_unauthenticated {
            return Ok(());
        }
        bail!(
            "refusing to serve {what} on {address} (from {flag}) without authentication: anyone who \
             can reach it could use it. Require a token (--auth-token-file FILE, or {}) or basic \
             users (--basic-auth-file FILE), serve on 127.0.0.1, or pass --allow-unauthenticated \
             if this network is trusted",
            crate::TOKEN_ENV
        )
    }

    /// Checks a request's `Authorization` header and its login cookie.
    pub(crate) fn judge(&self, headers: &HeaderMap) -> Verdict {
        if !self.required() {
            return Verdict::Admitted;
        }
        let mut sent = false;
        for value in headers.get_all("authorization") {
            sent = true;
            if value.to_str().is_ok_and(|v| self.authorizes(v)) {
                return Verdict::Admitted;
            }
        }
        if let Some(session) = &self.inner.session {
            for value in cookies(headers, SESSION_COOKIE) {
                sent = true;
                if same(value.as_bytes(), session) {
                    return Verdict::Session;
                }
            }
        }
        if sent {
            Verdict::Refused
        } else {
            Verdict::Missing
        }
    }

    fn authorizes(&self, authorization: &str) -> bool {
        let Some((scheme, credentials)) = authorization.trim().split_once(' ') else {
            return false;
        };
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self
                .inner
                .token
                .as_ref()
                .is_some_and(|token| same(credentials.as_bytes(), token));
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = BASE64_STANDARD.decode(credentials) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        // Every user is compared, so the time taken says nothing of which
        // one nearly matched.
        self.inner.users.iter().fold(false, |found, (u, p)| {
            (same(user, u) & same(password, p)) | found
        })
    }

    /// Whether `token` is the token: what the login form checks.
    pub(crate) fn is_token(&self, token: &str) -> bool {
        self.inner
            .token
            .as_ref()
            .is_some_and(|t| same(token.as_bytes(), t))
    }

    /// The login cookie's value.
    pub(crate) fn session(&self) -> Option<&[u8]> {
        self.inner.session.as_deref()
    }
}

/// Compared in time that does not depend on where they differ.
fn same(sent: &[u8], expected: &[u8]) -> bool {
    sent.len() == expected.len() && openssl::memcmp::eq(sent, expected)
}

/// Hex of HMAC-SHA256(token, a fixed label).
fn session_for(token: &[u8]) -> Vec<u8> {
    let key = PKey::hmac(token).expect("any bytes are an HMAC key");
    let mut signer = Signer::new(MessageDigest::sha256(), &key).expect("SHA-256 is built in");
    let mac = signer
        .sign_oneshot_to_vec(b"marketing-pipeline session")
        .expect("HMAC does not fail");
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_bytes()
}

/// The values of the cookie `name` in a request's `Cookie` headers.
fn cookies<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all("cookie")
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, v.parse().unwrap());
        }
        map
    }

    fn basic(user_password: &str) -> String {
        format!("Basic {}", BASE64_STANDARD.encode(user_password))
    }

    #[test]
    fn tokens_users_and_the_login_cookie_are_checked() {
        let access = Access::open()
            .with_token("s3cret")
            .with_user("alice", "pa:ss");
        let judge = |pairs: &[(&'static str, &str)]| access.judge(&headers(pairs));
        assert_eq!(judge(&[]), Verdict::Missing);
        assert_eq!(
            judge(&[("authorization", "Bearer s3cret")]),
            Verdict::Admitted
        );
        assert_eq!(
            judge(&[("authorization", "bearer  s3cret ")]),
            Verdict::Admitted
        );
        assert_eq!(
            judge(&[("authorization", "Bearer s3cre")]),
            Verdict::Refused
        );
        assert_eq!(
            judge(&[("authorization", &basic("alice:pa:ss"))]),
            Verdict::Admitted
        );
        assert_eq!(
            judge(&[("authorization", &basic("alice:pa"))]),
            Verdict::Refused
        );
        assert_eq!(
            judge(&[("authorization", "Basic !!notbase64")]),
            Verdict::Refused
        );
        let session = String::from_utf8(access.session().unwrap().to_vec()).unwrap();
        assert_eq!(session.len(), 64);
        assert!(!session.contains("s3cret"));
        let cookie = format!("theme=dark; {SESSION_COOKIE}={session}");
        assert_eq!(judge(&[("cookie", &cookie)]), Verdict::Session);
        let cookie = format!("{SESSION_COOKIE}=s3cret");
        assert_eq!(judge(&[("cookie", &cookie)]), Verdict::Refused);
        // Another token makes another cookie.
        assert_ne!(
            Access::open().with_token("other").session(),
            access.session()
        );
    }

    #[test]
    fn open_servers_admit_anyone_but_not_beyond_loopback() {
        let open = Access::open();
        assert_eq!(open.judge(&headers(&[])), Verdict::Admitted);
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let anywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert!(open
            .check_listen(&Listen::new("the dashboard", "--listen", local))
            .is_ok());
        assert!(open
            .check_listen(&Listen::new("the dashboard", "--listen", v6))
            .is_ok());
        let e = open
            .check_listen(&Listen::new("the dashboard", "--listen", anywhere))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("0.0.0.0:8080 (from --listen)") && e.contains("--allow-unauthenticated"),
            "{e}"
        );
        assert!(open
            .clone()
            .allowing_unauthenticated()
            .check_listen(&Listen::new("x", "--listen", anywhere))
            .is_ok());
        assert!(open
            .with_token("t")
            .check_listen(&Listen::new("x", "--listen", anywhere))
            .is_ok());
    }
}
