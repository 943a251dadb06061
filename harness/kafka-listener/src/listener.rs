//! The accept loop: each connection is served by Nisshi's own service
//! stack (framing, request routing, the group coordinator) over
//! [`TopicStorage`]. Nisshi's `Broker` has its own loop too, but prints a
//! progress display and takes the process's signals; `harness up` owns
//! both.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use nisshi_auth::SaslAuthenticateService;
use nisshi_broker::coordinator::group::administrator::Controller;
use nisshi_broker::service::{auth, coordinator, storage as storage_routes};
use nisshi_sans_io::{
    ApiKey as _, ErrorCode, RequestInput, SaslAuthenticateRequest, SaslAuthenticateResponse,
};
use nisshi_service::{
    BytesFrameLayer, BytesFrameService, FrameRequestLayer, FrameRouteService, TcpBytesLayer,
    TcpBytesService, TcpContext, TcpContextLayer, TcpContextService,
    DEFAULT_PRE_AUTHENTICATION_MAXIMUM_FRAME_SIZE,
};
use openssl::ssl::{Ssl, SslAcceptor};
use rama::extensions::{Extensions, ExtensionsRef};
use rama::layer::MapErrLayer;
use rama::{tcp::TcpStream, Layer, Service};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio_openssl::SslStream;

use crate::long_poll::LongPoll;
use crate::TopicStorage;

/// What a client must do before it is served.
#[derive(Clone, Default)]
pub struct Security {
    /// Authenticate with SASL SCRAM as one of the [`crate::Users`] before
    /// any request but ApiVersions and the SASL ones.
    pub sasl: bool,
    /// Speak TLS from the first byte.
    pub tls: Option<SslAcceptor>,
}

/// Most a TLS handshake may take: a client that stalls in it holds a
/// connection, not the listener.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A listener serving until dropped.
pub struct Listener {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Where it listens (the port chosen, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds `addr`, with an error naming it if it is taken. The caller
/// advertises the address bound (the port chosen, for port 0).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr)
        .with_context(|| format!("listening for Kafka clients on {addr}"))
}

/// Serves `storage` to the clients of `std_listener`, as `security` asks,
/// from a thread of its own.
pub fn serve(
    std_listener: std::net::TcpListener,
    storage: TopicStorage,
    security: Security,
) -> Result<Listener> {
    let sasl = match security.sasl {
        true => {
            Some(nisshi_auth::configuration(storage.clone()).map_err(|e| anyhow!("SASL: {e}"))?)
        }
        false => None,
    };
    let served = Served {
        sasl,
        tls: security.tls,
    };
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("kafka-listener")
        .enable_all()
        .build()?;
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("kafka-listener".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(listener) => accept(listener, storage, served, stopped).await,
                    Err(e) => tracing::error!("kafka listener: {e}"),
                }
            });
            // Connections still open are cut when the runtime goes.
            runtime.shutdown_background();
        })?;
    Ok(Listener {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// [`Security`] made ready to serve with.
struct Served {
    sasl: Option<std::sync::Arc<rsasl::config::SASLConfig>>,
    tls: Option<SslAcceptor>,
}

async fn accept(
    listener: tokio::net::TcpListener,
    storage: TopicStorage,
    security: Served,
    mut stopped: oneshot::Receiver<()>,
) {
    let cluster = storage.cluster();
    let groups = Controller::new(storage.clone(), Default::default());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!("kafka listener: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => return,
        };
        let _ = stream.set_nodelay(true);
        let service = match services(
            &cluster,
            groups.clone(),
            storage.clone(),
            security.sasl.clone(),
        ) {
            Ok(service) => service,
            Err(e) => {
                tracing::error!("kafka listener: {e}");
                continue;
            }
        };
        let tls = security.tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    service
                        .serve(TcpStream::from_tokio_tcp_stream(
                            stream,
                            Extensions::default(),
                        ))
                        .await
                }
                Some(tls) => match handshake(&tls, stream).await {
                    Ok(stream) => service.serve(stream).await,
                    Err(e) => {
                        tracing::debug!(%peer, "kafka TLS handshake: {e:#}");
                        return;
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(%peer, "kafka connection closed: {e:?}");
            }
        });
    }
}

type Services = TcpContextService<
    TcpBytesService<BytesFrameService<LongPoll<FrameRouteService<nisshi_broker::Error>>>>,
>;

/// One connection's services: `nisshi_broker::service::services`, built
/// from the same public parts, with SaslAuthenticate answering as Kafka's
/// brokers do (see [`KafkaAuthenticate`]) and Fetch waiting for records
/// ([`LongPoll`]).
fn services(
    cluster: &str,
    groups: Controller<TopicStorage>,
    storage: TopicStorage,
    sasl: Option<std::sync::Arc<rsasl::config::SASLConfig>>,
) -> Result<Services, nisshi_broker::Error> {
    let builder = storage_routes::services(FrameRouteService::builder(), storage)?;
    let builder = coordinator::services(builder, groups)?;
    let builder = auth::handshake(builder)?.with_route(
        SaslAuthenticateRequest::KEY,
        (
            MapErrLayer::new(nisshi_broker::Error::from),
            FrameRequestLayer::<SaslAuthenticateRequest>::new(),
        )
            .into_layer(KafkaAuthenticate(SaslAuthenticateService::default()))
            .boxed(),
    )?;
    let route = builder.build()?;
    let pre_authentication_maximum_frame_size = sasl
        .is_some()
        .then_some(DEFAULT_PRE_AUTHENTICATION_MAXIMUM_FRAME_SIZE);
    Ok((
        TcpContextLayer::new(
            TcpContext::default()
                .cluster_id(Some(cluster.into()))
                .pre_authentication_maximum_frame_size(pre_authentication_maximum_frame_size),
        ),
        TcpBytesLayer,
        BytesFrameLayer::default().with_sasl_config(sasl),
    )
        .into_layer(LongPoll(route)))
}

/// Nisshi's SaslAuthenticate, with a failed SCRAM exchange answered as
/// Kafka's and Redpanda's brokers answer it: `SASL_AUTHENTICATION_FAILED`
/// (`kafka/server/handlers/sasl_authenticate.cc`), one message whatever
/// failed, so that it does not tell who exists. Nisshi sends the server's
/// RFC 5802 error (`e=invalid-proof`, `e=unknown-user`) with no error code,
/// which librdkafka reports but kafka-python retries forever.
#[derive(Clone)]
struct KafkaAuthenticate(SaslAuthenticateService);

impl Service<RequestInput<SaslAuthenticateRequest>> for KafkaAuthenticate {
    type Output = SaslAuthenticateResponse;
    type Error = nisshi_auth::Error;

    async fn serve(
        &self,
        input: RequestInput<SaslAuthenticateRequest>,
    ) -> Result<Self::Output, Self::Error> {
        let response = self.0.serve(input).await?;
        if response.error_code != i16::from(ErrorCode::None)
            || !response.auth_bytes.starts_with(b"e=")
        {
            return Ok(response);
        }
        // Without the server's `e=` reason, which says whether the user
        // exists, as Kafka's answer carries no bytes.
        Ok(response
            .error_code(ErrorCode::SaslAuthenticationFailed.into())
            .error_message(Some(
                "Authentication failed during authentication due to invalid credentials".into(),
            ))
            .auth_bytes(bytes::Bytes::new()))
    }
}

async fn handshake(tls: &SslAcceptor, stream: tokio::net::TcpStream) -> Result<TlsStream> {
    let mut stream = SslStream::new(Ssl::new(tls.context())?, stream)?;
    tokio::time::timeout(HANDSHAKE, Pin::new(&mut stream).accept())
        .await
        .context("timed out")??;
    Ok(TlsStream {
        stream,
        extensions: Extensions::default(),
    })
}

/// A TLS connection as Nisshi's per-connection services take one: a byte
/// stream with rama's extensions beside it.
struct TlsStream {
    stream: SslStream<tokio::net::TcpStream>,
    extensions: Extensions,
}

impl ExtensionsRef for TlsStream {
    fn extensions(&self) -> &Extensions {
        &self.extensions
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
