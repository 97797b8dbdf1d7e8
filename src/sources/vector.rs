//! Vector store probes for the endpoint source: a Pinecone index's data plane
//! (`POST /describe_index_stats`, then `POST /query` with top_k 1) and a Qdrant collection
//! (`GET /collections/{name}`, then `POST /collections/{name}/points/search` with limit 1).
//! Each poll answers the probe (health, the query's latency) and the store's statistics
//! ([`VectorReading`]); the counts over time are the tracker's. Imports model only.
//!
//! Field names are Pinecone's data-plane reference (`totalVectorCount`, `dimension`,
//! `indexFullness`) and Qdrant's OpenAPI document (`result.status`, `points_count`,
//! `indexed_vectors_count`, `config.params.vectors.size`). The API key is read from its file
//! at each poll (so a rotated key is picked up) and never appears in an error or a log.

use std::time::Instant;

use chrono::Utc;
use serde_json::{Value, json};

use crate::model::endpoint::{
    CollectionStatus, EndpointConfig, EndpointHealth, EndpointProtocol, ProbeResult, VectorReading,
};

/// The Pinecone API version the probe asks for (the header every client sends); the fields
/// it reads are the same from 2024-07 on.
const PINECONE_API_VERSION: &str = "2025-01";

/// Why a vector store could not be read; the message a person sees.
#[derive(Debug, thiserror::Error)]
pub enum VectorProbeError {
    #[error("cannot read the API key file {path} (endpoints.vector.api_key_file): {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("qdrant endpoint {endpoint:?} names no collection: set endpoints.vector.index")]
    NoCollection { endpoint: String },
}

/// `base` with `segments` appended as path segments (each percent-encoded).
fn join(base: &str, segments: &[&str]) -> Result<String, VectorProbeError> {
    let invalid = |message: String| VectorProbeError::Url {
        url: base.to_string(),
        message,
    };
    let mut url = url::Url::parse(base).map_err(|e| invalid(e.to_string()))?;
    url.path_segments_mut()
        .map_err(|()| invalid("it cannot be a base URL".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url.into())
}

fn api_key(cfg: &EndpointConfig) -> Result<Option<String>, VectorProbeError> {
    let Some(path) = cfg.vector.as_ref().and_then(|v| v.api_key_file.as_ref()) else {
        return Ok(None);
    };
    std::fs::read_to_string(path)
        .map(|k| Some(k.trim().to_string()))
        .map_err(|source| VectorProbeError::KeyFile {
            path: path.clone(),
            source,
        })
}

/// One POST or GET: its status, its JSON body (`Null` when it has none) and its time, ms.
async fn call(request: reqwest::RequestBuilder, what: &str) -> Result<(u16, Value, f64), String> {
    let started = Instant::now();
    let response = request.send().await.map_err(|e| format!("{what}: {e}"))?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body, started.elapsed().as_secs_f64() * 1000.0))
}

/// What an answer's status says of the store: 2xx healthy, 401/403 a refused key, 5xx a dead
/// server, anything else not ready.
fn health_of_status(status: u16) -> EndpointHealth {
    match status {
        200..=299 => EndpointHealth::Healthy,
        500.. => EndpointHealth::Dead,
        _ => EndpointHealth::NotReady,
    }
}

fn refusal(status: u16, what: &str) -> String {
    match status {
        401 | 403 => format!(
            "{what} answered {status}: the API key was refused; check endpoints.vector.api_key_file"
        ),
        404 => format!("{what} answered 404: no such index or collection"),
        _ => format!("{what} answered {status}"),
    }
}

/// The probe's query vector: the configured one, else zeros of the index's dimension.
fn probe_vector(cfg: &EndpointConfig, dimension: Option<u32>) -> Vec<f32> {
    cfg.vector
        .as_ref()
        .and_then(|v| v.probe_vector.clone())
        .unwrap_or_else(|| vec![0.0; dimension.unwrap_or(1) as usize])
}

/// Probes a `pinecone` or `qdrant` endpoint; the reading is `None` when the statistics could
/// not be read at all.
pub async fn probe_vector_store(
    client: &reqwest::Client,
    cfg: &EndpointConfig,
) -> (ProbeResult, Option<Result<VectorReading, String>>) {
    let mut p = ProbeResult {
        at: Utc::now(),
        health: EndpointHealth::Unknown,
        live: None,
        ready: None,
        model_ready: None,
        engine_alive: None,
        latency_ms: None,
        error: None,
    };
    let reading = match cfg.protocol {
        EndpointProtocol::Qdrant => probe_qdrant(client, cfg, &mut p).await,
        _ => probe_pinecone(client, cfg, &mut p).await,
    };
    let reading = match reading {
        Ok(r) => r,
        Err(e) => {
            p.health = EndpointHealth::NotReady;
            p.error = Some(e.to_string());
            Some(Err(e.to_string()))
        }
    };
    (p, reading)
}

/// A read that got no answer at all leaves the store unreachable.
fn unreachable(p: &mut ProbeResult, message: String) -> Option<Result<VectorReading, String>> {
    p.health = EndpointHealth::Unreachable;
    p.error = Some(message.clone());
    Some(Err(message))
}

async fn probe_pinecone(
    client: &reqwest::Client,
    cfg: &EndpointConfig,
    p: &mut ProbeResult,
) -> Result<Option<Result<VectorReading, String>>, VectorProbeError> {
    let key = api_key(cfg)?;
    let stats_url = join(&cfg.url, &["describe_index_stats"])?;
    let query_url = join(&cfg.url, &["query"])?;
    let with_key = |r: reqwest::RequestBuilder| {
        let r = r.header("X-Pinecone-Api-Version", PINECONE_API_VERSION);
        match &key {
            Some(k) => r.header("Api-Key", k),
            None => r,
        }
    };
    let (status, body, _) = match call(
        with_key(client.post(&stats_url)).json(&json!({})),
        &stats_url,
    )
    .await
    {
        Ok(answer) => answer,
        Err(e) => return Ok(unreachable(p, e)),
    };
    p.live = Some(status < 500);
    if !(200..300).contains(&status) {
        p.health = health_of_status(status);
        let message = refusal(status, &stats_url);
        p.error = Some(message.clone());
        return Ok(Some(Err(message)));
    }
    let Some(count) = body["totalVectorCount"].as_u64() else {
        let message = format!("{stats_url} answered without totalVectorCount");
        p.health = EndpointHealth::NotReady;
        p.error = Some(message.clone());
        return Ok(Some(Err(message)));
    };
    let reading = VectorReading {
        at: Utc::now(),
        count,
        dimension: body["dimension"].as_u64().map(|d| d as u32),
        fullness: body["indexFullness"].as_f64(),
        indexed: None,
        status: None,
    };
    let mut query = json!({
        "vector": probe_vector(cfg, reading.dimension),
        "topK": 1,
        "includeValues": false,
        "includeMetadata": false,
    });
    if let Some(ns) = cfg.vector.as_ref().and_then(|v| v.namespace.as_ref()) {
        query["namespace"] = json!(ns);
    }
    query_answer(
        p,
        call(with_key(client.post(&query_url)).json(&query), &query_url).await,
        &query_url,
    );
    Ok(Some(Ok(reading)))
}

/// Folds the probe's query into `p`: its latency and the store's health.
fn query_answer(p: &mut ProbeResult, answer: Result<(u16, Value, f64), String>, url: &str) {
    match answer {
        Ok((status, _, ms)) => {
            p.latency_ms = Some(ms);
            p.ready = Some((200..300).contains(&status));
            p.health = health_of_status(status);
            if p.health != EndpointHealth::Healthy {
                p.error = Some(refusal(status, url));
            }
        }
        Err(e) => {
            p.ready = Some(false);
            p.health = EndpointHealth::Unreachable;
            p.error = Some(e);
        }
    }
}

async fn probe_qdrant(
    client: &reqwest::Client,
    cfg: &EndpointConfig,
    p: &mut ProbeResult,
) -> Result<Option<Result<VectorReading, String>>, VectorProbeError> {
    let Some(collection) = cfg.vector.as_ref().and_then(|v| v.index.clone()) else {
        return Err(VectorProbeError::NoCollection {
            endpoint: cfg.name.clone(),
        });
    };
    let key = api_key(cfg)?;
    let info_url = join(&cfg.url, &["collections", &collection])?;
    let search_url = join(&cfg.url, &["collections", &collection, "points", "search"])?;
    let with_key = |r: reqwest::RequestBuilder| match &key {
        Some(k) => r.header("api-key", k),
        None => r,
    };
    let (status, body, _) = match call(with_key(client.get(&info_url)), &info_url).await {
        Ok(answer) => answer,
        Err(e) => return Ok(unreachable(p, e)),
    };
    p.live = Some(status < 500);
    if !(200..300).contains(&status) {
        p.health = health_of_status(status);
        let message = refusal(status, &info_url);
        p.error = Some(message.clone());
        return Ok(Some(Err(message)));
    }
    let result = &body["result"];
    let Some(count) = result["points_count"].as_u64() else {
        let message = format!("{info_url} answered without result.points_count");
        p.health = EndpointHealth::NotReady;
        p.error = Some(message.clone());
        return Ok(Some(Err(message)));
    };
    let status = serde_json::from_value::<CollectionStatus>(result["status"].clone()).ok();
    // One unnamed vector has its size here; named vectors are a map of them, and the probe
    // searches the first name.
    let vectors = &result["config"]["params"]["vectors"];
    let (name, dimension) = match vectors["size"].as_u64() {
        Some(size) => (None, Some(size as u32)),
        None => vectors
            .as_object()
            .and_then(|m| m.iter().next())
            .map_or((None, None), |(n, v)| {
                (Some(n.clone()), v["size"].as_u64().map(|s| s as u32))
            }),
    };
    let reading = VectorReading {
        at: Utc::now(),
        count,
        dimension,
        fullness: None,
        indexed: result["indexed_vectors_count"].as_u64(),
        status,
    };
    let vector = probe_vector(cfg, dimension);
    let search = match name {
        Some(n) => json!({"vector": {"name": n, "vector": vector}, "limit": 1}),
        None => json!({"vector": vector, "limit": 1}),
    };
    query_answer(
        p,
        call(
            with_key(client.post(&search_url)).json(&search),
            &search_url,
        )
        .await,
        &search_url,
    );
    if status == Some(CollectionStatus::Red) && p.health == EndpointHealth::Healthy {
        p.health = EndpointHealth::NotReady;
        p.error = Some(format!(
            "collection {collection} is red: an optimisation failed; see the Qdrant log"
        ));
    }
    Ok(Some(Ok(reading)))
}
