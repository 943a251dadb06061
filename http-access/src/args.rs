//! The flags every server takes, the same on each command.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::Access;

/// Where a token can come from besides the flags: one variable that the
/// servers and the harness's admin client both read.
pub const TOKEN_ENV: &str = "PIPELINE_AUTH_TOKEN";

#[derive(Args, Clone, Debug, Default)]
pub struct AccessArgs {
    /// Require this token (Authorization: Bearer TOKEN; the page asks for it once, then keeps a
    /// cookie). A command line shows in `ps`: prefer --auth-token-file or PIPELINE_AUTH_TOKEN.
    #[arg(long, value_name = "TOKEN", env = TOKEN_ENV, hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Require the token in this file (its first line).
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Accept HTTP basic authentication from the USER:PASSWORD lines of this file (as rpk sends
    /// -X user=… -X pass=… to an admin API).
    #[arg(long, value_name = "FILE")]
    pub basic_auth_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Listen beyond loopback with no authentication: anyone who reaches the port can read
    /// everything (and, on an admin endpoint, run code). Only on a network you trust.
    #[arg(long)]
    pub allow_unauthenticated: bool,
}

impl AccessArgs {
    pub fn access(&self) -> Result<Access> {
        if self.auth_token.is_some() && self.auth_token_file.is_some() {
            bail!(
                "give the token once: --auth-token (or {TOKEN_ENV}) or --auth-token-file, not both"
            );
        }
        let token = read_token(self.auth_token.as_deref(), self.auth_token_file.as_deref())?;
        let mut access = Access::open();
        if let Some(token) = token {
            access = access.with_token(&token);
        }
        if let Some(path) = &self.basic_auth_file {
            for (user, password) in basic_users(path)? {
                access = access.with_user(&user, &password);
            }
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            access = access.with_tls(cert, key)?;
        }
        if self.allow_unauthenticated {
            access = access.allowing_unauthenticated();
        }
        Ok(access)
    }
}

/// The token of `--auth-token-file`, else of `--auth-token` (or
/// `PIPELINE_AUTH_TOKEN`), trimmed: the same for servers and clients.
pub fn read_token(flag: Option<&str>, file: Option<&Path>) -> Result<Option<String>> {
    match (file, flag) {
        (Some(path), _) => Ok(Some(read_secret(path, "--auth-token-file")?)),
        (None, Some(token)) if token.trim().is_empty() => {
            bail!("--auth-token (or {TOKEN_ENV}) is empty")
        }
        (None, token) => Ok(token.map(|t| t.trim().to_string())),
    }
}

/// A secret kept in a file: its first line, which may not be empty.
fn read_secret(path: &Path, flag: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{flag} {}: cannot read it", path.display()))?;
    match text.lines().next().map(str::trim) {
        Some(secret) if !secret.is_empty() => Ok(secret.to_string()),
        _ => bail!("{flag} {}: its first line is empty", path.display()),
    }
}

/// `USER:PASSWORD` lines; blank lines and `#` comments are skipped.
fn basic_users(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--basic-auth-file {}: cannot read it", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                users.push((user.to_string(), password.to_string()))
            }
            // The line itself holds a password: it is not repeated.
            _ => bail!(
                "--basic-auth-file {} line {}: expected USER:PASSWORD",
                path.display(),
                n + 1
            ),
        }
    }
    if users.is_empty() {
        bail!(
            "--basic-auth-file {}: no USER:PASSWORD line in it",
            path.display()
        );
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn secrets_come_from_the_first_line_and_bad_files_say_which_line() {
        let token = file("s3cret-token\nignored\n");
        assert_eq!(read_secret(token.path(), "--x").unwrap(), "s3cret-token");
        let empty = file("\n");
        let e = read_secret(empty.path(), "--auth-token-file").unwrap_err();
        assert!(format!("{e}").contains("first line is empty"), "{e}");

        let users = file("# operators\nalice:pa:ss\n\nbob:hunter2\n");
        assert_eq!(
            basic_users(users.path()).unwrap(),
            [
                ("alice".to_string(), "pa:ss".to_string()),
                ("bob".to_string(), "hunter2".to_string())
            ]
        );
        let bad = file("alice:ok\nno-colon-secret\n");
        let e = format!("{:#}", basic_users(bad.path()).unwrap_err());
        assert!(e.contains("line 2: expected USER:PASSWORD"), "{e}");
        assert!(!e.contains("no-colon-secret"), "{e}");
    }

    #[test]
    fn one_token_at_most() {
        let token = file("t0ken-from-file\n");
        let args = AccessArgs {
            auth_token: Some("t0ken".into()),
            auth_token_file: Some(token.path().to_path_buf()),
            ..AccessArgs::default()
        };
        assert!(format!("{}", args.access().unwrap_err()).contains("not both"));
        let args = AccessArgs {
            auth_token: Some("  ".into()),
            ..AccessArgs::default()
        };
        assert!(format!("{}", args.access().unwrap_err()).contains("is empty"));
    }
}
