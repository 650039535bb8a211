//! The server over raw TCP, where a client library would hide what is on the wire:
//! truncation after exactly N bytes, and a prompt graceful stop with idle and busy
//! connections open.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{RegistryServer, ServeConfig};

struct Running {
    dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let server = RegistryServer::bind(ServeConfig {
        dir: dir.path().to_path_buf(),
        addr: "127.0.0.1:0".parse().unwrap(),
        quiet: true,
    })
    .await
    .unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    Running {
        dir,
        addr,
        stop,
        task,
    }
}

/// Sends one GET with `Connection: close` and reads until the server closes.
async fn get_until_close(addr: std::net::SocketAddr, path: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await;
    received
}

fn split(response: &[u8]) -> (String, &[u8]) {
    let end = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap();
    (
        String::from_utf8_lossy(&response[..end]).to_lowercase(),
        &response[end + 4..],
    )
}

#[tokio::test]
async fn truncation_sends_the_true_length_then_exactly_n_bytes() {
    let running = start().await;
    let archive_dir = running.dir.path().join("@t/a");
    std::fs::create_dir_all(&archive_dir).unwrap();
    std::fs::write(archive_dir.join("2026.01.01.1.tar.gz"), [9u8; 1000]).unwrap();
    std::fs::write(
        running.dir.path().join("_faults.json"),
        r#"[{"match":"/files/","truncateAfterBytes":100}]"#,
    )
    .unwrap();
    let response = get_until_close(running.addr, "/files/%40t%2Fa/2026.01.01.1.tar.gz").await;
    let (head, body) = split(&response);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 1000"), "{head}");
    assert_eq!(body, [9u8; 100]);
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
}

#[tokio::test]
async fn injected_statuses_carry_the_error_body() {
    let running = start().await;
    std::fs::write(
        running.dir.path().join("_faults.json"),
        r#"[{"match":"/healthz","status":429,"times":1}]"#,
    )
    .unwrap();
    let first = get_until_close(running.addr, "/healthz").await;
    let (head, body) = split(&first);
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert_eq!(body, br#"{"error":"injected fault"}"#);
    // The budget of one is spent.
    let second = get_until_close(running.addr, "/healthz").await;
    assert_eq!(split(&second).1, b"ok");
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
}

#[tokio::test]
async fn a_stop_is_prompt_with_idle_and_busy_connections() {
    let running = start().await;
    std::fs::write(
        running.dir.path().join("_faults.json"),
        r#"[{"match":"/slow","delayMs":60000}]"#,
    )
    .unwrap();
    // Idle: a kept-alive connection after one complete exchange.
    let mut idle = TcpStream::connect(running.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let read = idle.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..read]).ends_with("ok"));
    // Busy: a request the server sits on for a minute.
    let mut busy = TcpStream::connect(running.addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();

    let started = Instant::now();
    running.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), running.task)
        .await
        .expect("stopped within 2 s")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    // Both connections are closed by now.
    assert_eq!(idle.read(&mut buffer).await.unwrap_or(0), 0);
    assert_eq!(busy.read(&mut buffer).await.unwrap_or(0), 0);
    // And nothing listens any more.
    assert!(TcpStream::connect(running.addr).await.is_err());
}
