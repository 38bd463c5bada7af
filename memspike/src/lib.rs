//! memspike: reproduce, observe and explain a garbage-collected runtime that is OOM-killed by
//! a cgroup memory limit while most of its heap is garbage waiting for a collection.
//!
//! The simulated runtime itself (pacer, heap, scavenger, limiter, watchdogs, scenarios, the
//! experiment's configuration) is the pure crate [`memspike_model`], re-exported as [`model`];
//! this crate holds the Linux parts around it. The chain, in the order data flows:
//! - [`arena`]: the heap's real memory, which the model's heap writes and returns.
//! - [`worker`]: the process inside the cgroup that runs the model over that memory.
//! - [`telemetry`]: the events the worker sends the supervisor over a pipe, and its control
//!   channel (the experiment's configuration, acknowledgements, the supervisor's feed).
//! - [`capability`]: what this process may do (tracing, creating groups), by capability.
//! - [`cgroup`]: discovering, creating, limiting, reading and removing memory cgroups.
//! - [`pidns`]: pids as the kernel's tracepoints number them, from inside a PID namespace.
//! - [`preflight`]: checks what the user asked for before anything is created.
//! - [`privilege`]: the credentials the worker drops to (a private uid by default).
//! - [`signals`]: the supervisor's stop signals, waited for without handlers.
//! - [`supervisor`]: runs the worker inside the limited group and collects what happened.
//! - [`exec`]: runs a real program in a limited group instead, samples the group and reads the
//!   program's runtime trace.
//! - [`compare`]: one scenario under many policies, and the threshold searches over real runs.
//! - [`sweep`]: a plan's cells, here or one per Kubernetes pod, and the manifests for them.
//! - [`probe`]: what the kernel saw in the group (eBPF, and the files and log without it).
//! - [`trace`]: reading a runtime's own trace of its collections (Go's gctrace).
//! - [`timeline`]: the bounded history of a worker's events, and evenly thinned chart points.
//! - [`report`]: the reports' model (facts joined, the verdict) and their views (text, JSON,
//!   SVG, HTML); [`figures`] names every figure they, `/stats`, `/metrics` and the page show.
//! - [`serve`]: interactive mode's HTTP server.
pub mod arena;
pub mod capability;
pub mod cgroup;
pub mod compare;
pub mod exec;
pub mod figures;
pub mod pidns;
pub mod preflight;
pub mod privilege;
pub mod probe;
pub mod report;
pub mod serve;
pub mod signals;
pub mod supervisor;
pub mod sweep;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod timeline;
pub mod trace;
pub mod worker;

// `memspike::` paths work inside the crate too (test_support is shared with the integration
// tests).
extern crate self as memspike;

pub use memspike_model as model;
pub use memspike_model::size;
