//! The worker: the process memspike starts inside the limited group. It runs the simulated Go
//! runtime ([`memspike_model`]) over real memory and reports every step to the supervisor.
//!
//! In the order data flows:
//! - [`arena`]: the heap's real memory, which the model's heap writes and returns;
//! - [`host`]: the worker process as the simulated program sees it (clock, the group's usage,
//!   SIGSTOP), and the program over arenas;
//! - [`telemetry`]: the protocol with the supervisor: the configuration it sends
//!   ([`telemetry::WorkerConfig`]), the events sent back, the control lines;
//! - [`privilege`]: the credentials the worker drops to (a private uid by default);
//! - [`serve`]: interactive mode's HTTP server on the heap;
//! - [`worker`]: the entry point, [`worker::run`], that ties them together.
pub mod arena;
pub mod host;
pub mod privilege;
pub mod serve;
pub mod telemetry;
pub mod worker;
