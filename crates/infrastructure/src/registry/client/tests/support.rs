//! Helpers: a fast client, the real server on a temporary directory, a raw TCP
//! server scripted per request, and a progress recorder.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fen_domain::ports::{DownloadProgress, RegistryUrl};
use fen_domain::{ExtensionName, ExtensionVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::registry::client::{ClientConfig, HttpRegistryClient};
use crate::registry::server::{RegistryServer, ServeConfig};

/// Short limits so failures surface in milliseconds.
pub(crate) fn fast_config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_secs(5),
        download_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(1),
        ..ClientConfig::default()
    }
}

pub(crate) fn client(config: ClientConfig) -> HttpRegistryClient {
    HttpRegistryClient::new(config).unwrap()
}

pub(crate) fn name(text: &str) -> ExtensionName {
    ExtensionName::parse(text).unwrap()
}

pub(crate) fn version(text: &str) -> ExtensionVersion {
    ExtensionVersion::parse(text).unwrap()
}

/// The real server over a temporary directory.
pub(crate) struct Served {
    pub dir: tempfile::TempDir,
    pub url: RegistryUrl,
    journal: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    pub(crate) async fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let server = RegistryServer::bind(ServeConfig {
            dir: dir.path().to_path_buf(),
            addr: "127.0.0.1:0".parse().unwrap(),
            quiet: true,
        })
        .await
        .unwrap();
        let url = RegistryUrl::parse(&format!("http://{}", server.local_addr())).unwrap();
        let journal = server.journal();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Served {
            dir,
            url,
            journal,
            stop: Some(stop),
            task,
        }
    }

    /// Writes `bytes` as the archive of `name@version`; returns its path.
    pub(crate) fn publish(&self, name: &str, version: &str, bytes: &[u8]) -> std::path::PathBuf {
        let mut dir = self.dir.path().to_path_buf();
        for part in name.split('/') {
            dir.push(part);
        }
        std::fs::create_dir_all(&dir).unwrap();
        let archive = dir.join(format!("{version}.tar.gz"));
        std::fs::write(&archive, bytes).unwrap();
        archive
    }

    pub(crate) fn write(&self, relative: &str, text: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Requests whose line contains `pattern`.
    pub(crate) fn seen(&self, pattern: &str) -> Vec<String> {
        let journal = self.journal.lock().unwrap();
        journal
            .iter()
            .filter(|line| line.contains(pattern))
            .cloned()
            .collect()
    }

    /// Stops the server and waits for it, asserting the stop is prompt.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(2), &mut self.task)
            .await
            .expect("the server stops within 2 s")
            .unwrap();
    }
}

/// What a scripted server does with the request it read.
pub(crate) enum Script {
    /// Writes these bytes and closes.
    Reply(Vec<u8>),
    /// Never answers (keeps the connection open).
    Silent,
    /// Writes this head, then body bytes forever.
    Endless(String),
}

/// A raw HTTP/1.1 response with `Connection: close` and an exact length.
pub(crate) fn raw(status: &str, headers: &[(&str, &str)], body: &str) -> Script {
    let mut text = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (header, value) in headers {
        text.push_str(&format!("{header}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    Script::Reply(text.into_bytes())
}

/// A raw server: one request per connection, answered by `script(index, head)`;
/// every request head is recorded.
pub(crate) struct Hostile {
    pub base: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    pub(crate) async fn start<F>(script: F) -> Hostile
    where
        F: Fn(usize, &str) -> Script + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let script = Arc::new(script);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    answer(stream, seen, &*script).await;
                });
            }
        });
        Hostile {
            base,
            requests,
            task,
        }
    }

    pub(crate) fn url(&self) -> RegistryUrl {
        RegistryUrl::parse(&self.base).unwrap()
    }

    pub(crate) fn heads(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn answer<F>(mut stream: TcpStream, seen: Arc<Mutex<Vec<String>>>, script: &F)
where
    F: Fn(usize, &str) -> Script,
{
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let index = {
        let mut seen = seen.lock().unwrap();
        seen.push(head.clone());
        seen.len() - 1
    };
    match script(index, &head) {
        Script::Reply(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Script::Silent => {
            // Hold the connection until the client gives up.
            let _ = stream.read(&mut buffer).await;
        }
        Script::Endless(head) => {
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 16 * 1024];
            while stream.write_all(&chunk).await.is_ok() {}
        }
    }
}

/// The request line's target of a recorded head.
pub(crate) fn target(head: &str) -> &str {
    head.split_whitespace().nth(1).unwrap_or("")
}

/// The value of `header` in a recorded head, lower-cased name match.
pub(crate) fn header<'a>(head: &'a str, header: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(header).then(|| value.trim())
    })
}

/// Records what a download reported.
#[derive(Default)]
pub(crate) struct Recorded {
    pub started: Mutex<Vec<Option<u64>>>,
    pub advanced: Mutex<u64>,
}

impl DownloadProgress for Recorded {
    fn started(&self, total: Option<u64>) {
        self.started.lock().unwrap().push(total);
    }
    fn advanced(&self, bytes: u64) {
        *self.advanced.lock().unwrap() += bytes;
    }
}

/// sha256 of `bytes` as lower-case hex.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    crate::random::hex(&sha2::Sha256::digest(bytes))
}
