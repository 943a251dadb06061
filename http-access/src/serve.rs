//! One accept loop for every server: TLS if configured, HTTP/1.1, the
//! access check before the routes, timeouts on slow clients, and a
//! graceful stop that lets answers in flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::time::Duration;

use anyhow::Context;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower_service::Service;
use warp::http::header::{HeaderValue, ACCEPT, WWW_AUTHENTICATE};
use warp::http::{Method, Request, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::access::Verdict;
use crate::body::RequestBody;
use crate::{login, Access};

/// On answers to a request admitted by the login cookie.
pub const SESSION_HEADER: &str = "x-pipeline-session";

/// Where and what a server listens for.
pub struct Listen<'a> {
    /// What it is, for errors: "the dashboard".
    pub what: &'a str,
    /// The flag that set the address, for errors: "--listen".
    pub flag: &'a str,
    pub address: SocketAddr,
    /// Whether it serves pages to browsers, which log in with a form and a
    /// cookie; an API answers 401 alone.
    pub pages: bool,
    pub timeouts: Timeouts,
}

impl<'a> Listen<'a> {
    pub fn new(what: &'a str, flag: &'a str, address: SocketAddr) -> Listen<'a> {
        Listen {
            what,
            flag,
            address,
            pages: false,
            timeouts: Timeouts::default(),
        }
    }

    pub fn with_pages(self) -> Listen<'a> {
        Listen {
            pages: true,
            ..self
        }
    }
}

/// How long a client may take before it is cut off.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To send a request's line and headers, once it has begun one.
    pub head: Duration,
    /// To finish a TLS handshake.
    pub handshake: Duration,
    /// Between two parts of a request's body.
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            head: Duration::from_secs(10),
            handshake: Duration::from_secs(10),
            body: Duration::from_secs(30),
        }
    }
}

/// What a server serves: the routes as `warp::service` makes them.
pub trait App:
    Service<Request<RequestBody>, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: Service<Request<RequestBody>, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

/// Serves `app` (a `warp::service` of the routes) on `listen.address`
/// until `stop` completes. Fails at once when the address is refused by
/// [`Access::check_listen`] or cannot be bound.
pub fn serve<S: App>(
    runtime: &tokio::runtime::Runtime,
    listen: Listen<'_>,
    access: &Access,
    app: S,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    access.check_listen(&listen)?;
    let listener = runtime
        .block_on(TcpListener::bind(listen.address))
        .with_context(|| {
            format!(
                "{} cannot listen on {} ({}: is another one running? pass a free port, or port 0)",
                listen.what, listen.address, listen.flag
            )
        })?;
    let address = listener.local_addr()?;
    let server = Server {
        access: access.clone(),
        pages: listen.pages,
        timeouts: listen.timeouts,
    };
    Ok((address, runtime.spawn(server.run(listener, app, stop))))
}

#[derive(Clone)]
struct Server {
    access: Access,
    pages: bool,
    timeouts: Timeouts,
}

impl Server {
    async fn run<S: App>(self, listener: TcpListener, app: S, stop: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let mut stop = pin!(stop);
        loop {
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait for some to close.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let watcher = graceful.watcher();
            let server = self.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Some(tls) = server.access.tls() else {
                    return server.connection(tcp, app, watcher).await;
                };
                let handshake = async {
                    let mut stream = tokio_openssl::SslStream::new(
                        openssl::ssl::Ssl::new(tls.context()).map_err(|e| e.to_string())?,
                        tcp,
                    )
                    .map_err(|e| e.to_string())?;
                    Pin::new(&mut stream)
                        .accept()
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>(stream)
                };
                match tokio::time::timeout(server.timeouts.handshake, handshake).await {
                    Ok(Ok(stream)) => server.connection(stream, app, watcher).await,
                    Ok(Err(e)) => tracing::debug!("a TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!("a TLS handshake took too long"),
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
    }

    async fn connection<I, S: App>(
        self,
        io: I,
        app: S,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let timeouts = self.timeouts;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let request = request.map(|body| RequestBody::new(body, timeouts.body));
            let server = self.clone();
            let app = app.clone();
            async move { Ok::<_, Infallible>(server.answer(request, app).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.head)
            .serve_connection(TokioIo::new(io), service);
        if let Err(e) = watcher.watch(connection).await {
            tracing::debug!("a connection ended: {e}");
        }
    }

    /// The app's answer for an admitted request, `/healthz` for anyone,
    /// the login form for pages, and 401 for the rest.
    async fn answer<S: App>(&self, request: Request<RequestBody>, mut app: S) -> Response {
        let access = &self.access;
        let verdict = access.judge(request.headers());
        let login = self.pages && access.has_token();
        if login {
            match (request.method(), request.uri().path()) {
                (&Method::GET, "/login") if verdict.admits() => return login::to("/"),
                (&Method::GET, "/login") => return login::page(None),
                (&Method::POST, "/login") => return login::log_in(request, access).await,
                (&Method::POST, "/logout") => return login::log_out(),
                _ => {}
            }
        }
        if verdict.admits() || request.uri().path() == "/healthz" {
            let mut response = match app.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if verdict == Verdict::Session {
                // Tells the page it may offer to log out: the cookie is
                // HttpOnly, so its scripts cannot see it.
                response
                    .headers_mut()
                    .insert(SESSION_HEADER, HeaderValue::from_static("cookie"));
            }
            return response;
        }
        if login && request.method() == Method::GET && wants_html(&request) {
            return login::to("/login");
        }
        unauthorized(access, &verdict)
    }
}

fn wants_html(request: &Request<RequestBody>) -> bool {
    request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// 401 in the admin API's error shape, with the schemes it takes.
fn unauthorized(access: &Access, verdict: &Verdict) -> Response {
    let message = match verdict {
        Verdict::Refused => "the credentials sent are not accepted",
        _ => "authentication required: send Authorization: Bearer <token> (the server's --auth-token), or basic credentials if it takes them",
    };
    let body = serde_json::json!({ "message": message, "code": 401 });
    let mut response = warp::reply::with_status(warp::reply::json(&body), StatusCode::UNAUTHORIZED)
        .into_response();
    let headers = response.headers_mut();
    if access.has_token() {
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"marketing-pipeline\""),
        );
    }
    if access.has_users() {
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"marketing-pipeline\", charset=\"UTF-8\""),
        );
    }
    response
}
