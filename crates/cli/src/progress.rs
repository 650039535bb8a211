//! A progress bar on stderr while indexing takes longer than 0.5 s — only on a terminal
//! and never in `--json` mode. It runs on its own thread because indexing keeps the
//! command's (current-thread) runtime busy, and polls the process's counters
//! ([`Stats::index_progress`]) rather than being told about each entry point, so the
//! services know nothing about terminals.

use std::io::IsTerminal;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use fen_lifecycle::stats::Stats;
use indicatif::{ProgressBar, ProgressStyle};

/// How long indexing may run before the bar appears.
const DELAY: Duration = Duration::from_millis(500);
/// How often the bar reads the counters.
const TICK: Duration = Duration::from_millis(100);

/// Shows a progress bar after a delay until dropped.
pub struct IndexProgressBar {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl IndexProgressBar {
    /// Starts the delay; `enabled` is false in JSON mode.
    pub fn after_delay(enabled: bool, stats: Arc<Stats>) -> IndexProgressBar {
        if !enabled || !std::io::stderr().is_terminal() {
            return IndexProgressBar {
                done: None,
                thread: None,
            };
        }
        let (done, wait) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if wait.recv_timeout(DELAY) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} indexing extensions [{bar:30}] {pos}/{len} ({elapsed})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            loop {
                let progress = stats.index_progress();
                bar.set_length(progress.planned as u64);
                bar.set_position(progress.done as u64);
                bar.tick();
                match wait.recv_timeout(TICK) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => break,
                }
            }
            bar.finish_and_clear();
        });
        IndexProgressBar {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for IndexProgressBar {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A download bar on stderr, only on a terminal and never in `--json` mode.
pub struct DownloadBar {
    bar: std::sync::Mutex<Option<ProgressBar>>,
    enabled: bool,
}

impl DownloadBar {
    /// `enabled` is false in JSON mode.
    pub fn new(enabled: bool) -> DownloadBar {
        DownloadBar {
            bar: std::sync::Mutex::new(None),
            enabled: enabled && std::io::stderr().is_terminal(),
        }
    }
}

impl fen_domain::ports::DownloadProgress for DownloadBar {
    fn started(&self, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(total.unwrap_or(0));
        if let Ok(style) = ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {eta}") {
            bar.set_style(style);
        }
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(old) = slot.replace(bar) {
                old.finish_and_clear();
            }
        }
    }

    fn advanced(&self, bytes: u64) {
        if let Ok(slot) = self.bar.lock() {
            if let Some(bar) = slot.as_ref() {
                bar.inc(bytes);
                if bar
                    .length()
                    .is_some_and(|len| len > 0 && bar.position() >= len)
                {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

/// A spinner on stderr while a datastore sync takes longer than 0.5 s — only on a
/// terminal and never in `--json` mode.
pub struct SyncSpinner {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SyncSpinner {
    /// Starts the delay; `enabled` is false in JSON mode.
    pub fn after_delay(enabled: bool, message: String) -> SyncSpinner {
        if !enabled || !std::io::stderr().is_terminal() {
            return SyncSpinner {
                done: None,
                thread: None,
            };
        }
        let (done, wait) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if wait.recv_timeout(DELAY) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            let bar = ProgressBar::new_spinner();
            bar.set_message(message);
            while wait.recv_timeout(TICK) == Err(mpsc::RecvTimeoutError::Timeout) {
                bar.tick();
            }
            bar.finish_and_clear();
        });
        SyncSpinner {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for SyncSpinner {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
