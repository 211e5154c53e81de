//! The shutdown signals (SIGINT, SIGTERM) of a server process, caught from the moment it
//! starts rather than from the first poll of its serving loop: a signal
//! that came while the store opened, or between the listening line and that first poll,
//! used to kill the process with the default action, skipping the final checkpoints and
//! the index flush (and exiting "by signal 15", which supervisors and tests take for a
//! crash). A signal during start-up therefore takes effect once start-up is done. Unix
//! only, as the embedded log is.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Both handlers, installed; [`Shutdown::received`] waits for either signal. Install it
/// first thing in `main` (inside the runtime), before anything slow.
pub struct Shutdown {
    interrupt: Signal,
    terminate: Signal,
}

impl Shutdown {
    /// Installs the handlers now (inside the runtime). From here on neither signal ends
    /// the process by itself.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for SIGINT or SIGTERM, including one that arrived since [`Self::install`].
    pub async fn received(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("SIGINT received"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM received"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once installed, SIGTERM no longer ends the process: it waits for `received`, even
    /// when it comes before anyone waits. (Before, the handler was installed at the first
    /// poll, and this test process would have been killed by the signal.)
    #[tokio::test]
    async fn a_signal_after_install_is_delivered_not_fatal() {
        let shutdown = Shutdown::install().unwrap();
        // SAFETY: raise(3) has no memory-safety preconditions.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        tokio::time::timeout(std::time::Duration::from_secs(10), shutdown.received())
            .await
            .expect("the signal reaches received()");
    }
}
