//! Prometheus HTTP API client: instant and range queries.
