//! memspike: reproduce, observe and explain a garbage-collected runtime that is OOM-killed by
//! a cgroup memory limit while most of its heap is garbage waiting for a collection.
//!
//! The chain, in the order data flows:
//! - [`pacer`]: the Go collector's pacing arithmetic (goal, trigger), pure functions.
//! - [`heap`]: a simulated Go heap over real, resident memory, paced by [`pacer`].
//! - [`scenario`]: the seed's self-directed experiment, step by step, over a [`heap::Heap`].
//! - [`telemetry`]: the events the worker sends the supervisor over a pipe.
//! - [`cgroup`]: discovering, creating, limiting, reading and removing memory cgroups.
//! - [`preflight`]: checks what the user asked for before anything is created.
//! - [`privilege`]: the credentials the worker drops to (a private uid by default).
//! - [`signals`]: the supervisor's stop signals, waited for without handlers.
//! - [`supervisor`]: runs the worker inside the limited group and collects what happened.
//! - [`timeline`]: the bounded history of a worker's events.
//! - [`report`]: joins the heap's timeline with the cgroup's counters and says why it died.
pub mod cgroup;
pub mod heap;
pub mod pacer;
// TEMP(issue 8): lead rewrites (the old phases, until scenario steps replace them).
pub mod phase;
pub mod preflight;
pub mod privilege;
pub mod probe;
pub mod report;
pub mod scenario;
pub mod serve;
pub mod signals;
pub mod size;
pub mod supervisor;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod timeline;
pub mod worker;
