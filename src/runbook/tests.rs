use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::actions::Mutation;
use crate::model::Snapshot;
use crate::model::signal::{Severity, Signal, Subject};

#[derive(Default)]
struct FakeHost {
    intents: Mutex<Vec<Mutation>>,
    notes: Mutex<Vec<String>>,
    approve: bool,
    /// `wait_for` waits out its timeout and answers false (a condition that never holds).
    never_holds: bool,
    waited: Mutex<Vec<Duration>>,
}

impl Host for FakeHost {
    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::new(Snapshot::default())
    }
    fn pods_on(&self, node: &str) -> Result<serde_json::Value, String> {
        Ok(serde_json::json!([{ "name": format!("{node}-pod"), "gpus": 8 }]))
    }
    fn request(&self, mutation: Mutation) -> Result<serde_json::Value, String> {
        self.intents.lock().unwrap().push(mutation);
        Ok(serde_json::json!({ "outcome": "planned" }))
    }
    fn note(&self, text: &str) -> Result<(), String> {
        self.notes.lock().unwrap().push(text.into());
        Ok(())
    }
    fn notify(&self, _sink: &str, _body: serde_json::Value) -> Result<serde_json::Value, String> {
        Err("notify is not wired in this test".into())
    }
    fn require_approval(&self, _reason: &str) -> Result<bool, String> {
        Ok(self.approve)
    }
    fn wait_for(&self, _c: &str, _t: &str, d: Duration) -> Result<bool, String> {
        self.waited.lock().unwrap().push(d);
        if self.never_holds {
            std::thread::sleep(d);
            return Ok(false);
        }
        Ok(true)
    }
}

const HEADER: &str = r#"const RUNBOOK = #{
    name: "t",
    description: "test",
    trigger: #{ signal: "gpu.xid" },
    cooldown: "1m",
};
"#;

fn runbook(body: &str) -> Runbook {
    Runbook::from_source(Path::new("runbooks/t.rhai"), &format!("{HEADER}{body}")).unwrap()
}

fn signal() -> Signal {
    Signal {
        kind: "gpu.xid".into(),
        severity: Severity::Critical,
        subject: Subject {
            cluster: "prod".into(),
            node: Some("gpu-node-7".into()),
            ..Subject::default()
        },
        summary: "XID 79".into(),
        evidence: [("xid".to_string(), serde_json::json!(79))].into(),
        action: None,
        first_seen: chrono::Utc::now(),
        dedup_key: "gpu.xid:prod/gpu-node-7/GPU-3".into(),
    }
}

fn run(rb: &Runbook, host: &Arc<FakeHost>) -> Result<rhai::Dynamic, RunbookError> {
    let limits = Limits {
        deadline: Duration::from_millis(500),
        ..Limits::default()
    };
    rb.run(host.clone(), &signal(), &limits)
}

#[test]
fn mutations_become_requests_to_the_host() {
    let rb = runbook(
        r#"
fn run(signal) {
    let node = signal.subject.node;
    if require_approval("cordon " + node) {
        cordon(node);
        drain(node, #{ timeout: "5m", grace_period: 30, delete_emptydir_data: true });
        note("cordoned and drained " + node + " after XID " + signal.evidence.xid);
    }
}
"#,
    );
    let host = Arc::new(FakeHost {
        approve: true,
        ..FakeHost::default()
    });
    let _ = run(&rb, &host).unwrap();
    let intents = host.intents.lock().unwrap().clone();
    assert_eq!(
        intents[0],
        Mutation::Cordon {
            node: "gpu-node-7".into()
        }
    );
    match &intents[1] {
        Mutation::Drain { node, options } => {
            assert_eq!(node, "gpu-node-7");
            assert_eq!(options.timeout_s, 300);
            assert_eq!(options.grace_period_s, Some(30));
            assert!(options.delete_emptydir_data && options.ignore_daemonsets);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        host.notes.lock().unwrap()[0],
        "cordoned and drained gpu-node-7 after XID 79"
    );
}

#[test]
fn a_denied_approval_changes_nothing() {
    let rb = runbook("fn run(signal) { if require_approval(\"x\") { cordon(\"n\"); } }");
    let host = Arc::new(FakeHost::default());
    let _ = run(&rb, &host).unwrap();
    assert!(host.intents.lock().unwrap().is_empty());
}

#[test]
fn a_runaway_loop_stops_with_the_runbook_line_and_column() {
    let rb = runbook("fn run(signal) {\n    let x = 0;\n    loop { x += 1; }\n}\n");
    let host = Arc::new(FakeHost::default());
    let e = run(&rb, &host).unwrap_err();
    assert_eq!(e.file, "runbooks/t.rhai");
    assert!(
        e.message.contains("runbook t") && e.message.contains("stopped"),
        "{e}"
    );
    assert!(e.line >= 7, "{e}");
}

#[test]
fn deep_recursion_and_huge_strings_are_stopped() {
    let rb = runbook("fn f(n) { f(n + 1) }\nfn run(signal) { f(0) }\n");
    let e = run(&rb, &Arc::new(FakeHost::default())).unwrap_err();
    assert!(e.message.contains("runbook t"), "{e}");
    let rb = runbook("fn run(signal) { let s = \"x\"; loop { s += s; } }\n");
    let e = run(&rb, &Arc::new(FakeHost::default())).unwrap_err();
    assert!(e.message.to_lowercase().contains("length"), "{e}");
}

#[test]
fn import_cannot_read_the_disk() {
    let rb = runbook("fn run(signal) { import \"/etc/passwd\" as p; }\n");
    let e = run(&rb, &Arc::new(FakeHost::default())).unwrap_err();
    assert!(e.line > 0, "{e}");
}

#[test]
fn host_errors_surface_with_the_calling_line() {
    let rb = runbook("fn run(signal) {\n    notify(\"http://x\", #{});\n}\n");
    let e = run(&rb, &Arc::new(FakeHost::default())).unwrap_err();
    assert!(e.message.contains("notify is not wired"), "{e}");
    assert_eq!(e.line, 8, "{e}");
}

#[test]
fn bad_drain_options_are_named() {
    let rb = runbook("fn run(signal) { drain(\"n\", #{ timout: \"5m\" }); }\n");
    let e = run(&rb, &Arc::new(FakeHost::default())).unwrap_err();
    assert!(e.message.contains("unknown drain option timout"), "{e}");
}

#[test]
fn a_negative_rollback_revision_stops_the_script_before_any_request() {
    let rb = runbook("fn run(signal) {\n    rollback(\"serving\", \"llama\", -1);\n}\n");
    let host = Arc::new(FakeHost::default());
    let e = run(&rb, &host).unwrap_err();
    assert!(
        e.message.contains("rollback revision") && e.message.contains("-1"),
        "{e}"
    );
    assert_eq!(e.line, HEADER.lines().count() + 2, "{e}");
    assert!(
        host.intents.lock().unwrap().is_empty(),
        "no request reached the host"
    );
}

#[test]
fn negative_replicas_stop_the_script_before_any_request() {
    let rb = runbook("fn run(signal) { scale(\"serving\", \"llama\", -3); }\n");
    let host = Arc::new(FakeHost::default());
    let e = run(&rb, &host).unwrap_err();
    assert!(
        e.message.contains("scale replicas") && e.message.contains("-3"),
        "{e}"
    );
    assert!(
        host.intents.lock().unwrap().is_empty(),
        "no request reached the host"
    );
}

#[test]
fn string_arguments_become_typed_mutations_or_named_errors() {
    let rb = runbook(
        r#"
fn run(signal) {
    taint("n1", "spot", "", "NoExecute");
    annotate("Deployment", "serving", "llama", "fleetdeck/paused", ());
}
"#,
    );
    let host = Arc::new(FakeHost::default());
    let _ = run(&rb, &host).unwrap();
    assert_eq!(
        *host.intents.lock().unwrap(),
        vec![
            Mutation::Taint {
                node: "n1".into(),
                key: "spot".into(),
                value: None,
                effect: crate::actions::TaintEffect::NoExecute,
            },
            Mutation::Annotate {
                kind: crate::actions::ObjectKind::Deployment,
                namespace: "serving".into(),
                name: "llama".into(),
                key: "fleetdeck/paused".into(),
                value: None,
            },
        ]
    );
    let rb = runbook("fn run(signal) { taint(\"n1\", \"spot\", \"\", \"NoSchedul\"); }\n");
    let e = run(&rb, &Arc::new(FakeHost::default())).unwrap_err();
    assert!(e.message.contains("\"NoSchedul\""), "{e}");
}

#[test]
fn a_file_without_run_or_with_a_syntax_error_is_refused_at_load() {
    let e =
        Runbook::from_source(Path::new("r.rhai"), &format!("{HEADER}fn other() {{}}")).unwrap_err();
    assert!(e.message.contains("fn run(signal)"), "{e}");
    let e = Runbook::from_source(
        Path::new("r.rhai"),
        &format!("{HEADER}fn run(s) {{ let = ; }}"),
    )
    .unwrap_err();
    assert_eq!(e.line, 7, "{e}");
}

#[test]
fn a_broken_file_in_the_directory_is_reported_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.rhai"),
        format!("{HEADER}fn run(s) {{ }}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b.rhai"), "const RUNBOOK = #{ name: ").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a runbook").unwrap();
    let (good, bad) = load_dir(dir.path());
    assert_eq!(good.len(), 1);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].file.ends_with("b.rhai"), "{}", bad[0]);
}

fn run_within(
    rb: &Runbook,
    host: &Arc<FakeHost>,
    run_timeout: Duration,
) -> Result<rhai::Dynamic, RunbookError> {
    let limits = Limits {
        run_timeout,
        ..Limits::default()
    };
    rb.run(host.clone(), &signal(), &limits)
}

#[test]
fn a_sleep_past_the_run_deadline_fails_the_run_at_once() {
    let rb = runbook("fn run(signal) {\n    sleep(100000);\n    cordon(\"n\");\n}\n");
    let host = Arc::new(FakeHost::default());
    let started = std::time::Instant::now();
    let e = run_within(&rb, &host, Duration::from_secs(30)).unwrap_err();
    assert!(
        e.message.contains("deadline exceeded") && e.message.contains("run_timeout"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "it slept");
    assert!(host.intents.lock().unwrap().is_empty());
}

#[test]
fn sleeps_within_the_deadline_sleep_and_count_against_it() {
    let rb = runbook("fn run(signal) { sleep(0.05); sleep(0); 1 }");
    let host = Arc::new(FakeHost::default());
    assert_eq!(
        run_within(&rb, &host, Duration::from_secs(5))
            .unwrap()
            .as_int()
            .unwrap(),
        1
    );
    // Short sleeps add up: the run stops at its deadline, not at the 5 s script limit (the
    // time inside sleep is not script time).
    let rb = runbook("fn run(signal) { loop { sleep(0.2); } }");
    let e = run_within(&rb, &host, Duration::from_secs(1)).unwrap_err();
    assert!(e.message.contains("deadline exceeded"), "{e}");
}

#[test]
fn wait_for_is_cut_at_the_run_deadline_and_then_fails() {
    let rb = runbook(
        "fn run(signal) {\n    if !wait_for(\"signal_cleared\", \"gpu.xid\", \"1h\") { note(\"timed out\"); }\n}\n",
    );
    let host = Arc::new(FakeHost {
        never_holds: true,
        ..FakeHost::default()
    });
    let e = run_within(&rb, &host, Duration::from_millis(500)).unwrap_err();
    assert!(e.message.contains("deadline exceeded"), "{e}");
    assert!(host.waited.lock().unwrap()[0] <= Duration::from_millis(500));
    assert!(host.notes.lock().unwrap().is_empty());
    // A wait that ends within the deadline answers false as before.
    let rb = runbook(
        "fn run(signal) { if !wait_for(\"signal_cleared\", \"gpu.xid\", \"100ms\") { note(\"timed out\"); } }",
    );
    let _ = run_within(&rb, &host, Duration::from_secs(30)).unwrap();
    assert_eq!(host.notes.lock().unwrap().as_slice(), ["timed out"]);
}

#[test]
fn nonsensical_action_arguments_stop_the_script_before_any_request() {
    for (call, says) in [
        (
            "rollback(\"serving\", \"llama-chat\", -1)",
            "-1 is negative",
        ),
        (
            "rollback(\"serving\", \"llama-chat\", 0)",
            "0 is not a revision",
        ),
        (
            "scale(\"serving\", \"llama-chat\", -3)",
            "-3 is not a count",
        ),
        (
            "scale(\"serving\", \"llama-chat\", 10000000)",
            "more than a cluster can run",
        ),
    ] {
        let rb = runbook(&format!("fn run(signal) {{ {call}; }}"));
        let host = Arc::new(FakeHost::default());
        let e = run(&rb, &host).unwrap_err();
        assert!(e.message.contains(says), "{call}: {e}");
        assert!(host.intents.lock().unwrap().is_empty(), "{call}");
    }
}

#[test]
fn an_action_argument_of_the_wrong_type_is_named_with_how_to_call_it() {
    for (call, says) in [
        (
            "cordon(5)",
            "cordon argument 1 (node): 5 is an integer, not a string: call it as cordon(node)",
        ),
        (
            "drain(\"n1\", \"5m\")",
            "drain argument 2 (options): 5m is a string, not a map",
        ),
        (
            "scale(\"serving\", \"llama\", 2.5)",
            "scale argument 3 (replicas): 2.5 is a float, not an integer",
        ),
    ] {
        let rb = runbook(&format!("fn run(signal) {{ {call}; }}"));
        let host = Arc::new(FakeHost::default());
        let e = run(&rb, &host).unwrap_err();
        assert!(e.message.contains(says), "{call}: {e}");
        assert!(host.intents.lock().unwrap().is_empty(), "{call}");
    }
}

#[test]
fn a_drain_waits_at_most_until_the_run_deadline() {
    let rb = runbook("fn run(signal) { drain(\"n1\"); drain(\"n2\", #{ timeout: \"1h\" }); }");
    let host = Arc::new(FakeHost::default());
    let _ = run_within(&rb, &host, Duration::from_secs(120)).unwrap();
    let intents = host.intents.lock().unwrap().clone();
    assert_eq!(intents.len(), 2);
    for i in intents {
        match i {
            Mutation::Drain { options, .. } => {
                assert!(options.timeout_s <= 120, "{options:?}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn evict_pod_is_a_request_to_the_guard_that_waits_at_most_until_the_run_deadline() {
    let rb = runbook("fn run(signal) { evict_pod(\"serving\", \"llama-0\"); }");
    let host = Arc::new(FakeHost::default());
    let _ = run_within(&rb, &host, Duration::from_secs(60)).unwrap();
    match host.intents.lock().unwrap().as_slice() {
        [
            Mutation::EvictPod {
                namespace,
                name,
                timeout_s,
            },
        ] => {
            assert_eq!((namespace.as_str(), name.as_str()), ("serving", "llama-0"));
            assert!(*timeout_s <= 60, "{timeout_s}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_engine_registers_exactly_the_host_functions_of_the_table() {
    use std::collections::BTreeSet;
    let builtins: BTreeSet<(String, usize)> = engine::native_functions(None).into_iter().collect();
    let host: Arc<dyn Host> = Arc::new(FakeHost::default());
    let registered: BTreeSet<(String, usize)> = engine::native_functions(Some(host))
        .into_iter()
        .filter(|f| !builtins.contains(f))
        .collect();
    let table: BTreeSet<(String, usize)> = check::host_functions()
        .iter()
        .flat_map(|f| f.arities.iter().map(|a| (f.name.to_string(), *a)))
        .collect();
    // `sleep` replaces Rhai's own, so it is a built-in by name and arity as well.
    let table: BTreeSet<(String, usize)> = table
        .into_iter()
        .filter(|f| !builtins.contains(f))
        .collect();
    assert_eq!(registered, table);
}

#[test]
fn delete_pod_and_restart_rollout_are_requests_to_the_guard() {
    let host = Arc::new(FakeHost::default());
    let rb = runbook(
        "fn run(signal) { delete_pod(\"serving\", \"llama-0\"); restart_rollout(\"serving\", \"llama\"); }",
    );
    let _ = rb
        .run(host.clone(), &signal(), &Limits::default())
        .expect("runs");
    assert_eq!(
        *host.intents.lock().unwrap(),
        vec![
            Mutation::DeletePod {
                namespace: "serving".into(),
                name: "llama-0".into(),
            },
            Mutation::RestartRollout {
                namespace: "serving".into(),
                name: "llama".into(),
            },
        ]
    );
}

mod budget {
    use std::collections::HashMap;

    use super::*;
    use crate::config::RunbooksConfig;
    use crate::model::incident::{Origin, Verdict};
    use crate::model::{ClusterSnapshot, NodeModel, NodeReadiness};
    use crate::runbook::executor::{Executor, ExecutorConfig, RunState};
    use crate::runbook::guard::Guard;

    fn fleet(cordoned: &[&str]) -> Arc<Snapshot> {
        // 10 nodes at the default 10 %: a budget of one node out of service.
        let nodes = (0..10)
            .map(|i| {
                let name = if i == 9 {
                    "gpu-node-7".to_string()
                } else {
                    format!("n{i}")
                };
                NodeModel {
                    cordoned: cordoned.contains(&name.as_str()),
                    name,
                    readiness: NodeReadiness::Ready,
                    ..Default::default()
                }
            })
            .collect();
        let mut snap = Snapshot {
            clusters: vec![Arc::new(ClusterSnapshot {
                name: "prod".into(),
                nodes,
                ..Default::default()
            })],
            ..Snapshot::default()
        };
        snap.signals = vec![signal()];
        Arc::new(snap)
    }

    fn summaries(store: &crate::store::Store) -> Vec<(String, Option<Verdict>)> {
        (1..=store.len().unwrap_or(0))
            .filter_map(|seq| store.entry(seq).ok().flatten())
            .map(|e| (e.entry.summary, e.entry.verdict))
            .collect()
    }

    fn wait_finished(ex: &Executor, n: usize) -> Vec<crate::runbook::executor::RunRecord> {
        let started = std::time::Instant::now();
        loop {
            let runs = ex.runs();
            if runs.iter().filter(|r| r.finished_at.is_some()).count() >= n
                || started.elapsed() > Duration::from_secs(10)
            {
                return runs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_run_waiting_for_the_budget_is_not_restarted_while_a_node_let_out_is_not_yet_in_the_snapshot()
     {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let _in_rt = rt.enter();
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::store::Store::open(&dir.path().join("store")).expect("store");
        let cfg = RunbooksConfig::default();
        let guard = Guard::new(&cfg, Mode::Auto, false).shared();
        // Another run's cordon of n0 was allowed; the watch has not shown it yet. That spends
        // the budget of one.
        assert!(matches!(
            guard.check(
                &fleet(&[]),
                "prod",
                &Mutation::Cordon { node: "n0".into() },
                Mode::Auto
            ),
            crate::runbook::guard::Decision::Allow(_)
        ));
        let mut settings = ExecutorConfig::from_config(&cfg, Mode::Auto, Origin::Headless);
        settings.revalidate_after = Duration::ZERO;
        let rb = runbook("fn run(signal) { cordon(signal.subject.node); }\n");
        let ex = Executor::new(vec![rb], guard, store.clone(), HashMap::new(), settings);
        assert_eq!(ex.observe(fleet(&[])).len(), 1);
        let runs = wait_finished(&ex, 1);
        assert!(
            matches!(&runs[0].state, RunState::Failed(why) if why.contains("disruption budget")),
            "{:?}",
            runs[0].state
        );
        // Snapshots keep coming without n0 cordoned: the budget has no room for all that, so
        // the run is not started again (before, it was on every snapshot, each writing its
        // refusal on the timeline).
        let entries = store.len().expect("len");
        for _ in 0..20 {
            assert!(ex.observe(fleet(&[])).is_empty(), "restarted without room");
        }
        assert!(ex.observe(fleet(&["n0"])).is_empty());
        assert_eq!(
            store.len().expect("len"),
            entries,
            "no entry while it waits"
        );
        // n0 seen cordoned, then back in service: room, and the run starts again.
        assert_eq!(
            ex.observe(fleet(&[])).len(),
            1,
            "not retried once the budget freed"
        );
    }

    #[test]
    fn approve_mode_shows_the_budget_refusal_and_retries_once_the_budget_frees() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let _in_rt = rt.enter();
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::store::Store::open(&dir.path().join("store")).expect("store");
        let cfg = RunbooksConfig::default();
        let guard = Guard::new(&cfg, Mode::Approve, false).shared();
        let mut settings = ExecutorConfig::from_config(&cfg, Mode::Approve, Origin::Headless);
        settings.revalidate_after = Duration::ZERO;
        settings.approval_timeout = Duration::from_millis(200);
        let rb = runbook(
            "fn run(signal) {\n    let c = cordon(signal.subject.node);\n    if c.outcome == \"refused\" { note(`left alone: ${c.reason}`); }\n}\n",
        );
        let ex = Executor::new(vec![rb], guard, store.clone(), HashMap::new(), settings);

        // One node is cordoned already: the budget of one is spent.
        let started = ex.observe(fleet(&["n0"]));
        assert_eq!(started.len(), 1);
        let runs = wait_finished(&ex, 1);
        let state = &runs[0].state;
        assert!(
            matches!(state, RunState::Failed(why) if why.contains("disruption budget of cluster prod reached")),
            "{state:?}"
        );
        let timeline = summaries(&store);
        let text = format!("{timeline:#?}");
        assert!(
            timeline.iter().any(|(s, v)| *v == Some(Verdict::Refused)
                && s.starts_with("cordon node/gpu-node-7 refused: disruption budget")),
            "{text}"
        );
        assert!(!text.contains("the plan changes nothing"), "{text}");
        assert!(
            timeline.iter().any(|(s, v)| *v == Some(Verdict::Pending)
                && s.contains("waits for the disruption budget of cluster prod")),
            "{text}"
        );
        // The run's own closing entry names the reason too (what /metrics classifies).
        assert!(
            timeline.iter().any(|(s, v)| *v == Some(Verdict::Refused)
                && s.starts_with(
                    "runbook t failed: cordon node/gpu-node-7 refused: disruption budget"
                )),
            "{text}"
        );

        // Still no room: no new run.
        assert!(ex.observe(fleet(&["n0"])).is_empty());
        // n0 uncordoned: the budget has room, the run starts again (and asks for approval).
        let again = ex.observe(fleet(&[]));
        assert_eq!(again.len(), 1, "not retried once the budget freed");
        let runs = wait_finished(&ex, 2);
        let retried = runs.iter().find(|r| r.id == again[0]).expect("the retry");
        assert!(
            !matches!(&retried.state, RunState::Failed(why) if why.contains("disruption budget")),
            "{:?}",
            retried.state
        );
    }
}
