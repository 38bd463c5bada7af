//! `[xtask] …` progress lines and step timing, and a bar for long loops on a terminal.

use std::{
    io::{self, IsTerminal},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

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

/// A bar of `len` units of work under the `[xtask]` lines, on a terminal only (in a pipe just
/// the lines): units done, the time so far and an estimate of the rest.
pub struct Bar(ProgressBar);

impl Bar {
    pub fn new(what: &str, len: u64) -> Bar {
        let bar = if io::stderr().is_terminal() {
            ProgressBar::new(len)
        } else {
            ProgressBar::hidden()
        };
        let template = format!(
            "{{bar:24.cyan/blue}} {{pos}}/{{len}} {what}  {{elapsed}} so far, ~{{eta}} left"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(250));
        Bar(bar)
    }

    /// One unit done, and its line said above the bar.
    pub fn done_one(&self, line: impl AsRef<str>) {
        self.0.suspend(|| say(line));
        self.0.inc(1);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
