//! `/metrics`: the heap, the cgroup and the supervisor's facts as a Prometheus scrape, in the
//! OpenMetrics text format written by `prometheus-client`. Every scrape builds a registry of
//! constant metrics from the same readings as `/stats` (names, units and help from
//! [`memspike_report::figures`]), so what it shows is exactly what `/stats` would show at that moment. Names start with `memspike_` and carry their unit (`_bytes`,
//! `_seconds`) and, for counters, `_total`. A figure that is unknown (no group, no tracing)
//! is left out rather than reported as 0.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit as MetricUnit},
};
use serde_json::Value;

use super::{
    ops::Snapshot,
    stats::{World, readings},
};
use memspike_report::figures::{Figure, Kind, Unit};

/// The content type of the answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The scrape's text.
pub fn render(snap: &Snapshot, world: &World) -> Result<String, std::fmt::Error> {
    let mut r = Registry::with_prefix("memspike");
    for (figure, value) in readings(snap, world) {
        register(&mut r, figure, &value);
    }
    let mut out = String::new();
    encode(&mut out, &r)?;
    Ok(out)
}

/// One figure as a constant metric, if it has a metric name and a number now.
fn register(r: &mut Registry, figure: &Figure, value: &Value) {
    let (Some(name), Some(n)) = (figure.metric, value.as_u64()) else {
        return;
    };
    let help = figure.help;
    match (figure.kind, figure.unit) {
        (Kind::Counter, Unit::Nanoseconds) => r.register_with_unit(
            name,
            help,
            MetricUnit::Seconds,
            ConstCounter::new(n as f64 / 1e9),
        ),
        (Kind::Counter, Unit::Bytes) => {
            r.register_with_unit(name, help, MetricUnit::Bytes, ConstCounter::new(n))
        }
        (Kind::Counter, _) => r.register(name, help, ConstCounter::new(n)),
        (_, Unit::Bytes) => r.register_with_unit(name, help, MetricUnit::Bytes, ConstGauge::new(n)),
        _ => r.register(name, help, ConstGauge::new(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Feed;
    use memspike_cgroup::Counters;

    #[test]
    fn names_carry_units_and_unknowns_are_left_out() {
        let world = World {
            limit: 1 << 25,
            memory_limit: None,
            runtime: memspike_model::release::Release::default(),
            counters: Some(Counters {
                usage_bytes: Some(4096),
                oom_kills: Some(1),
                ..Counters::default()
            }),
            feed: &Feed {
                restarts: 2,
                reclaim_ns: Some(1_500_000_000),
                ..Feed::default()
            },
        };
        let text = render(&Snapshot::default(), &world).unwrap();
        for line in [
            "memspike_cgroup_limit_bytes 33554432",
            "memspike_cgroup_usage_bytes 4096",
            "memspike_cgroup_oom_kills_total 1",
            "memspike_restarts_total 2",
            "memspike_reclaim_stall_seconds_total 1.5",
            "# TYPE memspike_heap_live_bytes gauge",
            "# HELP memspike_gc_cycles Collections run (NumGC).",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(!text.contains("failcnt"), "{text}");
        assert!(!text.contains("page_faults"), "{text}");
    }

    /// The registry's names are the scrape's: every figure with a metric name and a number
    /// is in the scrape under the name the registry documents.
    #[test]
    fn every_scraped_figure_is_under_its_documented_name() {
        let counters = Counters {
            usage_bytes: Some(1),
            peak_bytes: Some(1),
            failcnt: Some(1),
            oom_kills: Some(1),
            ..Counters::default()
        };
        let feed = Feed {
            page_faults: Some(1),
            reclaim_stalls: Some(1),
            reclaim_ns: Some(1),
            ..Feed::default()
        };
        let world = World {
            limit: 1 << 25,
            memory_limit: Some(1 << 24),
            runtime: memspike_model::release::Release::default(),
            counters: Some(counters),
            feed: &feed,
        };
        let snap = Snapshot::default();
        let text = render(&snap, &world).unwrap();
        let scraped: Vec<String> = readings(&snap, &world)
            .into_iter()
            .filter(|(_, v)| v.as_u64().is_some())
            .filter_map(|(f, _)| f.scrape_name())
            .collect();
        assert!(scraped.len() > 15, "{scraped:?}");
        for name in scraped {
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{name} "))),
                "{name} in\n{text}"
            );
        }
    }
}
