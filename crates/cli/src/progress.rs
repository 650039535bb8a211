//! A spinner on stderr while indexing takes longer than 0.5 s — only on a terminal and
//! never in `--json` mode. It runs on its own thread because indexing keeps the
//! command's (current-thread) runtime busy.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Shows a spinner after a delay until dropped.
pub struct Spinner {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts the delay; `enabled` is false in JSON mode.
    pub fn after_delay(enabled: bool, message: &'static str) -> Spinner {
        if !enabled || !std::io::stderr().is_terminal() {
            return Spinner {
                done: None,
                thread: None,
            };
        }
        let (done, wait) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if wait.recv_timeout(Duration::from_millis(500)) != Err(mpsc::RecvTimeoutError::Timeout)
            {
                return;
            }
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.set_message(message);
            bar.enable_steady_tick(Duration::from_millis(100));
            let _ = wait.recv();
            bar.finish_and_clear();
        });
        Spinner {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
