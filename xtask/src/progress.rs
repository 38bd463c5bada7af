//! `[xtask] …` progress lines and step timing.

use std::time::Instant;

/// Prints one progress line to stderr (stdout stays free for results such as paths).
pub fn say(msg: impl AsRef<str>) {
    eprintln!("[xtask] {}", msg.as_ref());
}

/// Prints a warning line.
pub fn warn(msg: impl AsRef<str>) {
    eprintln!("[xtask] WARNING: {}", msg.as_ref());
}

/// A named step: announced when created, its duration printed by [`Step::done`].
pub struct Step {
    name: String,
    started: Instant,
}

impl Step {
    pub fn start(name: impl Into<String>) -> Self {
        let name = name.into();
        say(format!("{name} ..."));
        Step {
            name,
            started: Instant::now(),
        }
    }

    pub fn done(self) {
        say(format!(
            "{} done in {:.1}s",
            self.name,
            self.started.elapsed().as_secs_f64()
        ));
    }
}
