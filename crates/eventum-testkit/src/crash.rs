//! Crash-test plumbing shared by the SIGKILL tests of every crate: the test binary
//! re-executes one of its own ignored tests as a child process, the parent waits until
//! the child says it is ready, kills it with SIGKILL at a chosen moment and collects what
//! it printed. Kill times come from a seeded generator, so a failing run replays.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a child prints once it is ready to be killed (its store is open).
pub const READY_LINE: &str = "READY\n";
/// Longest a killed child may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A small deterministic generator (splitmix64): kill times replay from the seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The seed in environment variable `var`, or a fresh one from the clock.
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var).ok().map_or_else(
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        },
        |v| v.parse().unwrap_or_else(|_| panic!("{var} is a number")),
    )
}

/// The number in environment variable `var`, or `default`.
pub fn count_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().map_or(default, |v| {
        v.parse().unwrap_or_else(|_| panic!("{var} is a number"))
    })
}

/// Prints [`READY_LINE`] (from the child, once it can be killed meaningfully).
pub fn say_ready() {
    let mut out = std::io::stdout().lock();
    out.write_all(READY_LINE.as_bytes()).expect("stdout");
    out.flush().expect("stdout");
}

/// A child process running one ignored test of the current test binary.
pub struct Child {
    child: std::process::Child,
    output: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    stderr_path: Option<PathBuf>,
}

impl Child {
    /// Starts the current test binary running only the ignored test `child_test`, with
    /// `envs`; its stderr goes to `stderr_path` (or nowhere).
    pub fn spawn(child_test: &str, envs: &[(&str, &OsStr)], stderr_path: Option<&Path>) -> Child {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = Command::new(exe);
        command
            .args([
                "--exact",
                child_test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        match stderr_path {
            Some(p) => command.stderr(std::fs::File::create(p).expect("create the stderr file")),
            None => command.stderr(Stdio::null()),
        };
        let mut child = command.spawn().expect("start the child");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let output = Arc::new(Mutex::new(String::new()));
        let sink = output.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("output lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Child {
            child,
            output,
            reader: Some(reader),
            stderr_path: stderr_path.map(Path::to_owned),
        }
    }

    /// Waits until the child has printed `marker`; an error names why it did not (it
    /// exited, or `timeout` passed), with the end of its stderr.
    pub fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output.lock().expect("output lock").contains(marker) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return Err(format!(
                    "the child exited ({status}) before printing {marker:?}:\n{}",
                    self.stderr_tail()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the child did not print {marker:?} within {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits for [`READY_LINE`].
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        self.wait_for(READY_LINE, timeout)
    }

    /// Everything the child has printed so far.
    pub fn output_so_far(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    /// `Some` when the child has exited by itself.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll the child")
    }

    /// The last 4,000 bytes of the child's stderr, when it was captured.
    pub fn stderr_tail(&self) -> String {
        let Some(path) = &self.stderr_path else {
            return String::new();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut start = text.len().saturating_sub(4000);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_owned()
    }

    /// Kills the child with SIGKILL (it must still be running: one that exited by itself
    /// is a failure the caller reports), waits for it and returns all it printed.
    pub fn kill(mut self) -> Result<String, String> {
        if let Some(status) = self.exited() {
            return Err(format!(
                "the child exited by itself ({status}):\n{}",
                self.stderr_tail()
            ));
        }
        self.child.kill().expect("SIGKILL the child");
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            if Instant::now() >= deadline {
                return Err("the killed child did not exit".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if status.success() {
            return Err(format!("the killed child exited successfully ({status})"));
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        Ok(self.output_so_far())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A test that fails half-way must not leave a child appending forever.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
