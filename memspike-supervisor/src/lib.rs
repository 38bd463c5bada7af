//! The supervisor: stays outside the experiment's group, creates and limits it, starts what
//! runs in it (memspike's worker, or a real program), observes it, and collects the facts of
//! each run ([`memspike_report::facts`]). It builds no report: the binary does, from the facts.
//!
//! - [`preflight`]: checks what the user asked for before anything is created;
//! - [`progress`]: a bar for long work on a terminal, and the log's writer that lifts it;
//! - [`signals`]: the stop signals, waited for without handlers, and passed on;
//! - [`supervisor`]: one group and its observer per session; the worker's runs in it;
//! - [`exec`]: a real program in a group instead, sampled over time;
//! - [`attach`]: a JVM asked a diagnostic command (its native memory), as `jcmd` does;
//! - [`compare`]: one scenario under many policies, and the threshold searches;
//! - [`sweep`]: a plan's cells, here or one per Kubernetes pod.
pub mod attach;
pub mod compare;
pub mod exec;
pub mod preflight;
pub mod progress;
pub mod signals;
pub mod supervisor;
pub mod sweep;
