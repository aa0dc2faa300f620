//! A service served in the test's own process: its `run(config, listener, shutdown)` on a
//! listener bound to `127.0.0.1:0`, as its `main` would call it, and a handle that stops it.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`RunningServer::stop`] waits for the service to drain and return.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// The `shutdown` future handed to a service's `run`: it completes when the
/// [`RunningServer`] is stopped or dropped.
pub struct Shutdown(oneshot::Receiver<()>);

impl Future for Shutdown {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A dropped sender (the handle went away) stops the service as a sent signal does.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A service started by [`start_server`]; dropping it stops the service without waiting.
pub struct RunningServer<E> {
    /// Where it listens (`127.0.0.1` and the port the system chose).
    pub address: SocketAddr,
    /// `http://` and [`RunningServer::address`], for clients.
    pub url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), E>>,
}

/// Binds `127.0.0.1:0` and spawns `run(listener, shutdown)` on it, typically
/// `|listener, shutdown| voting_api::run(config, listener, shutdown)`.
pub async fn start_server<F, Fut, E>(run: F) -> RunningServer<E>
where
    F: FnOnce(TcpListener, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let address = listener.local_addr().expect("the listener's address");
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(listener, Shutdown(stopped)));
    RunningServer {
        address,
        url: format!("http://{address}"),
        stop,
        task,
    }
}

impl<E: Debug> RunningServer<E> {
    /// Signals shutdown and waits for `run` to return; panics if it returned an error or did
    /// not return within 30 s.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(STOP_LIMIT, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => panic!("the service failed: {err:?}"),
            Ok(Err(err)) => panic!("the service's task failed: {err}"),
            Err(_) => panic!("the service did not stop within {STOP_LIMIT:?}"),
        }
    }
}
