//! Memory cgroups: this crate owns everything memspike does with the kernel's cgroup
//! filesystems, on cgroup v1 (memory controller in its own hierarchy, swap capped with
//! `memory.memsw.*`) and on cgroup v2 (`memory.max`, `memory.swap.max`, `memory.events`).
//!
//! - [`discover`]: where the memory controller is mounted, where this process sits in it, and
//!   whether the preconditions hold ([`Hierarchy`], [`PreflightError`]).
//! - [`group`]: the experiment's group: create, limit, join, kill, remove ([`Group`],
//!   [`CgroupError`]).
//! - [`counters`]: a pure reader of a group's counters into a model where every field is
//!   optional ([`Counters`], [`read_counters`]).
//! - [`inherit`]: the limit this process already lives under, for `--inherit`
//!   ([`EffectiveLimit`], [`effective_limit`]).
//! - [`stale`]: removal of groups left behind by supervisors that died ([`remove_stale`]).
//! - [`sampler`]: cheap, frequent readings of a group's usage while a program runs.
//! - [`capability`]: what this process may do (tracing, creating groups), by capability.
//! - [`pidns`]: pids as the kernel's tracepoints number them, from inside a PID namespace.
//!
//! What it reads comes out as the plain facts of [`memspike_report::facts`] ([`Counters`],
//! [`Version`]).
//!
//! Real creation and limit writes go through `cgroups-rs`' memory controller; the reader and
//! the discovery are our own, because `cgroups-rs` hard-codes `/sys/fs/cgroup`, creates groups
//! in every v1 hierarchy, and has no `memory.events`, `memory.peak` or v1 `oom_kill`.
//! Everything takes a filesystem root so that tests can drive fake trees in temporary
//! directories.

pub mod capability;
pub mod counters;
pub mod discover;
#[cfg(test)]
pub(crate) mod fakefs;
pub mod group;
pub mod inherit;
pub mod pidns;
pub mod sampler;
pub mod stale;

pub use counters::read_counters;
pub use discover::{Hierarchy, PreflightError, check_can_create};
pub use group::{CgroupError, Group};
pub use inherit::{EffectiveLimit, InheritError, effective_limit};
pub use memspike_report::facts::{CgroupVersion as Version, Counters};
pub use stale::remove_stale;

/// Prefix of every group memspike creates; the next dash-separated field is the creator's pid.
pub(crate) const NAME_PREFIX: &str = "memspike-";

/// The kernel options the seed asks for, and how to set them on a GRUB system.
pub(crate) const V1_KERNEL_FIX: &str = "append `cgroup_enable=memory swapaccount=1` to \
     GRUB_CMDLINE_LINUX in /etc/default/grub, run `sudo update-grub`, then reboot";
