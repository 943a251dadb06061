//! Serving what we serve safely. The dashboard, the admin endpoint and the
//! schema registry all listen through [`serve`]:
//!
//! - [`Access`] says who may call them: a bearer token, HTTP basic users (as
//!   rpk sends `-X user= -X pass=` to an admin API), or, for pages, a login
//!   cookie; `/healthz` stays open for probes;
//! - TLS when given a certificate and key;
//! - a client that is slow to send its request's head, to go on with its
//!   body or to finish its TLS handshake is cut off;
//! - [`Access::check_listen`] refuses an address beyond loopback with no
//!   authentication, unless told the network is trusted.
//!
//! [`client`] is the other side: how the harness's clients reach them.

mod access;
mod args;
mod body;
pub mod client;
mod login;
mod serve;

pub use access::Access;
pub use args::{read_token, AccessArgs, TOKEN_ENV};
pub use body::RequestBody;
pub use serve::{serve, App, Listen, Timeouts, SESSION_HEADER};
