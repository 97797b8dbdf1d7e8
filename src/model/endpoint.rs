//! Model endpoints: probes, latency, errors, SLO burn, drift.
