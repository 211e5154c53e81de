//! Helpers of the CLI tests: run `eventum serve` on a temporary directory and a free port,
//! wait for its listening line, and run client commands against it.
#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_eventum");

pub struct Server {
    pub child: Child,
    pub url: String,
    pub stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `eventum serve --data DIR --listen ADDR --no-shop` (the store alone) and
    /// waits for its listening line.
    pub fn start(dir: &Path, listen: &str) -> Server {
        Self::start_with(dir, listen, &["--no-shop"])
    }

    /// Starts `eventum serve --data DIR --listen ADDR EXTRA...` and waits for its
    /// listening line.
    // The child is killed and waited for in Drop (or stop); clippy cannot see that.
    #[allow(clippy::zombie_processes)]
    pub fn start_with(dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--data"])
            .arg(dir)
            .args(["--listen", listen])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn eventum serve");
        let stderr = drain(child.stderr.take().unwrap());
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("eventum listening on ") {
                        let url = rest.split(' ').next().unwrap().to_owned();
                        assert!(line.contains(&dir.display().to_string()), "{line}");
                        return Server { child, url, stderr };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "no listening line from eventum serve; stderr: {}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
    }

    /// `host:port` the server listens on.
    pub fn addr(&self) -> &str {
        self.url.strip_prefix("http://").unwrap()
    }

    /// Runs a client command against this server.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("EVENTUM_SERVER", &self.url)
            .output()
            .expect("run eventum")
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "serve exited with {status}; stderr: {}",
                    self.stderr.lock().unwrap()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("serve did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only matters when a test panicked before stop().
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects a pipe into a string on a thread, so the child never blocks on it.
pub fn drain(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let out = Arc::new(Mutex::new(String::new()));
    let sink = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout's JSON lines.
pub fn ok_lines(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "failed: {}", stderr(o));
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
