//! The sandboxed Rhai engine and the host API a runbook sees: getter-only views of the fleet
//! (copies; changing them changes nothing) and requests for mutations, each handed to the
//! `Host`, which puts it through the guard. Scripts get no file, network, process or
//! environment access, `import` cannot read the disk, and operations, call depth, expression
//! depth, string/array/map sizes and script time are capped. A pass of a run also has a
//! wall-clock limit that host calls count against: `sleep` and `wait_for` are cut at it and the
//! pass fails with "deadline exceeded", so no script holds a run worker past its limit.

use std::any::TypeId;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Position, Scope};
use serde::Serialize;

use super::meta::{self, RunbookError, RunbookMeta};
use crate::actions::{HostArg, HostCall, MUTATION_SPECS, Mutation};
use crate::model::Snapshot;
use crate::model::signal::Signal;

/// The sandbox's caps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_fn_expr_depth: usize,
    pub max_string: usize,
    pub max_array: usize,
    pub max_map: usize,
    /// Time the script itself may run (time spent inside host calls such as a drain is not
    /// counted: those have their own timeouts).
    pub deadline: Duration,
    /// Wall-clock time one pass of a run may take, host calls (`sleep`, `wait_for`, a drain,
    /// an approval) included (`[runbooks] run_timeout`).
    pub run_timeout: Duration,
    /// Timeline entries and notifications one pass of a run may write (`[runbooks]
    /// max_entries_per_run`): a loop of notes must not fill the store before the deadline.
    pub max_entries_per_run: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: 2_000_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_fn_expr_depth: 32,
            max_string: 64 * 1024,
            max_array: 10_000,
            max_map: 10_000,
            deadline: Duration::from_secs(5),
            run_timeout: Duration::from_secs(15 * 60),
            max_entries_per_run: crate::config::DEFAULT_MAX_ENTRIES_PER_RUN,
        }
    }
}

/// What a runbook reaches through: fleetdeck's side of the host API.
pub trait Host: Send + Sync {
    fn snapshot(&self) -> Arc<Snapshot>;
    /// Pods on a node of the run's cluster (read from the API).
    fn pods_on(&self, node: &str) -> Result<serde_json::Value, String>;
    /// A mutation: the guard decides, then `actions` performs it. The answer is what the
    /// script sees (`#{ outcome: "done" | "planned" | "refused" | …, … }`).
    fn request(&self, mutation: Mutation) -> Result<serde_json::Value, String>;
    fn note(&self, text: &str) -> Result<(), String>;
    /// The runbook checked its effect and the fault is still there (`unresolved(reason)`): the
    /// run cannot be `remediated`, whatever its steps did. A host that keeps no outcome need
    /// not implement it.
    fn unresolved(&self, reason: &str) -> Result<(), String> {
        let _ = reason;
        Ok(())
    }
    /// Queues a message for the `[notify.sinks.NAME]` sink `sink`; returns at once.
    fn notify(&self, sink: &str, body: serde_json::Value) -> Result<serde_json::Value, String>;
    /// Blocks the run until a human approves (true) or denies (false).
    fn require_approval(&self, reason: &str) -> Result<bool, String>;
    /// As `require_approval`, waiting at most `timeout` (what is left of the run's time; the
    /// host's own approval timeout may be shorter). A host that answers at once need not
    /// implement it.
    fn require_approval_within(&self, reason: &str, timeout: Duration) -> Result<bool, String> {
        let _ = timeout;
        self.require_approval(reason)
    }
    /// Waits until `condition` holds for `target` (e.g. "node_drained", "rollout_complete",
    /// "burn_below"), or the timeout passes (false).
    fn wait_for(&self, condition: &str, target: &str, timeout: Duration) -> Result<bool, String>;
}

/// One loaded runbook: metadata read without running it, the body compiled.
#[derive(Clone)]
pub struct Runbook {
    pub meta: RunbookMeta,
    pub path: PathBuf,
    ast: AST,
    /// Where `fn run` starts: named when the engine stops a script without a position
    /// (operation caps and the deadline are checked between statements).
    run_at: (usize, usize),
    /// The script as written: `runbook check` walks it compiled without the optimizer, which
    /// drops the calls in code it can prove dead (`if false { no_such_fn() }`).
    source: Arc<str>,
}

impl std::fmt::Debug for Runbook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runbook")
            .field("name", &self.meta.name)
            .field("path", &self.path)
            .finish()
    }
}

fn err_at(file: &Path, pos: Position, message: impl Into<String>) -> RunbookError {
    RunbookError::new(
        file,
        pos.line().unwrap_or(0),
        pos.position().unwrap_or(0),
        message,
    )
}

/// An engine with the caps and none of the doors.
fn sandbox(limits: &Limits) -> Engine {
    let mut engine = Engine::new();
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_fn_expr_depth);
    engine.set_max_string_size(limits.max_string);
    engine.set_max_array_size(limits.max_array);
    engine.set_max_map_size(limits.max_map);
    engine.set_max_modules(4);
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.disable_symbol("eval");
    engine.on_print(|s| tracing::info!(target: "runbook", "{s}"));
    engine.on_debug(|s, src, pos| tracing::debug!(target: "runbook", ?src, %pos, "{s}"));
    engine
}

impl Runbook {
    /// Reads and compiles a runbook file; every problem names the file, line and column.
    pub fn load(path: &Path) -> Result<Self, RunbookError> {
        let source = std::fs::read_to_string(path)
            .map_err(|e| RunbookError::new(path, 0, 0, format!("cannot read it: {e}")))?;
        Self::from_source(path, &source)
    }

    pub fn from_source(path: &Path, source: &str) -> Result<Self, RunbookError> {
        let meta = meta::parse(path, source)?;
        let engine = sandbox(&Limits::default());
        let ast = engine
            .compile(source)
            .map_err(|e| err_at(path, e.1, e.0.to_string()))?;
        if !ast
            .iter_functions()
            .any(|f| f.name == "run" && f.params.len() == 1)
        {
            return Err(RunbookError::new(
                path,
                1,
                1,
                "no `fn run(signal) { … }`: the engine calls it with the triggering signal",
            ));
        }
        let run_at = source
            .lines()
            .enumerate()
            .find_map(|(i, l)| l.find("fn run").map(|c| (i + 1, c + 1)))
            .unwrap_or((1, 1));
        Ok(Self {
            meta,
            path: path.to_path_buf(),
            ast,
            run_at,
            source: source.into(),
        })
    }

    /// Runs `run(signal)` against `host` in a fresh sandbox.
    pub fn run(
        &self,
        host: Arc<dyn Host>,
        signal: &Signal,
        limits: &Limits,
    ) -> Result<Dynamic, RunbookError> {
        let mut engine = sandbox(limits);
        let in_host = Arc::new(AtomicU64::new(0));
        let clock = RunClock {
            started: Instant::now(),
            limit: limits.run_timeout,
        };
        register_host(&mut engine, host, in_host.clone(), clock);
        let deadline = limits.deadline;
        engine.on_progress(move |ops| {
            if ops % 1024 != 0 {
                return None;
            }
            if clock.remaining().is_zero() {
                return Some(Dynamic::from(clock.exceeded()));
            }
            let hosted = Duration::from_micros(in_host.load(Ordering::Relaxed));
            (clock.started.elapsed().saturating_sub(hosted) > deadline)
                .then(|| Dynamic::from(format!("the script ran past its {deadline:?} deadline")))
        });
        let arg = rhai::serde::to_dynamic(signal)
            .map_err(|e| RunbookError::new(&self.path, 0, 0, e.to_string()))?;
        let mut scope = Scope::new();
        engine
            .call_fn_with_options::<Dynamic>(
                // The top level holds only constants (RUNBOOK, settings): evaluating it makes
                // them visible to functions as `global::NAME`.
                CallFnOptions::new().eval_ast(true),
                &mut scope,
                &self.ast,
                "run",
                (arg,),
            )
            .map_err(|e| self.explain(*e))
    }

    fn explain(&self, e: EvalAltResult) -> RunbookError {
        // Errors inside `run` (and the functions it calls) come wrapped, once per call level;
        // the innermost one says what went wrong, the deepest known position where.
        let mut pos = e.position();
        let mut e = e;
        while let EvalAltResult::ErrorInFunctionCall(_, _, inner, at) = e {
            if !at.is_none() {
                pos = at;
            }
            if !inner.position().is_none() {
                pos = inner.position();
            }
            e = *inner;
        }
        let message = match &e {
            EvalAltResult::ErrorTerminated(reason, _) => {
                format!(
                    "stopped: {}",
                    reason.clone().into_string().unwrap_or_default()
                )
            }
            EvalAltResult::ErrorTooManyOperations(_) => {
                "stopped: too many operations (a runaway loop?)".into()
            }
            _ => e.to_string(),
        };
        if pos.is_none() {
            let (line, column) = self.run_at;
            return RunbookError::new(
                &self.path,
                line,
                column,
                format!("runbook {}: in fn run: {message}", self.meta.name),
            );
        }
        err_at(
            &self.path,
            pos,
            format!("runbook {}: {message}", self.meta.name),
        )
    }
}

impl Runbook {
    /// The script compiled as written, every call kept, for `runbook check`'s walk of its
    /// calls.
    pub(super) fn unoptimized_ast(&self) -> Result<AST, RunbookError> {
        let mut engine = sandbox(&Limits::default());
        engine.set_optimization_level(rhai::OptimizationLevel::None);
        engine
            .compile(&*self.source)
            .map_err(|e| err_at(&self.path, e.1, e.0.to_string()))
    }
}

/// The native functions a runbook's engine knows, by name and argument count: Rhai's built-ins,
/// and with `host` the host API as `register_host` registers it. Getters, setters and operators
/// are left out: a script never calls them by name.
pub(super) fn native_functions(host: Option<Arc<dyn Host>>) -> Vec<(String, usize)> {
    let limits = Limits::default();
    let mut engine = sandbox(&limits);
    if let Some(host) = host {
        let clock = RunClock {
            started: Instant::now(),
            limit: limits.run_timeout,
        };
        register_host(&mut engine, host, Arc::new(AtomicU64::new(0)), clock);
    }
    engine.collect_fn_metadata(
        None,
        |f| {
            let name = f.metadata.name.as_str();
            let callable = !name.contains('$')
                && name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_');
            callable.then(|| (name.to_string(), f.metadata.num_params))
        },
        true,
    )
}

/// Loads every `*.rhai` in `dir`: the good ones, and each broken one's error (the rest still
/// load and run).
pub fn load_dir(dir: &Path) -> (Vec<Runbook>, Vec<RunbookError>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
            .collect(),
        Err(e) => {
            bad.push(RunbookError::new(
                dir,
                0,
                0,
                format!("cannot read the runbook directory: {e}"),
            ));
            return (good, bad);
        }
    };
    files.sort();
    for f in files {
        match Runbook::load(&f) {
            Ok(r) => {
                if let Some(other) = good.iter().find(|g: &&Runbook| g.meta.name == r.meta.name) {
                    bad.push(RunbookError::new(
                        &f,
                        1,
                        1,
                        format!(
                            "runbook name {:?} is already taken by {}",
                            r.meta.name,
                            other.path.display()
                        ),
                    ));
                } else {
                    good.push(r);
                }
            }
            Err(e) => bad.push(e),
        }
    }
    (good, bad)
}

fn to_dyn<T: Serialize>(v: &T) -> Dynamic {
    rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT)
}

fn host_err(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(message.into(), Position::NONE))
}

fn from_map(m: &rhai::Map) -> serde_json::Value {
    rhai::serde::from_dynamic(&Dynamic::from_map(m.clone())).unwrap_or(serde_json::Value::Null)
}

/// A script's value as a mutation's constructor reads it.
fn host_arg(v: &Dynamic) -> HostArg {
    if v.is_unit() {
        HostArg::Unit
    } else if let Ok(b) = v.as_bool() {
        HostArg::Bool(b)
    } else if let Ok(i) = v.as_int() {
        HostArg::Int(i)
    } else if let Ok(f) = v.as_float() {
        HostArg::Float(f)
    } else if v.is_string() {
        HostArg::Text(v.to_string())
    } else if v.is_map() {
        HostArg::Map(rhai::serde::from_dynamic(v).unwrap_or(serde_json::Value::Null))
    } else {
        HostArg::Other(v.to_string())
    }
}

/// A mutation that waits (a drain for its pods) waits at most until the run's deadline.
fn within_deadline(mut m: Mutation, clock: RunClock) -> Mutation {
    if let Some(limit) = m.wait_limit_mut() {
        *limit = (*limit).min(clock.remaining().as_secs().max(1));
    }
    m
}

/// The wall-clock limit of one pass of a run, host calls included.
#[derive(Debug, Clone, Copy)]
struct RunClock {
    started: Instant,
    limit: Duration,
}

impl RunClock {
    fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.started.elapsed())
    }

    fn exceeded(&self) -> String {
        format!(
            "deadline exceeded: a run may take {} ([runbooks] run_timeout), host calls included",
            humantime::format_duration(self.limit)
        )
    }
}

/// Rhai's own `sleep` blocks the thread where no progress check can stop it; this one is cut at
/// the run's deadline. A sleep that would pass it fails at once: the run could not finish in
/// time anyway, and its worker is free sooner.
fn bounded_sleep(clock: RunClock, seconds: f64) -> Result<(), Box<EvalAltResult>> {
    if seconds.is_nan() || seconds <= 0.0 {
        return Ok(());
    }
    let left = clock.remaining();
    if seconds >= left.as_secs_f64() {
        return Err(host_err(format!(
            "sleep({seconds}) would pass the run's deadline ({} left): {}",
            humantime::format_duration(Duration::from_secs(left.as_secs())),
            clock.exceeded()
        )));
    }
    std::thread::sleep(Duration::from_secs_f64(seconds));
    Ok(())
}

/// The latest `nodes()` view: (snapshot address, version, time taken) and its script form.
type NodesView = Option<((usize, u64, i64), Dynamic)>;
static NODES_VIEW: std::sync::Mutex<NodesView> = std::sync::Mutex::new(None);

/// The host API. Views are copies of the latest snapshot; mutations go to `Host::request`.
fn register_host(
    engine: &mut Engine,
    host: Arc<dyn Host>,
    in_host: Arc<AtomicU64>,
    clock: RunClock,
) {
    // Time arithmetic on the RFC 3339 times signals carry (first_seen, deadlines).
    engine.register_fn(
        "seconds_since",
        |at: &str| -> Result<f64, Box<EvalAltResult>> {
            let t = chrono::DateTime::parse_from_rfc3339(at).map_err(|e| {
                host_err(format!("seconds_since({at:?}): not an RFC 3339 time: {e}"))
            })?;
            Ok(
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_milliseconds() as f64
                    / 1000.0,
            )
        },
    );
    // Wraps a host call so its time does not count against the script's deadline (it counts
    // against the run's wall-clock limit, which no call may start past).
    let timed = {
        let in_host = in_host.clone();
        move |f: &dyn Fn() -> Result<Dynamic, Box<EvalAltResult>>| {
            if clock.remaining().is_zero() {
                return Err(host_err(clock.exceeded()));
            }
            let t = Instant::now();
            let r = f();
            in_host.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
            r
        }
    };
    let t = timed.clone();
    engine.register_fn("sleep", move |seconds: rhai::INT| {
        t(&|| bounded_sleep(clock, seconds as f64).map(|_| Dynamic::UNIT)).map(|_| ())
    });
    let t = timed.clone();
    engine.register_fn("sleep", move |seconds: rhai::FLOAT| {
        t(&|| bounded_sleep(clock, seconds).map(|_| Dynamic::UNIT)).map(|_| ())
    });
    let h = host.clone();
    engine.register_fn("nodes", move || -> Dynamic {
        let snap = h.snapshot();
        // Built once per snapshot, whichever run asks first: every runbook that looks at the
        // nodes of one snapshot shares the conversion.
        let key = (
            Arc::as_ptr(&snap) as usize,
            snap.version,
            snap.taken_at
                .and_then(|t| t.timestamp_nanos_opt())
                .unwrap_or(0),
        );
        if let Ok(c) = NODES_VIEW.lock()
            && let Some((k, nodes)) = c.as_ref()
            && *k == key
        {
            return nodes.clone();
        }
        let nodes: rhai::Array = snap
            .clusters
            .iter()
            .flat_map(|c| c.nodes.iter().map(move |n| (c.name.as_str(), n)))
            .map(|(cluster, n)| {
                let mut d = to_dyn(n);
                if let Some(mut m) = d.write_lock::<rhai::Map>() {
                    m.insert("cluster".into(), cluster.into());
                }
                d
            })
            .collect();
        let nodes = Dynamic::from_array(nodes);
        if let Ok(mut c) = NODES_VIEW.lock() {
            *c = Some((key, nodes.clone()));
        }
        nodes
    });
    let h = host.clone();
    engine.register_fn("gpus", move |node: &str| -> Dynamic {
        let snap = h.snapshot();
        let gpus: Vec<_> = snap.gpus.iter().filter(|g| g.node == node).collect();
        to_dyn(&gpus)
    });
    let h = host.clone();
    engine.register_fn("endpoints", move || -> Dynamic {
        to_dyn(&h.snapshot().endpoints)
    });
    let h = host.clone();
    engine.register_fn("signals", move || -> Dynamic {
        to_dyn(&h.snapshot().signals)
    });
    let h = host.clone();
    engine.register_fn("pdbs", move || -> Dynamic {
        let snap = h.snapshot();
        let pdbs: Vec<_> = snap.clusters.iter().flat_map(|c| c.pdbs.iter()).collect();
        to_dyn(&pdbs)
    });
    let h = host.clone();
    engine.register_fn("deployments", move || -> Dynamic {
        let snap = h.snapshot();
        let d: Vec<_> = snap
            .clusters
            .iter()
            .flat_map(|c| c.deployments.iter())
            .collect();
        to_dyn(&d)
    });
    let (h, t) = (host.clone(), timed.clone());
    engine.register_fn(
        "pods_on",
        move |node: &str| -> Result<Dynamic, Box<EvalAltResult>> {
            t(&|| h.pods_on(node).map(|v| to_dyn(&v)).map_err(host_err))
        },
    );

    // Mutations: every one is a request the guard answers. A bad argument (a negative
    // revision, an unknown taint effect) stops the script here, before any request.
    let request = {
        let (h, t) = (host.clone(), timed.clone());
        move |mutation: Result<Mutation, crate::actions::ActionError>| -> Result<Dynamic, Box<EvalAltResult>> {
            let mutation = mutation.map_err(|e| host_err(e.to_string()))?;
            t(&|| {
                h.request(mutation.clone())
                    .map(|v| to_dyn(&v))
                    .map_err(host_err)
            })
        }
    };
    // Every row of the table is registered the same way, one overload per arity, so a new
    // action needs no line here. Arguments arrive as any type: the row's constructor names a
    // wrong one ("cordon argument 1 (node): 5 is an integer, not a string").
    for spec in MUTATION_SPECS {
        for &arity in spec.arities {
            let (h, r) = (host.clone(), request.clone());
            engine.register_raw_fn(
                spec.host_fn,
                vec![TypeId::of::<Dynamic>(); arity],
                move |_, args| -> Result<Dynamic, Box<EvalAltResult>> {
                    let args: Vec<HostArg> = args.iter().map(|a| host_arg(a)).collect();
                    let call = HostCall {
                        spec,
                        args: &args,
                        snapshot: h.snapshot(),
                    };
                    r((spec.build)(&call).map(|m| within_deadline(m, clock)))
                },
            );
        }
    }
    let h = host.clone();
    engine.register_fn(
        "note",
        move |text: &str| -> Result<(), Box<EvalAltResult>> { h.note(text).map_err(host_err) },
    );
    let h = host.clone();
    engine.register_fn(
        "unresolved",
        move |reason: &str| -> Result<(), Box<EvalAltResult>> {
            h.unresolved(reason).map_err(host_err)
        },
    );
    // `notify(sink, #{…})` and `notify(sink, "text")` send alike; a text is the body's summary.
    let notify = {
        let (h, t) = (host.clone(), timed.clone());
        move |sink: &str, body: serde_json::Value| -> Result<Dynamic, Box<EvalAltResult>> {
            t(&|| {
                h.notify(sink, body.clone())
                    .map(|v| to_dyn(&v))
                    .map_err(host_err)
            })
        }
    };
    let send = notify.clone();
    engine.register_fn("notify", move |sink: &str, body: rhai::Map| {
        send(sink, from_map(&body))
    });
    engine.register_fn("notify", move |sink: &str, text: &str| {
        notify(sink, serde_json::json!({ "summary": text }))
    });
    let (h, t) = (host.clone(), timed.clone());
    engine.register_fn(
        "require_approval",
        move |reason: &str| -> Result<Dynamic, Box<EvalAltResult>> {
            t(&|| {
                h.require_approval_within(reason, clock.remaining())
                    .map(Dynamic::from)
                    .map_err(host_err)
            })
        },
    );
    let (h, t) = (host, timed);
    engine.register_fn(
        "wait_for",
        move |condition: &str,
              target: &str,
              timeout: &str|
              -> Result<Dynamic, Box<EvalAltResult>> {
            let d = humantime::parse_duration(timeout)
                .map_err(|e| host_err(format!("wait_for timeout {timeout:?}: {e}")))?;
            // Waits at most until the run's deadline; a wait cut there that saw nothing fails
            // the run rather than answering false for a timeout the script did not ask for.
            let left = clock.remaining();
            let cut = d > left;
            t(&|| match h.wait_for(condition, target, d.min(left)) {
                Ok(false) if cut => Err(host_err(format!(
                    "wait_for({condition:?}, {target:?}, {timeout:?}) was cut at the run's deadline: {}",
                    clock.exceeded()
                ))),
                r => r.map(Dynamic::from).map_err(host_err),
            })
        },
    );
}
