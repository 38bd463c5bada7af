//! Progress on long work (`compare`, `threshold`, `sweep --local`): a bar on stderr while it is
//! a terminal (indicatif: what runs now, i of n, the time so far and an estimate of the rest),
//! besides the log line each step has always had. In a pipe or a file only the log lines are
//! written. The log's writer ([`LogWriter`]) lifts the bar while a line prints, so that the two
//! never garble each other.

use std::{
    io::{self, IsTerminal, Write},
    sync::Mutex,
    time::Duration,
};

use indicatif::{ProgressBar, ProgressStyle};

/// The bar on screen, if any: what [`LogWriter`] lifts.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// A bar of `n` units (runs, policies, cells), shown while it lives.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar of `len` units of `what` (`runs`, `policies`, `cells`); hidden when stderr is not
    /// a terminal.
    pub fn new(what: &str, len: u64) -> Progress {
        let bar = if io::stderr().is_terminal() {
            ProgressBar::new(len)
        } else {
            ProgressBar::hidden()
        };
        let template = format!(
            "{{bar:24.cyan/blue}} {{pos}}/{{len}} {what}  {{elapsed}} so far, ~{{eta}} left  {{wide_msg}}"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        // Redrawn by itself: the elapsed time moves while a long run goes on.
        bar.enable_steady_tick(Duration::from_millis(250));
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Progress { bar }
    }

    /// What runs now.
    pub fn now(&self, what: String) {
        self.bar.set_message(what);
    }

    /// One more unit done.
    pub fn done_one(&self) {
        self.bar.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Stderr for the log: with the bar lifted while a line prints.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match shown {
            Some(bar) => bar.suspend(|| io::stderr().write(buf)),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Off a terminal (as under `cargo test`) the bar draws nothing, counts all the same, and
    /// the log goes on to stderr; once the work ends no bar is left to lift.
    #[test]
    fn off_a_terminal_the_bar_is_hidden_and_the_log_still_writes() {
        let p = Progress::new("runs", 3);
        assert!(p.bar.is_hidden());
        p.now("gogc100 run 1/3".into());
        p.done_one();
        assert_eq!(p.bar.position(), 1);
        assert_eq!(LogWriter.write(b"").unwrap(), 0);
        drop(p);
        assert!(SHOWN.lock().unwrap().is_none());
    }
}
