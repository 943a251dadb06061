//! The accept loop: each connection is served by Nisshi's own service
//! stack (framing, request routing, the group coordinator) over
//! [`TopicStorage`]. Nisshi's `Broker` has its own loop too, but prints a
//! progress display and takes the process's signals; `harness up` owns
//! both.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use nisshi_broker::coordinator::group::administrator::Controller;
use rama::{extensions::Extensions, tcp::TcpStream, Service};
use tokio::sync::oneshot;

use crate::TopicStorage;

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

/// Serves `storage` to the clients of `std_listener` from a thread of its
/// own.
pub fn serve(std_listener: std::net::TcpListener, storage: TopicStorage) -> Result<Listener> {
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
                    Ok(listener) => accept(listener, storage, stopped).await,
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

async fn accept(
    listener: tokio::net::TcpListener,
    storage: TopicStorage,
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
        let service =
            match nisshi_broker::service::services(&cluster, groups.clone(), storage.clone(), None)
            {
                Ok(service) => service,
                Err(e) => {
                    tracing::error!("kafka listener: {e}");
                    continue;
                }
            };
        tokio::spawn(async move {
            let served = service
                .serve(TcpStream::from_tokio_tcp_stream(
                    stream,
                    Extensions::default(),
                ))
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, "kafka connection closed: {e:?}");
            }
        });
    }
}
