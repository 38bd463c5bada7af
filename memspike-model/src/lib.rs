//! memspike's model of the Go runtime's memory management: pure arithmetic and bookkeeping, no
//! root, no kernel, no memory of its own unless given some. The worker runs it over real memory
//! inside a cgroup; tests and benches run it over [`heap::Accounting`].
//!
//! The chain, in the order data flows:
//! - [`experiment`]: one experiment's configuration (limit, scenario, [`policy`], Go release).
//! - [`scenario`]: allocation patterns as named steps, from TOML or built in.
//! - [`program`]: runs a scenario's steps on the runtime and reports each one as [`event`]s.
//! - [`runtime`]: the simulated Go runtime on a simulated clock, made of
//!   [`heap`] (slabs over pages over memory), [`pacer`] (goal and trigger),
//!   [`scavenger`] (returning pages), [`limiter`] (the GC CPU limiter), [`watchdog`]
//!   (go-watchdog's policies) and [`footprint`] (the runtime's own memory);
//!   [`release`] says which Go release's rules apply.
//! - [`predict`]: the model's prediction, from many runs with the collector's timing drawn.
//! - [`size`] and [`duration`]: sizes and durations as people write them.
//! - [`policy_set`], [`threshold`] and [`sweep`]: many experiments at once: named policies
//!   for `compare`, the bisection behind `threshold`, and a sweep plan's cells.
//! - [`trace`]: a real runtime's own trace of its collections (Go's gctrace), read from its
//!   stderr when `memspike exec` runs a real program.

/// Serde for a type through its `Display` and `FromStr` (a string in JSON and TOML), and its
/// JSON schema: a string, described as `$what` says.
macro_rules! serde_via_str {
    ($t:ty, $what:expr) => {
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "description": $what })
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod duration;
pub mod event;
pub mod experiment;
pub mod footprint;
pub mod heap;
pub mod limiter;
pub mod pacer;
pub mod policy;
pub mod policy_set;
pub mod predict;
pub mod profile;
pub mod program;
pub mod release;
pub mod runtime;
pub mod scavenger;
pub mod scenario;
pub mod size;
pub mod sweep;
pub mod threshold;
pub mod trace;
pub mod watchdog;
