//! A real S3-compatible server for the `s3` datastore's tests and bench rows:
//! `moto_server` (PyPI `moto[server]`, which `.ci/run` installs) on 127.0.0.1 at a
//! free port, killed on drop. Spec 30's `s3` locks need conditional writes, which moto
//! honours (see ARCHITECTURE, "The S3 test server").

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// A running `moto_server`.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    port: u16,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when `moto_server` is on `PATH`.
pub fn available() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("moto_server").is_file())
    })
}

impl S3Server {
    /// Starts a server and waits for its "Running on" line (no sleeping). Fails when
    /// the binary is missing or never comes up.
    pub fn start() -> Result<S3Server, String> {
        if !available() {
            return Err(
                "moto_server is not installed (pip install 'moto[server]'; .ci/run installs it)"
                    .to_owned(),
            );
        }
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let mut child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start moto_server: {e}"))?;
            let Some(stderr) = child.stderr.take() else {
                let _ = child.kill();
                continue;
            };
            let mut lines = BufReader::new(stderr).lines();
            let ready = lines
                .by_ref()
                .map_while(Result::ok)
                .any(|line| line.contains("Running on"));
            if !ready {
                // The port was taken between our probe and its bind.
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            // Keep draining its log so it never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Ok(S3Server { child, port });
        }
        Err("moto_server did not start".to_owned())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto accepts this call unsigned).
    pub fn create_bucket(&self, name: &str) -> Result<(), String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| format!("cannot reach moto_server: {e}"))?;
        write!(
            stream,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .map_err(|e| format!("cannot reach moto_server: {e}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| format!("cannot reach moto_server: {e}"))?;
        if response.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!(
                "moto_server refused to create bucket {name}: {}",
                response.lines().next().unwrap_or_default()
            ))
        }
    }
}
