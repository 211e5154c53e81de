//! A terminal progress bar (indicatif) for rebuilds and catch-ups, fed from a projection's
//! [`Status`]: positions done against the head, events applied, rate and time left.

use indicatif::{ProgressBar, ProgressStyle};

use crate::driver::Status;

/// A progress bar that follows a projection's status.
pub struct RebuildBar {
    bar: ProgressBar,
}

impl RebuildBar {
    /// A bar drawn on stderr (hidden when stderr is not a terminal).
    pub fn new(model: &str) -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:40}] {pos}/{len} positions, {msg} ({per_sec}, eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(model.to_owned());
        Self { bar }
    }

    /// Moves the bar to `status`.
    pub fn update(&self, status: &Status) {
        self.bar.set_length(status.head.map_or(0, |h| h + 1));
        self.bar.set_position(status.position_next);
        self.bar
            .set_message(format!("{} events applied", status.events_applied));
    }

    pub fn finish(&self) {
        self.bar.finish();
    }

    /// The underlying bar, for tests and custom drawing.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::RunState;

    #[test]
    fn bar_follows_status() {
        let bar = RebuildBar::new("orders");
        bar.update(&Status {
            model: "orders".into(),
            generation: 2,
            rebuilding: true,
            position_next: 40,
            events_applied: 17,
            head: Some(99),
            state: RunState::CatchingUp,
        });
        assert_eq!(bar.bar().length(), Some(100));
        assert_eq!(bar.bar().position(), 40);
        assert!(bar.bar().message().contains("17 events"));
    }
}
