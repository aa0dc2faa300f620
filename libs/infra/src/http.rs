//! Serving HTTP so that slow and idle clients cannot starve a service.
//!
//! `axum::serve` keeps a connection for as long as its client does, even one that sent half a
//! request line and then nothing: 20,000 of those from one address exhausted voting-api's file
//! descriptors (bounded since `dc70364`). [`serve`] runs the same router with three bounds, read
//! once from the environment by [`HttpSettings`]:
//!
//! - **a header-read timeout.** hyper starts its clock whenever a connection waits for a
//!   request head: when it opens, and on a keep-alive connection after every response. So the
//!   same timeout also closes a connection idle between two requests; there is no separate idle
//!   timeout to set, and none could be longer than this one.
//! - **at most `max_connections` open at once**, kept below the open-file limit: when they are
//!   all taken the accept loop waits for one to close (new clients wait in the listen backlog)
//!   instead of running into `EMFILE`; any accept error is logged and retried after a pause,
//!   it never ends the loop. A connection upgraded to a WebSocket still counts until it closes:
//!   it still holds a descriptor.
//! - **at most `max_connections_per_ip` speaking HTTP from one client address** (IPv6: one
//!   /64, which a single client usually has whole), so that one client cannot take all of them;
//!   further connections from it are closed at once. An upgraded WebSocket no longer counts
//!   here: it is a live client, and the Socket.IO heartbeat drops it when it stops answering.
//!   `0` turns the cap off, for a service behind a proxy, where every connection comes from
//!   the proxy's own address.
//!
//! Only HTTP/1.1 is served, as before (the workspace does not enable axum's `http2`). Every
//! request carries `ConnectInfo<SocketAddr>`, the peer address, as
//! `into_make_service_with_connect_info` would add it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::env::{ConfigError, Vars};

/// Descriptors left for everything but client connections (PostgreSQL, Redis, Kafka, logs)
/// when `max_connections` is lowered to fit the open-file limit.
const RESERVED_DESCRIPTORS: u64 = 1_024;

/// Longest pause after a failed accept; the pause doubles from 10 ms up to this.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The bounds every HTTP listener of the services applies to its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Longest a connection may take to send a complete request head, counted from when it
    /// opened or finished its previous request, so also the idle keep-alive timeout
    /// (`HTTP_HEADER_READ_TIMEOUT_MS`, default 10,000 ms).
    pub header_read_timeout: Duration,
    /// Connections open at once, WebSockets included (`HTTP_MAX_CONNECTIONS`, default 16,384);
    /// lowered at start to the open-file limit less 1,024 if that is smaller.
    pub max_connections: usize,
    /// Connections speaking HTTP from one client address, `0` for no cap
    /// (`HTTP_MAX_CONNECTIONS_PER_IP`, default 8,192: half of the default total, so that a
    /// hall of thousands of phones behind one address still gets in).
    pub max_connections_per_ip: usize,
}

impl HttpSettings {
    /// Reads `HTTP_HEADER_READ_TIMEOUT_MS`, `HTTP_MAX_CONNECTIONS` and
    /// `HTTP_MAX_CONNECTIONS_PER_IP`.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            header_read_timeout: Duration::from_millis(vars.ranged_or(
                "HTTP_HEADER_READ_TIMEOUT_MS",
                10_000u64,
                100..=600_000,
            )?),
            max_connections: vars.ranged_or("HTTP_MAX_CONNECTIONS", 16_384usize, 1..=1_000_000)?,
            max_connections_per_ip: vars.ranged_or(
                "HTTP_MAX_CONNECTIONS_PER_IP",
                8_192usize,
                0..=1_000_000,
            )?,
        })
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self::from_vars(&Vars::from_pairs([])).expect("the defaults are valid")
    }
}

/// Serves `router` on `listener` within `settings` until `shutdown` completes, then stops
/// accepting and waits for the requests in flight to be answered (idle connections close at
/// once). Fails only if the listener's address cannot be read; accept errors are retried.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: &HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let address = listener.local_addr()?;
    let max_connections = fit_open_file_limit(settings.max_connections);
    let connections = Arc::new(Semaphore::new(max_connections));
    let per_address = Arc::new(AddressTable::new(settings.max_connections_per_ip));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let stopping = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut shutdown = pin!(shutdown);
    let mut backoff = Duration::ZERO;
    tracing::debug!(%address, max_connections, max_connections_per_ip = settings.max_connections_per_ip, "Serving HTTP");

    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                    metrics::counter!(crate::metrics::names::HTTP_ACCEPT_ERRORS_TOTAL).increment(1);
                    tracing::error!(%address, error = %err, retry_in_ms = backoff.as_millis() as u64, "Accept failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(backoff) => continue,
                    }
                }
            },
        };
        backoff = Duration::ZERO;
        let Some(slot) = per_address.admit(peer.ip()) else {
            metrics::counter!(crate::metrics::names::HTTP_CONNECTIONS_REFUSED_TOTAL, "reason" => "per_ip").increment(1);
            tracing::debug!(%peer, "Too many connections from this address; closed");
            drop(stream);
            continue;
        };
        let io = TokioIo::new(CountedStream::new(stream, permit));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().call(request)
        });
        let connection = http.serve_connection(io, service).with_upgrades();
        let stopping = stopping.clone();
        tracker.spawn(async move {
            let _slot = slot;
            let mut connection = pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
            }
        });
    }

    // New clients are refused at once (and go to another replica) while these drain.
    drop(listener);
    stopping.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Errors about one incoming connection, not about the listener: accept the next at once.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// `wanted`, lowered so that that many connections fit under the process's open-file limit.
fn fit_open_file_limit(wanted: usize) -> usize {
    let Some(limit) = open_file_limit() else {
        return wanted;
    };
    let fits = limit
        .saturating_sub(RESERVED_DESCRIPTORS)
        .max(limit / 2)
        .max(1);
    let fits = usize::try_from(fits).unwrap_or(usize::MAX);
    if wanted > fits {
        tracing::warn!(
            wanted,
            open_file_limit = limit,
            max_connections = fits,
            "HTTP_MAX_CONNECTIONS lowered to fit the open-file limit"
        );
        fits
    } else {
        wanted
    }
}

/// The soft limit on open files (`RLIMIT_NOFILE`), where Linux's `/proc` tells it.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A client connection holding its place among `max_connections` until it is dropped, by
/// hyper or, after an upgrade, by the WebSocket handler that took it over.
struct CountedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl CountedStream {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!(crate::metrics::names::HTTP_CONNECTIONS_OPEN).increment(1);
        Self {
            stream,
            _permit: permit,
        }
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::names::HTTP_CONNECTIONS_OPEN).decrement(1);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Connections speaking HTTP per client address.
struct AddressTable {
    /// `0`: no cap, nothing counted.
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl AddressTable {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A place for one more connection from `ip`, or `None` when it has `limit` already.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        if self.limit == 0 {
            return Some(AddressSlot { held: None });
        }
        let client = client_key(ip);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(client).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            held: Some((self.clone(), client)),
        })
    }
}

/// One client's place in the [`AddressTable`], given back when dropped.
struct AddressSlot {
    held: Option<(Arc<AddressTable>, IpAddr)>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some((table, client)) = self.held.take() else {
            return;
        };
        let mut open = table
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&client);
            }
        }
    }
}

/// The address a cap applies to: IPv4 as is (IPv4-mapped IPv6 included), IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let settings = HttpSettings::default();
        assert_eq!(settings.header_read_timeout, Duration::from_secs(10));
        assert_eq!(settings.max_connections, 16_384);
        assert_eq!(settings.max_connections_per_ip, 8_192);
    }

    #[test]
    fn per_ip_cap_of_zero_is_allowed_and_timeout_range_is_checked() {
        let vars = Vars::from_pairs([("HTTP_MAX_CONNECTIONS_PER_IP", "0")]);
        assert_eq!(
            HttpSettings::from_vars(&vars)
                .unwrap()
                .max_connections_per_ip,
            0
        );
        let vars = Vars::from_pairs([("HTTP_HEADER_READ_TIMEOUT_MS", "0")]);
        let err = HttpSettings::from_vars(&vars).unwrap_err().to_string();
        assert!(err.contains("HTTP_HEADER_READ_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn address_table_caps_each_client_and_gives_places_back() {
        let table = Arc::new(AddressTable::new(2));
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let first = table.admit(one).unwrap();
        let _second = table.admit(one).unwrap();
        assert!(table.admit(one).is_none());
        assert!(table.admit(other).is_some());
        drop(first);
        assert!(table.admit(one).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn zero_cap_counts_nothing() {
        let table = Arc::new(AddressTable::new(0));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..10).map(|_| table.admit(ip).unwrap()).collect();
        assert_eq!(slots.len(), 10);
        assert!(table.open.lock().unwrap().is_empty());
    }
}
