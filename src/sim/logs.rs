//! Container logs for the simulated kubelet (`GET …/pods/{name}/log`): the query kubectl sends,
//! the API server's validation messages, and lines derived on demand from (pod uid, container,
//! run, line index) — nothing is stored, so 150,000 pods cost no memory until one is read.
//! Imports nothing outside the sim.
//!
//! Messages follow the API server's `pkg/registry/core/pod/strategy.go` (`validateContainer`,
//! an unknown container is a 400 there, not a 404) and the kubelet's
//! `previous terminated container … not found`.

use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use serde_json::Value;

use super::store::ApiError;

/// The most history one container keeps: older lines have rotated away, as on a real node.
pub const MAX_HISTORY_LINES: u64 = 5000;

/// What a `log` request asks for, as kubectl encodes it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogQuery {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<u64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<DateTime<Utc>>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
}

impl LogQuery {
    pub fn parse(query: &str) -> Result<LogQuery, ApiError> {
        let mut q = LogQuery::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let bad =
                |what: &str| ApiError::bad_request(format!("invalid {what} parameter: {v:?}"));
            let flag = v == "true" || v == "1";
            match k.as_ref() {
                "container" if !v.is_empty() => q.container = Some(v.into_owned()),
                "follow" => q.follow = flag,
                "previous" => q.previous = flag,
                "timestamps" => q.timestamps = flag,
                "tailLines" => q.tail_lines = Some(v.parse().map_err(|_| bad("tailLines"))?),
                "sinceSeconds" => {
                    let s: i64 = v.parse().map_err(|_| bad("sinceSeconds"))?;
                    if s < 1 {
                        return Err(ApiError::bad_request("sinceSeconds must be greater than 0"));
                    }
                    q.since_seconds = Some(s);
                }
                "sinceTime" => {
                    q.since_time = Some(
                        DateTime::parse_from_rfc3339(&v)
                            .map_err(|_| bad("sinceTime"))?
                            .with_timezone(&Utc),
                    )
                }
                "limitBytes" => {
                    let n: usize = v.parse().map_err(|_| bad("limitBytes"))?;
                    if n < 1 {
                        return Err(ApiError::bad_request("limitBytes must be greater than 0"));
                    }
                    q.limit_bytes = Some(n);
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// The earliest time a line may carry to be sent.
    fn since(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match (self.since_seconds, self.since_time) {
            (Some(s), _) => Some(now - ChronoDuration::seconds(s)),
            (None, t) => t,
        }
    }
}

/// The kind of program a container runs, which decides what its lines look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Vllm,
    Kserve,
    Training,
    /// A batch worker that dies with a Python stack trace on every run.
    CrashingPython,
    /// A vLLM engine whose new revision cannot start (scenario `crashloop-rollout`).
    CrashingVllm,
    /// A Spark driver (`spark-role=driver`): SparkContext, stages and tasks.
    SparkDriver,
    /// A Spark driver whose job aborted (scenario `spark-failed`): ends in the exception.
    SparkDriverFailed,
    /// A Spark executor (`spark-role=executor`).
    SparkExecutor,
    Envoy,
    Service,
}

/// One container run's log: where its lines come from and whether it still writes.
#[derive(Debug, Clone)]
pub struct LogSource {
    pub flavour: Flavour,
    pub seed: u64,
    pub pod: String,
    pub container: String,
    /// The run's first line.
    pub started: DateTime<Utc>,
    /// Set for a run that ended: no line after it.
    pub finished: Option<DateTime<Utc>>,
    pub period_ms: i64,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn flavour_of(pod: &Value, image: &str) -> Flavour {
    let labels = &pod["metadata"]["labels"];
    let label = |k: &str| labels.get(k).and_then(Value::as_str).is_some();
    let faulty = pod.pointer("/metadata/annotations/sim.fleetdeck.dev~1fault")
        == Some(&Value::from("crashloop"));
    let spark_role = labels.get("spark-role").and_then(Value::as_str);
    if spark_role == Some("driver") {
        if pod.pointer("/metadata/annotations/sim.fleetdeck.dev~1fault")
            == Some(&Value::from("spark-failed"))
        {
            Flavour::SparkDriverFailed
        } else {
            Flavour::SparkDriver
        }
    } else if spark_role == Some("executor") {
        Flavour::SparkExecutor
    } else if faulty && image.contains("vllm") {
        Flavour::CrashingVllm
    } else if faulty || label("sim.fleetdeck.dev/crashloop") {
        Flavour::CrashingPython
    } else if image.contains("vllm") {
        Flavour::Vllm
    } else if label("serving.kserve.io/inferenceservice") || image.contains("kserve") {
        Flavour::Kserve
    } else if label("training.kubeflow.org/job-name") || label("training.kubeflow.org/replica-type")
    {
        Flavour::Training
    } else if image.contains("envoy") {
        Flavour::Envoy
    } else {
        Flavour::Service
    }
}

fn container_names(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The kubelet's first back-off between two runs of a crash-looping container.
const CRASH_BACK_OFF_SECS: i64 = 10;

/// Chooses the container run a request reads, with the API server's and kubelet's refusals.
pub fn resolve(pod: &Value, q: &LogQuery) -> Result<LogSource, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let names = container_names(pod);
    let container = match &q.container {
        Some(c) if names.iter().any(|n| n == c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if names.len() == 1 => names[0].clone(),
        None if names.is_empty() => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            )));
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let image = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
        .and_then(|c| c["image"].as_str())
        .unwrap_or("");
    let flavour = flavour_of(pod, image);
    let status = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()));
    let restarts = status.and_then(|s| s["restartCount"].as_u64()).unwrap_or(0);
    let last = status.and_then(|s| s.pointer("/lastState/terminated"));
    let state = status.map(|s| &s["state"]);
    let uid = pod["metadata"]["uid"].as_str().unwrap_or(&name);
    let pod_start = parse_time(pod.pointer("/status/startTime"))
        .or_else(|| parse_time(pod.pointer("/metadata/creationTimestamp")))
        .unwrap_or_else(Utc::now);
    let period_ms = match flavour {
        Flavour::Vllm => 700,
        Flavour::Kserve => 900,
        Flavour::Training => 1900,
        Flavour::CrashingPython | Flavour::CrashingVllm | Flavour::SparkDriverFailed => 1500,
        Flavour::SparkDriver => 1100,
        Flavour::SparkExecutor => 1700,
        Flavour::Envoy => 600,
        Flavour::Service => 1300,
    };
    let source = |run: u64, started: DateTime<Utc>, finished: Option<DateTime<Utc>>| LogSource {
        flavour,
        seed: mix(fnv(uid) ^ fnv(&container).rotate_left(17) ^ run),
        pod: name.clone(),
        container: container.clone(),
        started,
        finished,
        period_ms,
    };
    let terminated_run = |t: &Value, run: u64| {
        let finished = parse_time(t.get("finishedAt")).unwrap_or(pod_start);
        let started = parse_time(t.get("startedAt"))
            .unwrap_or(finished - ChronoDuration::minutes(1))
            .min(finished);
        source(run, started, Some(finished))
    };
    let waiting = state.is_some_and(|s| s.get("waiting").is_some());
    if q.previous {
        return match last {
            // While a crash-looping container waits out its back-off, its current log is the
            // last run's (`lastState`), so the previous run is the one before: it ended a
            // back-off before the last one started, and its lines carry those earlier times.
            Some(t) if waiting => {
                let last_run = terminated_run(t, restarts);
                let length = (last_run.finished.unwrap_or(last_run.started) - last_run.started)
                    .max(ChronoDuration::seconds(1));
                let finished = last_run.started - ChronoDuration::seconds(CRASH_BACK_OFF_SECS);
                Ok(source(
                    restarts.saturating_sub(1),
                    finished - length,
                    Some(finished),
                ))
            }
            Some(t) => Ok(terminated_run(t, restarts.saturating_sub(1))),
            None => Err(ApiError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            ))),
        };
    }
    if let Some(s) = state {
        if let Some(r) = s.get("running") {
            let started = parse_time(r.get("startedAt")).unwrap_or(pod_start);
            return Ok(source(restarts, started, None));
        }
        if let Some(t) = s.get("terminated") {
            return Ok(terminated_run(t, restarts));
        }
        if let Some(w) = s.get("waiting") {
            // A crash-looping container's "current" log is its last run's, as the kubelet
            // answers while the back-off lasts.
            return match last {
                Some(t) => Ok(terminated_run(t, restarts)),
                None => Err(ApiError::bad_request(format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: {}",
                    w["reason"].as_str().unwrap_or("ContainerCreating")
                ))),
            };
        }
    }
    Err(ApiError::bad_request(format!(
        "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
    )))
}

/// One generated line: when it was written and its text (no newline).
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub text: String,
}

impl LogSource {
    /// The time line `i` was written.
    pub fn time_of(&self, i: u64) -> DateTime<Utc> {
        let jitter = (mix(self.seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d)) % 1000) as i64
            * self.period_ms
            / 2000;
        self.started + ChronoDuration::milliseconds(i as i64 * self.period_ms + jitter)
    }

    /// How many lines exist at `now`, counting the rotated-away ones.
    pub fn written(&self, now: DateTime<Utc>) -> u64 {
        if let Some(n) = self.finite_len() {
            return n;
        }
        let end = self.finished.map_or(now, |f| f.min(now));
        let elapsed = (end - self.started).num_milliseconds();
        if elapsed < 0 {
            return 0;
        }
        let mut n = (elapsed / self.period_ms) as u64 + 1;
        while n > 0 && self.time_of(n - 1) > end {
            n -= 1;
        }
        n
    }

    /// A crashing run writes a short, fixed story.
    fn finite_len(&self) -> Option<u64> {
        self.trace().map(|t| CRASH_PREAMBLE + 1 + t.len() as u64)
    }

    /// The stack trace a crashing run ends in.
    fn trace(&self) -> Option<&'static [&'static str]> {
        match self.flavour {
            Flavour::CrashingPython => Some(TRACE),
            Flavour::CrashingVllm => Some(VLLM_TRACE),
            Flavour::SparkDriverFailed => Some(SPARK_TRACE),
            _ => None,
        }
    }

    /// The first line still on disk at `now`.
    pub fn first_kept(&self, now: DateTime<Utc>) -> u64 {
        self.written(now).saturating_sub(MAX_HISTORY_LINES)
    }

    pub fn line(&self, i: u64) -> LogLine {
        let at = match (self.finite_len(), self.finished) {
            // The story is spread over the run, its stack trace at the end.
            (Some(n), Some(end)) => {
                let span = (end - self.started).num_milliseconds().max(n as i64);
                let trace = self.trace().map_or(0, <[&str]>::len) as u64;
                let offset = if i + trace + 1 >= n {
                    span - (n - i) as i64
                } else {
                    span * i as i64 / n as i64
                };
                self.started + ChronoDuration::milliseconds(offset)
            }
            _ => self.time_of(i),
        };
        let r = mix(self.seed.wrapping_add(i.wrapping_mul(0x9e37_79b9)));
        let text = match self.flavour {
            Flavour::Vllm => vllm_line(i, r, at),
            Flavour::Kserve => kserve_line(&self.pod, i, r, at),
            Flavour::Training => training_line(&self.pod, i, r, at),
            Flavour::CrashingPython => crash_line(&self.container, i, r, at),
            Flavour::CrashingVllm => vllm_crash_line(i, at),
            Flavour::SparkDriver => spark_driver_line(&self.pod, i, r, at),
            Flavour::SparkDriverFailed => spark_failed_line(&self.pod, i, r, at),
            Flavour::SparkExecutor => spark_executor_line(i, r, at),
            Flavour::Envoy => envoy_line(i, r, at),
            Flavour::Service => service_line(&self.container, i, r, at),
        };
        LogLine { at, text }
    }

    /// The lines a request gets now: since, then tail, over the kept history; the index after
    /// the last one (where a follow continues).
    pub fn history(&self, q: &LogQuery, now: DateTime<Utc>) -> (Vec<LogLine>, u64) {
        let end = self.written(now);
        let mut first = self.first_kept(now);
        if let Some(since) = q.since(now) {
            // Lines are in time order: binary search the first one at or after `since`.
            let (mut lo, mut hi) = (first, end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if self.line_time(mid) < since {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            first = lo;
        }
        if let Some(t) = q.tail_lines {
            first = first.max(end.saturating_sub(t));
        }
        ((first..end).map(|i| self.line(i)).collect(), end)
    }

    fn line_time(&self, i: u64) -> DateTime<Utc> {
        if self.finite_len().is_some() {
            self.line(i).at
        } else {
            self.time_of(i)
        }
    }
}

/// A line as sent: with the RFC3339Nano prefix when asked for, and its newline.
pub fn render(line: &LogLine, timestamps: bool) -> String {
    if timestamps {
        format!(
            "{} {}\n",
            line.at.to_rfc3339_opts(SecondsFormat::Nanos, true),
            line.text
        )
    } else {
        format!("{}\n", line.text)
    }
}

fn pick<'a>(r: u64, items: &[&'a str]) -> &'a str {
    items[(r % items.len() as u64) as usize]
}

fn ip(r: u64) -> String {
    format!(
        "10.{}.{}.{}:{}",
        100 + (r >> 8) % 100,
        (r >> 16) % 250,
        2 + (r >> 24) % 248,
        30000 + (r >> 32) % 30000
    )
}

fn hex32(r: u64) -> String {
    format!("{:016x}{:016x}", r, mix(r))
}

const VLLM_STARTUP: &[&str] = &[
    "api_server.py:527] vLLM API server version 0.6.3",
    "api_server.py:528] args: Namespace(host=None, port=8000, model='/models/llama-3.1-8b-instruct', tensor_parallel_size=1, max_model_len=8192, gpu_memory_utilization=0.9)",
    "config.py:1005] Chunked prefill is enabled with max_num_batched_tokens=512.",
    "llm_engine.py:237] Initializing an LLM engine (v0.6.3) with config: model='/models/llama-3.1-8b-instruct', dtype=torch.bfloat16, max_seq_len=8192, enforce_eager=False, kv_cache_dtype=auto",
    "model_runner.py:1060] Starting to load model /models/llama-3.1-8b-instruct...",
    "model_runner.py:1071] Loading model weights took 14.9888 GB",
    "gpu_executor.py:122] # GPU blocks: 27545, # CPU blocks: 2048",
    "model_runner.py:1402] Capturing the model for CUDA graphs. This may lead to unexpected consequences if the model is not static.",
    "model_runner.py:1530] Graph capturing finished in 9 secs.",
    "launcher.py:19] Available routes are: /health, /v1/models, /v1/chat/completions, /v1/completions, /metrics",
];

fn vllm_line(i: u64, r: u64, at: DateTime<Utc>) -> String {
    let ts = at.format("%m-%d %H:%M:%S");
    if let Some(s) = VLLM_STARTUP.get(i as usize) {
        return format!("INFO {ts} {s}");
    }
    match r % 10 {
        0..=3 => format!(
            "INFO:     {} - \"POST /v1/chat/completions HTTP/1.1\" 200 OK",
            ip(r)
        ),
        4..=6 => format!(
            "INFO {ts} async_llm_engine.py:208] Added request chat-{}.",
            &hex32(r)[..32]
        ),
        7 | 8 => format!(
            "INFO {ts} metrics.py:351] Avg prompt throughput: {:.1} tokens/s, Avg generation throughput: {:.1} tokens/s, Running: {} reqs, Swapped: 0 reqs, Pending: {} reqs, GPU KV cache usage: {:.1}%, CPU KV cache usage: 0.0%.",
            800.0 + (r >> 8) as f64 % 4000.0,
            300.0 + (r >> 20) as f64 % 1500.0,
            1 + (r >> 32) % 40,
            (r >> 40) % 3,
            20.0 + (r >> 44) as f64 % 700.0 / 10.0
        ),
        _ => format!(
            "INFO {ts} async_llm_engine.py:176] Finished request chat-{}.",
            &hex32(r >> 3)[..32]
        ),
    }
}

fn kserve_line(pod: &str, i: u64, r: u64, at: DateTime<Utc>) -> String {
    let ts = at.format("%Y-%m-%d %H:%M:%S%.3f");
    let model = pod.split("-predictor").next().unwrap_or("model");
    match i {
        0 => {
            return format!(
                "{ts} 1 kserve INFO [model_server.py:start():370] Starting uvicorn with 1 workers"
            );
        }
        1 => {
            return format!(
                "{ts} 1 kserve INFO [huggingfaceserver:load():166] Successfully loaded model {model} from /mnt/models"
            );
        }
        2 => return format!("{ts} 1 uvicorn.error INFO:     Application startup complete."),
        _ => {}
    }
    if r.is_multiple_of(3) {
        format!(
            "{ts} 1 uvicorn.access INFO:     {} 1 - \"POST /v2/models/{model}/infer HTTP/1.1\" 200 OK",
            ip(r)
        )
    } else {
        format!(
            "{ts} 1 kserve.trace requestId: {}-{}-{}, preprocess_ms: {:.3}, explain_ms: 0, predict_ms: {:.3}, postprocess_ms: {:.3}",
            &hex32(r)[..8],
            &hex32(r)[8..12],
            &hex32(r)[12..24],
            0.05 + (r >> 8) as f64 % 300.0 / 1000.0,
            8.0 + (r >> 20) as f64 % 4000.0 / 100.0,
            0.01 + (r >> 32) as f64 % 90.0 / 1000.0
        )
    }
}

fn training_line(pod: &str, i: u64, r: u64, at: DateTime<Utc>) -> String {
    let rank = pod
        .rsplit('-')
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let ts = at.format("%Y-%m-%d %H:%M:%S,%3f");
    match i {
        0 => {
            return format!(
                "[rank{rank}]:[{ts}] INFO torch.distributed: initialized NCCL process group (world_size=16, rank={rank}, backend=nccl)"
            );
        }
        1 => {
            return format!(
                "[rank{rank}]:[{ts}] INFO trainer: resuming from checkpoint s3://fleet-ckpt/llm-pretrain/step_120000"
            );
        }
        _ => {}
    }
    let step = 120_000 + i - 2;
    if step.is_multiple_of(500) {
        return format!(
            "[rank{rank}]:[{ts}] INFO checkpoint: saved step_{step} to s3://fleet-ckpt/llm-pretrain/step_{step} in {:.1}s",
            20.0 + (r % 400) as f64 / 10.0
        );
    }
    let progress = (step - 120_000) as f64;
    let loss = 2.9 * (-progress / 40_000.0).exp() + 1.6 + ((r % 1000) as f64 - 500.0) / 8000.0;
    let lr = 3.0e-4 * (0.5 + 0.5 * (progress / 200_000.0 * std::f64::consts::PI).cos());
    format!(
        "[rank{rank}]:[{ts}] INFO trainer: step {step} | loss {loss:.4} | lr {lr:.3e} | grad_norm {:.3} | tokens/s {} | mfu {:.1}% | step_time {:.2}s",
        0.6 + (r >> 10) as f64 % 500.0 / 1000.0,
        395_000 + (r >> 20) % 30_000,
        40.0 + (r >> 36) as f64 % 40.0 / 10.0,
        1.85 + (r >> 44) as f64 % 12.0 / 100.0
    )
}

/// Lines a crashing run writes before it fails.
const CRASH_PREAMBLE: u64 = 6;

const TRACE: &[&str] = &[
    "Traceback (most recent call last):",
    "  File \"/app/worker.py\", line 212, in <module>",
    "    main()",
    "  File \"/app/worker.py\", line 198, in main",
    "    batch = tokenizer.encode_batch(docs, add_special_tokens=True)",
    "  File \"/usr/local/lib/python3.11/site-packages/tokenizers/implementations/base_tokenizer.py\", line 69, in encode_batch",
    "    return self._tokenizer.encode_batch(inputs, is_pretokenized, add_special_tokens)",
    "MemoryError: Unable to allocate 3.12 GiB for an array with shape (8192, 102400) and data type int32",
];

fn crash_line(container: &str, i: u64, r: u64, at: DateTime<Utc>) -> String {
    let ts = at.format("%Y-%m-%d %H:%M:%S,%3f");
    let shard = r % 512;
    match i {
        0 => format!("{ts} INFO {container}: starting worker version 2.4.0 (pid 1)"),
        1 => format!("{ts} INFO {container}: connected to queue redis://redis.data:6379/0"),
        2 => format!(
            "{ts} INFO {container}: loading shard s3://fleet-data/corpus/shard-{shard:05}.jsonl.zst"
        ),
        3 => format!(
            "{ts} INFO {container}: tokenized 120000 documents ({:.1}M tokens/s)",
            2.5 + (r >> 8) as f64 % 10.0 / 10.0
        ),
        4 => format!(
            "{ts} INFO {container}: loading shard s3://fleet-data/corpus/shard-{:05}.jsonl.zst",
            shard + 1
        ),
        5 => format!(
            "{ts} WARNING {container}: batch of 8192 documents has max length 102400 tokens (limit 8192); padding"
        ),
        6 => format!("{ts} ERROR {container}: unhandled exception in encode loop"),
        n => TRACE
            .get((n - CRASH_PREAMBLE - 1) as usize)
            .map_or_else(String::new, |s| (*s).to_string()),
    }
}

const VLLM_TRACE: &[&str] = &[
    "Traceback (most recent call last):",
    "  File \"/usr/local/lib/python3.12/dist-packages/vllm/entrypoints/openai/api_server.py\", line 585, in <module>",
    "    uvloop.run(run_server(args))",
    "  File \"/usr/local/lib/python3.12/dist-packages/vllm/engine/llm_engine.py\", line 474, in _initialize_kv_caches",
    "    self.model_executor.determine_num_available_blocks())",
    "  File \"/usr/local/lib/python3.12/dist-packages/vllm/worker/worker.py\", line 514, in raise_if_cache_size_invalid",
    "    raise ValueError(",
    "ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can be stored in KV cache (21984). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.",
];

fn vllm_crash_line(i: u64, at: DateTime<Utc>) -> String {
    let ts = at.format("%m-%d %H:%M:%S");
    match VLLM_STARTUP.get(i as usize) {
        Some(s) if i < CRASH_PREAMBLE => format!("INFO {ts} {s}"),
        _ if i == CRASH_PREAMBLE => {
            format!("ERROR {ts} engine.py:366] Engine background task failed")
        }
        _ => VLLM_TRACE
            .get((i - CRASH_PREAMBLE - 1) as usize)
            .map_or_else(String::new, |s| (*s).to_string()),
    }
}

/// The exception a `spark-failed` driver ends in: an executor lost to the heap, four times.
const SPARK_TRACE: &[&str] = &[
    "Exception in thread \"main\" org.apache.spark.SparkException: Job aborted due to stage failure: Task 17 in stage 4.0 failed 4 times, most recent failure: Lost task 17.3 in stage 4.0 (TID 1093) (10.104.3.7 executor 3): java.lang.OutOfMemoryError: Java heap space",
    "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2856)",
    "\tat org.apache.spark.scheduler.DAGScheduler.$anonfun$abortStage$2(DAGScheduler.scala:2792)",
    "\tat org.apache.spark.scheduler.DAGScheduler.abortStage(DAGScheduler.scala:2791)",
    "\tat org.apache.spark.sql.execution.datasources.FileFormatWriter$.write(FileFormatWriter.scala:268)",
    "\tat org.apache.spark.deploy.SparkSubmit.main(SparkSubmit.scala)",
];

/// The error message the operator records for a `spark-failed` driver (its log's last cause).
pub const SPARK_FAILURE: &str = "driver container failed with ExitCode: 1, Reason: Error: Job aborted due to stage failure: Task 17 in stage 4.0 failed 4 times, most recent failure: java.lang.OutOfMemoryError: Java heap space";

/// A driver's first lines, as Spark 3.5's log4j2 layout writes them.
fn spark_preamble(app: &str, i: u64, ts: &str) -> Option<String> {
    let line = match i {
        0 => format!("{ts} INFO SparkContext: Running Spark version 3.5.3"),
        1 => format!("{ts} INFO SparkContext: Submitted application: {app}"),
        2 => format!("{ts} INFO ResourceProfileManager: Added ResourceProfile id: 0"),
        3 => format!("{ts} INFO Utils: Successfully started service 'SparkUI' on port 4040."),
        4 => format!(
            "{ts} INFO ExecutorPodsAllocator: Going to request 3 executors from Kubernetes for ResourceProfile Id: 0"
        ),
        5 => format!(
            "{ts} INFO KubernetesClusterSchedulerBackend: SchedulerBackend is ready for scheduling beginning after reached minRegisteredResourcesRatio: 0.8"
        ),
        _ => return None,
    };
    Some(line)
}

fn spark_driver_line(pod: &str, i: u64, r: u64, at: DateTime<Utc>) -> String {
    let ts = at.format("%y/%m/%d %H:%M:%S").to_string();
    let app = pod.strip_suffix("-driver").unwrap_or(pod);
    if let Some(l) = spark_preamble(app, i, &ts) {
        return l;
    }
    let stage = 1 + (i / 200) % 9;
    match r % 6 {
        0..=3 => format!(
            "{ts} INFO TaskSetManager: Finished task {}.0 in stage {stage}.0 (TID {}) in {} ms on 10.{}.{}.{} (executor {}) ({}/200)",
            (i + r) % 200,
            i * 3 + 7,
            400 + (r >> 8) % 4000,
            100 + (r >> 16) % 100,
            (r >> 24) % 250,
            2 + (r >> 32) % 248,
            1 + (r >> 40) % 3,
            1 + i % 200
        ),
        4 => format!(
            "{ts} INFO DAGScheduler: Submitting {} missing tasks from ResultStage {stage} (MapPartitionsRDD[{}] at parquet at EtlJob.scala:88)",
            200,
            stage * 4 + 1
        ),
        _ => format!(
            "{ts} INFO BlockManagerInfo: Added broadcast_{}_piece0 in memory on 10.{}.{}.{}:7079 (size: {:.1} KiB, free: 2.1 GiB)",
            i % 64,
            100 + (r >> 16) % 100,
            (r >> 24) % 250,
            2 + (r >> 32) % 248,
            10.0 + (r >> 8) as f64 % 400.0 / 10.0
        ),
    }
}

fn spark_failed_line(pod: &str, i: u64, r: u64, at: DateTime<Utc>) -> String {
    let ts = at.format("%y/%m/%d %H:%M:%S").to_string();
    let app = pod.strip_suffix("-driver").unwrap_or(pod);
    if let Some(l) = spark_preamble(app, i, &ts) {
        return l;
    }
    if i == CRASH_PREAMBLE {
        return format!(
            "{ts} ERROR TaskSetManager: Task 17 in stage 4.0 failed 4 times; aborting job (last on executor {})",
            1 + r % 3
        );
    }
    SPARK_TRACE
        .get((i - CRASH_PREAMBLE - 1) as usize)
        .map_or_else(String::new, |s| (*s).to_string())
}

fn spark_executor_line(i: u64, r: u64, at: DateTime<Utc>) -> String {
    let ts = at.format("%y/%m/%d %H:%M:%S");
    match i {
        0 => format!(
            "{ts} INFO CoarseGrainedExecutorBackend: Started daemon with process name: 14@spark-exec"
        ),
        1 => format!("{ts} INFO CoarseGrainedExecutorBackend: Successfully registered with driver"),
        _ => format!(
            "{ts} INFO Executor: Finished task {}.0 in stage {}.0 (TID {}). {} bytes result sent to driver",
            (i + r) % 200,
            1 + (i / 200) % 9,
            i * 3 + 5,
            1800 + (r >> 8) % 3000
        ),
    }
}

fn envoy_line(_i: u64, r: u64, at: DateTime<Utc>) -> String {
    let path = pick(
        r >> 4,
        &[
            "/v1/chat/completions",
            "/api/v1/embeddings",
            "/api/v1/rank",
            "/healthz",
        ],
    );
    let code = if r.is_multiple_of(97) { 503 } else { 200 };
    format!(
        "[{}] \"POST {path} HTTP/1.1\" {code} - {} {} {} {} \"{}\" \"python-httpx/0.27.0\" \"{}-{}\" \"api.fleet.internal\" \"{}\"",
        at.to_rfc3339_opts(SecondsFormat::Millis, true),
        200 + (r >> 8) % 2000,
        300 + (r >> 16) % 20000,
        5 + (r >> 24) % 900,
        4 + (r >> 24) % 880,
        ip(r).split(':').next().unwrap_or(""),
        &hex32(r)[..8],
        &hex32(r)[8..12],
        ip(r >> 7)
    )
}

fn service_line(container: &str, i: u64, r: u64, at: DateTime<Utc>) -> String {
    let ts = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    if i == 0 {
        return format!(
            "{{\"ts\":\"{ts}\",\"level\":\"info\",\"logger\":\"{container}\",\"msg\":\"server listening\",\"addr\":\":8080\"}}"
        );
    }
    let (level, msg) = match r % 40 {
        0 => ("warn", "slow upstream response"),
        1 => ("info", "config reloaded"),
        _ => ("info", "request handled"),
    };
    let path = pick(
        r >> 5,
        &["/healthz", "/metrics", "/api/v1/items", "/api/v1/jobs"],
    );
    format!(
        "{{\"ts\":\"{ts}\",\"level\":\"{level}\",\"logger\":\"{container}\",\"msg\":\"{msg}\",\"method\":\"GET\",\"path\":\"{path}\",\"status\":200,\"duration_ms\":{:.1}}}",
        0.3 + (r >> 12) as f64 % 900.0 / 10.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at_secs(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().expect("a valid time")
    }

    fn pod(labels: Value, image: &str, containers: &[&str], state: Value, last: Value) -> Value {
        json!({
            "metadata": {"name": "p-1", "namespace": "ns", "uid": "u-1", "labels": labels,
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": containers.iter().map(|c| json!({"name": c, "image": image})).collect::<Vec<_>>()},
            "status": {"startTime": "2026-01-01T00:00:00Z", "containerStatuses": containers.iter().map(|c| json!({
                "name": c, "restartCount": 3, "state": state, "lastState": last,
            })).collect::<Vec<_>>()},
        })
    }

    fn running() -> Value {
        json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    }

    #[test]
    fn several_containers_need_a_name_and_list_the_choices() {
        let p = pod(json!({}), "img", &["a", "b"], running(), json!({}));
        let e = resolve(&p, &LogQuery::default()).err().map(|e| e.message);
        assert_eq!(
            e.as_deref(),
            Some("a container name must be specified for pod p-1, choose one of: [a b]")
        );
        let q = LogQuery {
            container: Some("c".into()),
            ..LogQuery::default()
        };
        assert_eq!(
            resolve(&p, &q).err().map(|e| (e.code, e.message)),
            Some((400, "container c is not valid for pod p-1".into()))
        );
    }

    #[test]
    fn previous_needs_a_terminated_run() {
        let p = pod(json!({}), "img", &["a"], running(), json!({}));
        let q = LogQuery {
            previous: true,
            ..LogQuery::default()
        };
        assert_eq!(
            resolve(&p, &q).err().map(|e| e.message).as_deref(),
            Some("previous terminated container \"a\" in pod \"p-1\" not found")
        );
    }

    /// The tokenizer pod waiting in CrashLoopBackOff after the run `last`.
    fn crash_looping_tokenizer(last: Value) -> Value {
        pod(
            json!({"sim.fleetdeck.dev/crashloop": "true"}),
            "tok",
            &["tokenizer"],
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            last,
        )
    }

    #[test]
    fn crash_loop_previous_run_ends_in_its_stack_trace() {
        let last = json!({"terminated": {"exitCode": 137, "startedAt": "2026-01-01T00:10:00Z", "finishedAt": "2026-01-01T00:11:00Z"}});
        let p = crash_looping_tokenizer(last);
        let q = LogQuery {
            previous: true,
            ..LogQuery::default()
        };
        let src = resolve(&p, &q).expect("previous run");
        let (lines, _) = src.history(&q, Utc::now());
        assert!(lines[0].text.contains("starting worker"));
        assert!(lines.iter().any(|l| l.text.starts_with("Traceback")));
        assert!(
            lines
                .last()
                .is_some_and(|l| l.text.starts_with("MemoryError"))
        );
        assert!(lines.windows(2).all(|w| w[0].at <= w[1].at), "time order");
    }

    #[test]
    fn a_waiting_crash_loops_previous_run_ended_before_its_last_run_began() {
        let last = json!({"terminated": {"exitCode": 1, "startedAt": "2026-01-01T00:10:00Z", "finishedAt": "2026-01-01T00:11:00Z"}});
        let p = crash_looping_tokenizer(last);
        let last_began = at_secs(1_767_225_600 + 600);
        let current = LogQuery::default();
        let (lines, _) = resolve(&p, &current)
            .expect("the last run")
            .history(&current, Utc::now());
        assert!(lines.iter().all(|l| l.at >= last_began), "{lines:?}");
        let previous = LogQuery {
            previous: true,
            ..LogQuery::default()
        };
        let (lines, _) = resolve(&p, &previous)
            .expect("the run before")
            .history(&previous, Utc::now());
        assert!(!lines.is_empty());
        assert!(
            lines.iter().all(|l| l.at < last_began),
            "the previous run's times, not the last run's: {lines:?}"
        );
    }

    #[test]
    fn a_crash_looping_vllm_revision_ends_in_the_engines_error() {
        let last = json!({"terminated": {"exitCode": 1, "startedAt": "2026-01-01T00:10:00Z", "finishedAt": "2026-01-01T00:10:00Z"}});
        let mut p = pod(
            json!({}),
            "vllm/vllm-openai:v0.6.4",
            &["llama"],
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            last,
        );
        p["metadata"]["annotations"] = json!({"sim.fleetdeck.dev/fault": "crashloop"});
        let q = LogQuery {
            previous: true,
            ..LogQuery::default()
        };
        let (lines, _) = resolve(&p, &q)
            .expect("previous run")
            .history(&q, Utc::now());
        assert!(
            lines[0].text.contains("vLLM API server version"),
            "{:?}",
            lines[0]
        );
        assert!(
            lines
                .last()
                .is_some_and(|l| l.text.starts_with("ValueError: The model's max seq len")),
            "{lines:?}"
        );
        assert!(lines.windows(2).all(|w| w[0].at <= w[1].at), "time order");
    }

    #[test]
    fn history_is_deterministic_capped_and_honours_tail_and_since() {
        let p = pod(
            json!({"training.kubeflow.org/job-name": "llm"}),
            "pytorch",
            &["pytorch"],
            running(),
            json!({}),
        );
        let src = resolve(&p, &LogQuery::default()).expect("source");
        let now = at_secs(1_767_225_600 + 86_400);
        let (all, end) = src.history(&LogQuery::default(), now);
        assert_eq!(all.len() as u64, MAX_HISTORY_LINES);
        assert_eq!(src.history(&LogQuery::default(), now).0, all);
        assert!(all[10].text.contains("| loss "), "{}", all[10].text);
        let tail = LogQuery {
            tail_lines: Some(3),
            ..LogQuery::default()
        };
        let (t, tend) = src.history(&tail, now);
        assert_eq!((t.len(), tend), (3, end));
        assert_eq!(t[2], all[all.len() - 1]);
        let since = LogQuery {
            since_seconds: Some(60),
            ..LogQuery::default()
        };
        let (s, _) = src.history(&since, now);
        assert!(!s.is_empty() && s.len() < 40, "{}", s.len());
        assert!(s.iter().all(|l| l.at >= now - ChronoDuration::seconds(60)));
    }

    #[test]
    fn timestamps_prefix_rfc3339_nano() {
        let l = LogLine {
            at: at_secs(0),
            text: "x".into(),
        };
        assert_eq!(render(&l, true), "1970-01-01T00:00:00.000000000Z x\n");
        assert_eq!(render(&l, false), "x\n");
    }
}
