//! Slow and idle clients cannot starve voting-api: thousands of connections that send half a
//! request line and then nothing are closed after the header-read timeout, a body that stops
//! arriving gets `408` after the same timeout, one address cannot hold more than its cap, and
//! the service answers everyone else meanwhile.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{TestApp, spawn_app_with};

/// Half a request: the request line is not even finished.
const HALF_REQUEST: &[u8] = b"GET /api/v1/polls/mine HTTP/1.1\r\nHo";

#[tokio::test]
async fn half_open_requests_are_closed_after_the_header_read_timeout() {
    // The per-address cap is off here (as behind a proxy) so that all 3,000 are held at once.
    let app = spawn_app_with(&[
        ("HTTP_HEADER_READ_TIMEOUT_MS", "1500"),
        ("HTTP_MAX_CONNECTIONS_PER_IP", "0"),
    ])
    .await;
    let server = server_address(&app);

    // A connection per request: a pooled one would itself be closed once idle that long.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let held = open_half_requests(server, None, 3_000).await;
    // While they are all held, everyone else is still answered.
    for _ in 0..5 {
        assert_eq!(health(&client, &app).await, Some(StatusCode::OK));
    }

    let outcome = wait_for_close(held, Duration::from_secs(6)).await;
    let held = still_open(&outcome);
    assert_eq!(
        held, 0,
        "{held} of 3,000 half-open requests still held after 6 s"
    );
    let earliest = close_times(&outcome).min().unwrap();
    assert!(
        earliest >= Duration::from_millis(1_300),
        "a half-open request was closed after {earliest:?}, before the 1.5 s timeout"
    );
    assert_eq!(health(&client, &app).await, Some(StatusCode::OK));
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_the_same_timeout() {
    let app = spawn_app_with(&[("HTTP_HEADER_READ_TIMEOUT_MS", "1000")]).await;
    let mut stream = TcpStream::connect(server_address(&app)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = [0u8; 1024];
    let read = stream.read(&mut response).await.unwrap();
    assert!(
        response[..read].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response[..read])
    );
    // The connection stays open for a next request, but not forever.
    let started = Instant::now();
    let outcome = wait_for_close(vec![(stream, started)], Duration::from_secs(5)).await;
    let after = outcome[0]
        .0
        .expect("an idle keep-alive connection is still open after 5 s");
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_after_the_same_timeout() {
    let app = spawn_app_with(&[("HTTP_HEADER_READ_TIMEOUT_MS", "1000")]).await;
    for (framing, first_part) in [
        ("Content-Length: 100\r\n", &b"{\"email\":"[..]),
        ("Transfer-Encoding: chunked\r\n", &b"a\r\n{\"email\":"[..]),
    ] {
        let mut stream = TcpStream::connect(server_address(&app)).await.unwrap();
        // A complete head, then the start of its body, then nothing.
        let head = format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: test\r\n\
             Content-Type: application/json\r\n{framing}\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(first_part).await.unwrap();
        let started = Instant::now();
        let mut response = vec![0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut response))
            .await
            .expect("no answer after 5 s")
            .unwrap();
        let took = started.elapsed();
        let response = String::from_utf8_lossy(&response[..read]);
        assert!(
            response.starts_with("HTTP/1.1 408"),
            "{framing}: {response}"
        );
        assert!(
            response.contains("\"error\":\"request_timeout\""),
            "{framing}: {response}"
        );
        assert!(
            took >= Duration::from_millis(800),
            "{framing}: answered after {took:?}, before the 1 s timeout"
        );
    }
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_cap_while_others_are_served() {
    let app = spawn_app_with(&[
        ("HTTP_HEADER_READ_TIMEOUT_MS", "30000"),
        ("HTTP_MAX_CONNECTIONS_PER_IP", "500"),
    ])
    .await;
    let server = server_address(&app);

    let held = open_half_requests(server, None, 2_000).await;
    let outcome = wait_for_close(held, Duration::from_secs(2)).await;
    let kept = still_open(&outcome);
    assert_eq!(
        kept, 500,
        "one address kept {kept} of 2,000 connections; its cap is 500"
    );

    // Another client (another loopback address) is served as usual...
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..5 {
        assert_eq!(health(&other, &app).await, Some(StatusCode::OK));
    }
    // ...while the address at its cap is turned away.
    let same = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(health(&same, &app).await, None);
    // A raw connection from it is closed without an answer.
    let mut extra = open_half_requests(server, None, 1).await;
    let (mut stream, _) = extra.pop().unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "beyond the cap: {read:?}"
    );

    // Once it lets go of its connections, it is served again.
    drop(outcome);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if health(&same, &app).await == Some(StatusCode::OK) {
            break;
        }
        assert!(Instant::now() < deadline, "the address is still refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn total_connections_are_bounded_and_accepting_resumes_once_they_close() {
    // 300 half-open requests from three addresses against a bound of 200: a third waits in
    // the listen backlog until the header-read timeout frees places, then is accepted (and
    // timed out) in turn; a normal client is answered once places free up.
    let app = spawn_app_with(&[
        ("HTTP_HEADER_READ_TIMEOUT_MS", "1000"),
        ("HTTP_MAX_CONNECTIONS", "200"),
        ("HTTP_MAX_CONNECTIONS_PER_IP", "100"),
    ])
    .await;
    let server = server_address(&app);
    let mut held = Vec::new();
    for source in ["127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        held.extend(open_half_requests(server, Some(source.parse().unwrap()), 100).await);
    }
    let started = Instant::now();
    let outcome = wait_for_close(held, Duration::from_secs(8)).await;
    let held = still_open(&outcome);
    assert_eq!(held, 0, "{held} of 300 never accepted and timed out");
    // Some waited for a place: they were closed by a later round of timeouts.
    let latest = close_times(&outcome).max().unwrap();
    assert!(
        latest >= Duration::from_millis(1_800),
        "all 300 closed within {latest:?}: nothing waited for a place"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(health(&app.client, &app).await, Some(StatusCode::OK));
}

fn server_address(app: &TestApp) -> SocketAddr {
    app.address.trim_start_matches("http://").parse().unwrap()
}

/// `GET /healthz` through `client`: its status, or `None` if the connection failed.
async fn health(client: &reqwest::Client, app: &TestApp) -> Option<StatusCode> {
    client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .inspect_err(|err| eprintln!("GET /healthz: {err:?}"))
        .ok()
        .map(|response| response.status())
}

/// `count` connections to `server` (from `source`, default 127.0.0.1) that each sent
/// [`HALF_REQUEST`], with the instant each was sent.
async fn open_half_requests(
    server: SocketAddr,
    source: Option<IpAddr>,
    count: usize,
) -> Vec<(TcpStream, Instant)> {
    futures::stream::iter(0..count)
        .map(|_| async move {
            let socket = TcpSocket::new_v4().unwrap();
            if let Some(source) = source {
                socket.bind(SocketAddr::new(source, 0)).unwrap();
            }
            let mut stream = socket.connect(server).await.expect("connect");
            stream
                .write_all(HALF_REQUEST)
                .await
                .expect("send half a request");
            (stream, Instant::now())
        })
        .buffer_unordered(64)
        .collect()
        .await
}

/// For each connection, how long after its instant the server closed it, or `None` if it was
/// still open `within` from now; with the connection, which stays open until dropped.
async fn wait_for_close(
    connections: Vec<(TcpStream, Instant)>,
    within: Duration,
) -> Vec<(Option<Duration>, TcpStream)> {
    let deadline = tokio::time::Instant::now() + within;
    let waits = connections
        .into_iter()
        .map(|(mut stream, sent)| async move {
            let mut buf = [0u8; 512];
            loop {
                match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                    Err(_) => return (None, stream),
                    Ok(Ok(0) | Err(_)) => return (Some(sent.elapsed()), stream),
                    Ok(Ok(_)) => continue,
                }
            }
        });
    futures::future::join_all(waits).await
}

/// How many of `outcome` the server had not closed.
fn still_open(outcome: &[(Option<Duration>, TcpStream)]) -> usize {
    outcome
        .iter()
        .filter(|(closed, _)| closed.is_none())
        .count()
}

/// The times after which the server closed the connections it closed.
fn close_times(outcome: &[(Option<Duration>, TcpStream)]) -> impl Iterator<Item = Duration> {
    outcome.iter().filter_map(|(closed, _)| *closed)
}
