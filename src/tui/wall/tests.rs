use std::sync::Arc;

use chrono::Duration;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::fleet_map::{FleetCells, NodeState};
use super::*;
use crate::model::cost::{
    CostLine, CostReport, CostReportBuilder, CostSourceKind, CostSourceStatus, ReportSettings,
};
use crate::model::signal::{Signal, Subject};
use crate::model::{ClusterSnapshot, NodeReadiness};
use crate::tui::incidents::fixtures::incidents;
use crate::tui::nodes::fixtures::{self, cluster, node};

/// `clusters` × `nodes` nodes in pools of 500, every tenth cordoned, one NotReady.
fn big_fleet(clusters: usize, nodes: usize) -> Snapshot {
    let clusters: Vec<Arc<ClusterSnapshot>> = (0..clusters)
        .map(|c| {
            let nodes = (0..nodes)
                .map(|i| {
                    let mut n = node(&format!("n-{c}-{i}"), 8);
                    n.pool = Some(format!("pool-{}", i / 500));
                    n.cordoned = i % 10 == 0;
                    if i == 7 {
                        n.readiness = NodeReadiness::NotReady;
                    }
                    n
                })
                .collect();
            Arc::new(cluster(&format!("prod-{c}"), nodes))
        })
        .collect();
    Snapshot {
        taken_at: Some(fixtures::now()),
        clusters,
        ..Snapshot::default()
    }
}

/// Ten days of spend against a $2,000 budget, as of the fixtures' clock.
pub(crate) fn report() -> CostReport {
    let now = fixtures::now();
    let mut b = CostReportBuilder::new(ReportSettings {
        monthly_budget: Some(2000.0),
        as_of: Some(now),
        ..ReportSettings::default()
    });
    b.begin_source(CostSourceKind::OpenCost, "http://opencost:9003");
    for day in 0..10 {
        let start = now - Duration::days(10 - day);
        let l = CostLine::new(
            CostSourceKind::OpenCost,
            start,
            start + Duration::days(1),
            60.0 + (day * 7 % 30) as f64,
            "USD",
        );
        b.add_line(&l).unwrap_or_else(|e| panic!("{e}"));
        b.add_daily(&l);
    }
    let mut report = b.finish(now);
    // The forecast the budget stage (`signals::budget`, which the cockpit never runs) makes of
    // these days: the month's first half-day at its run rate.
    if let Some(budget) = report.budget.as_mut() {
        budget.forecast = Some(crate::model::cost::BudgetForecast {
            month_end: 1890.0,
            pct: 94.5,
            over_budget: false,
            method: "run rate: month-to-date over 0.50 elapsed days, times the days left \
                     (fewer than two complete days to fit a line)"
                .into(),
        });
    }
    report
}

fn draw(
    view: &mut WallView,
    snapshot: &Arc<Snapshot>,
    w: u16,
    h: u16,
    now: DateTime<Utc>,
) -> Buffer {
    let theme = Theme::default_theme();
    let incidents = incidents(fixtures::now());
    let mut buf = Buffer::empty(Rect::new(0, 0, w, h));
    let ctx = WallCtx {
        snapshot,
        incidents: &incidents,
        theme: &theme,
        now,
        alerts: Vec::new(),
        disconnected: None,
    };
    view.draw_buffer(&mut buf, Rect::new(0, 0, w, h), &ctx);
    buf
}

fn text(buf: &Buffer) -> String {
    fixtures::text_lines(buf).join("\n")
}

#[test]
fn five_thousand_nodes_fit_a_200_by_50_wall_and_say_how_many_a_cell_holds() {
    let snap = Arc::new(big_fleet(2, 2500));
    let cells = FleetCells::of(&snap);
    assert_eq!(cells.nodes(), 5000);
    assert_eq!(cells.groups.len(), 10, "2 clusters × 5 pools of 500");
    let mut view = WallView::default();
    let buf = draw(&mut view, &snap, 200, 50, fixtures::now());
    let s = text(&buf);
    assert!(s.contains("Fleet map · 5000 nodes"), "{s}");
    let per = s
        .lines()
        .find_map(|l| {
            let at = l.find("1 cell = ")? + "1 cell = ".len();
            l[at..].split(' ').next()?.parse::<usize>().ok()
        })
        .unwrap_or_else(|| panic!("no cell label: {s}"));
    assert!(per > 1, "5,000 nodes need aggregated cells at 200×50: {s}");
    assert!(s.contains("(worst state shown)"), "{s}");
    // Every node is in some cell: the cells drawn hold them all.
    let glyphs: usize = s
        .chars()
        .filter(|c| NodeState::ALL.iter().any(|st| st.glyph() == *c))
        .count();
    assert!(glyphs * per >= 5000, "{glyphs} cells × {per} < 5000 nodes");
}

#[test]
fn an_aggregated_cell_shows_its_worst_node() {
    let mut snap = big_fleet(1, 4);
    let c = Arc::make_mut(&mut snap.clusters[0]);
    c.nodes[1].readiness = NodeReadiness::NotReady;
    for n in &mut c.nodes {
        n.cordoned = false;
    }
    let cells = FleetCells::of(&snap);
    let mut buf = Buffer::empty(Rect::new(0, 0, 2, 2));
    // Two rows: a header and one row of two cells, so two nodes a cell.
    assert_eq!(
        cells.draw(&mut buf, Rect::new(0, 0, 2, 2), &Theme::default_theme()),
        Some(2)
    );
    assert_eq!(buf[(0, 1)].symbol(), "✖");
    assert_eq!(buf[(1, 1)].symbol(), "●");
}

#[test]
fn node_states_come_from_readiness_taints_and_gpu_faults() {
    let snap = fixtures::evaluated(fixtures::fleet());
    let cells = FleetCells::of(&snap);
    // gpu-a-2 is NotReady with an XID: the GPU fault is what it shows; spot-a-3 is cordoned.
    assert_eq!(cells.counts.get(&NodeState::GpuFault), Some(&1));
    assert_eq!(cells.counts.get(&NodeState::Cordoned), Some(&1));
    assert_eq!(cells.counts.get(&NodeState::Ready), Some(&2));
}

#[test]
fn a_stale_source_greys_its_tile_and_says_its_age() {
    let mut snap = fixtures::fleet();
    let theme = Theme::default_theme();
    snap.cost = Some(Arc::new(report()));
    snap.cost_source = Some(CostSourceStatus {
        target: "http://opencost".into(),
        error: Some("connection refused".into()),
        last_success: Some(fixtures::now() - Duration::minutes(20)),
        checked_at: fixtures::now(),
        interval: std::time::Duration::from_secs(300),
    });
    let snap = Arc::new(snap);
    let buf = draw(&mut WallView::default(), &snap, 200, 50, fixtures::now());
    let s = text(&buf);
    assert!(s.contains("STALE 20m: connection refused"), "{s}");
    let (x, y) = crate::tui::pane::testing::find(&buf, "today").unwrap_or_else(|| panic!("{s}"));
    assert_eq!(
        buf[(x, y)].fg,
        theme.style(Role::Stale).fg.unwrap_or_default()
    );
    // The other tiles are not greyed: the fleet map still has its colours.
    let (x, y) = crate::tui::pane::testing::find(&buf, "● ready").unwrap_or_else(|| panic!("{s}"));
    assert_eq!(buf[(x, y)].fg, theme.style(Role::Ok).fg.unwrap_or_default());
}

#[test]
fn a_missing_source_says_no_data_and_blanks_no_other_tile() {
    let snap = Arc::new(fixtures::fleet());
    let s = text(&draw(
        &mut WallView::default(),
        &snap,
        200,
        50,
        fixtures::now(),
    ));
    assert!(s.contains("no data: no cost source"), "{s}");
    assert!(s.contains("no data: no endpoints configured"), "{s}");
    assert!(
        s.contains("Fleet map · 4 nodes") && s.contains("gpu-h100"),
        "{s}"
    );
}

fn critical(node: &str) -> Signal {
    Signal {
        kind: "node.not_ready".into(),
        severity: Severity::Critical,
        subject: Subject {
            cluster: "prod-b".into(),
            node: Some(node.into()),
            ..Subject::default()
        },
        summary: format!("{node} is NotReady"),
        evidence: Default::default(),
        action: None,
        first_seen: fixtures::now(),
        dedup_key: format!("node.not_ready/prod-b/{node}"),
    }
}

#[test]
fn a_new_critical_flashes_the_border_once() {
    let now = fixtures::now();
    let mut view = WallView::default();
    let first = fixtures::evaluated(fixtures::fleet());
    draw(&mut view, &first, 200, 50, now);
    assert!(!view.flashing(now), "criticals already there are not new");
    let mut next = (*first).clone();
    next.signals.push(critical("gpu-b-1"));
    let next = Arc::new(next);
    let buf = draw(&mut view, &next, 200, 50, now);
    assert!(view.flashing(now));
    assert!(buf[(0, 0)].modifier.contains(Modifier::REVERSED));
    // A second later the same critical no longer flashes: once, no blinking.
    let later = now + Duration::seconds(1);
    let buf = draw(&mut view, &next, 200, 50, later);
    assert!(!view.flashing(later));
    assert!(!buf[(0, 0)].modifier.contains(Modifier::REVERSED));
    let again = Arc::new((*next).clone());
    draw(&mut view, &again, 200, 50, later + Duration::seconds(1));
    assert!(!view.flashing(later + Duration::seconds(1)));
}

#[test]
fn a_redraw_of_the_same_snapshot_computes_nothing_again() {
    let snap = Arc::new(big_fleet(1, 100));
    let mut view = WallView::default();
    draw(&mut view, &snap, 200, 50, fixtures::now());
    draw(
        &mut view,
        &snap,
        200,
        50,
        fixtures::now() + Duration::seconds(1),
    );
    assert_eq!(view.aggregations, 1);
    draw(
        &mut view,
        &Arc::new((*snap).clone()),
        200,
        50,
        fixtures::now(),
    );
    assert_eq!(view.aggregations, 2);
}

#[test]
fn the_legend_shows_every_glyph_in_every_theme() {
    let snap = fixtures::evaluated(fixtures::fleet());
    for name in ["dark", "colorblind", "high-contrast"] {
        let (theme, _) = crate::tui::theme::load(Some(name), false);
        let incidents = incidents(fixtures::now());
        let mut buf = Buffer::empty(Rect::new(0, 0, 120, 30));
        let ctx = WallCtx {
            snapshot: &snap,
            incidents: &incidents,
            theme: &theme,
            now: fixtures::now(),
            alerts: Vec::new(),
            disconnected: None,
        };
        WallView::default().draw_buffer(&mut buf, Rect::new(0, 0, 120, 30), &ctx);
        let s = text(&buf);
        for st in NodeState::ALL {
            assert!(
                s.contains(&format!("{} {}", st.glyph(), st.name())),
                "{name}: {s}"
            );
        }
    }
}

#[test]
fn a_blind_cluster_is_said_on_the_counters_the_ticker_and_the_map_whose_age_moves() {
    use crate::model::ResourceSync;
    let now = fixtures::now();
    let mut c = cluster("sim-a", vec![node("gpu-a-1", 8)]);
    c.sync = vec![ResourceSync {
        resource: "nodes".into(),
        state: SyncState::Unreachable {
            since: now - Duration::seconds(130),
            last_error: "connection refused".into(),
        },
        changed_at: now - Duration::seconds(130),
    }];
    // Other sources keep the snapshot itself fresh.
    let snap = Arc::new(Snapshot {
        taken_at: Some(now),
        clusters: vec![Arc::new(c)],
        ..Snapshot::default()
    });
    let theme = Theme::default_theme();
    let draw_at = |view: &mut WallView, at| {
        let mut buf = Buffer::empty(Rect::new(0, 0, 200, 50));
        let ctx = WallCtx {
            snapshot: &snap,
            incidents: &[],
            theme: &theme,
            now: at,
            alerts: Vec::new(),
            disconnected: None,
        };
        let area = buf.area;
        view.draw_buffer(&mut buf, area, &ctx);
        text(&buf)
    };
    let mut view = WallView::default();
    let s = draw_at(&mut view, now);
    assert!(!s.contains("● no open incidents"), "{s}");
    assert!(
        s.contains("? no open incidents, no signals where fleetdeck can see"),
        "{s}"
    );
    assert!(
        s.contains("? BLIND    sim-a unreachable 2m — its signals unknown"),
        "{s}"
    );
    assert!(s.contains("CRITICAL · sim-a unreachable"), "{s}");
    assert!(s.contains("STALE 2m: sim-a not synced"), "{s}");
    // The map's age is the break's, and it moves with the clock.
    let s = draw_at(&mut view, now + Duration::minutes(3));
    assert!(s.contains("STALE 5m: sim-a not synced"), "{s}");
    assert!(s.contains("sim-a unreachable 5m"), "{s}");
}

fn signal_on(kind: &str, node: &str, summary: &str) -> Signal {
    Signal {
        kind: kind.into(),
        severity: Severity::Critical,
        subject: Subject {
            cluster: "prod-a".into(),
            node: Some(node.into()),
            ..Subject::default()
        },
        summary: summary.into(),
        evidence: Default::default(),
        action: None,
        first_seen: fixtures::now(),
        dedup_key: format!("{kind}/prod-a/{node}"),
    }
}

#[test]
fn the_ticker_lists_live_incidents_first_marks_mitigated_ones_and_counts_what_it_shows() {
    use crate::model::incident::IncidentStatus;
    use crate::tui::incidents::fixtures::incident;
    use crate::tui::signal_groups::group_key;
    let now = fixtures::now();
    let xid_signal = signal_on(
        "gpu.xid",
        "gpu-a-2",
        "XID 79 on gpu-a-2 gpu0: fell off the bus",
    );
    let notice_signal = signal_on("node.interruption_notice", "s4", "s4 goes (104s left)");
    let mut xid = incident(
        3,
        Severity::Critical,
        IncidentStatus::Open,
        "gpu.xid",
        "gpu-a-2",
        now,
    );
    xid.group = group_key(&xid_signal);
    let mut notice = incident(
        5,
        Severity::Critical,
        IncidentStatus::Open,
        "node.interruption_notice",
        "s4",
        now,
    );
    notice.group = group_key(&notice_signal);
    notice.title = "s4 goes (119s left)".into();
    // The newest incident, but its signals cleared: it must not sit above the live ones.
    let mut cleared = incident(
        6,
        Severity::Critical,
        IncidentStatus::Mitigated,
        "node.not_ready",
        "spot-a-9",
        now,
    );
    cleared.milestones.detected = Some(now - Duration::seconds(30));
    let incidents = vec![cleared, xid, notice];
    let snapshot = Arc::new(Snapshot {
        taken_at: Some(now),
        signals: vec![xid_signal, notice_signal],
        ..Snapshot::default()
    });
    let theme = Theme::default_theme();
    let mut buf = Buffer::empty(Rect::new(0, 0, 120, 30));
    let ctx = WallCtx {
        snapshot: &snapshot,
        incidents: &incidents,
        theme: &theme,
        now,
        alerts: Vec::new(),
        disconnected: None,
    };
    WallView::default().draw_buffer(&mut buf, Rect::new(0, 0, 120, 30), &ctx);
    let lines = fixtures::text_lines(&buf);
    let s = lines.join("\n");
    let row = |label: &str| {
        lines
            .iter()
            .position(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label} row: {s}"))
    };
    let (xid_row, notice_row, cleared_row) = (row("INC-3"), row("INC-5"), row("INC-6"));
    assert!(cleared_row > xid_row && cleared_row > notice_row, "{s}");
    assert!(
        lines[cleared_row].contains("MITIGATED") && !lines[cleared_row].contains("CRITICAL"),
        "{s}"
    );
    assert!(
        lines[notice_row].contains("(104s left)") && !s.contains("119s"),
        "the live countdown, not the frozen title: {s}"
    );
    let shown = lines.iter().filter(|l| l.contains("▲ CRITICAL")).count();
    let counter = lines
        .iter()
        .position(|l| l.contains(" CRITICAL "))
        .and_then(|i| lines.get(i + 1))
        .map(|l| {
            l.chars()
                .take(30)
                .filter(char::is_ascii_digit)
                .collect::<String>()
        })
        .unwrap_or_default();
    assert_eq!((shown, counter.as_str()), (2, "2"), "{s}");
}

#[test]
fn a_countdown_is_taken_live_or_dropped_never_frozen() {
    let title = "notice on n1: instance goes at 12:01:44 (119s left)";
    assert_eq!(
        live_title(
            title,
            &["notice on n1: instance goes at 12:01:44 (104s left)"]
        ),
        "notice on n1: instance goes at 12:01:44 (104s left)"
    );
    assert_eq!(
        live_title(title, &[]),
        "notice on n1: instance goes at 12:01:44"
    );
    assert_eq!(
        live_title("XID 79 on n1 (gpu0)", &[]),
        "XID 79 on n1 (gpu0)"
    );
}

#[test]
fn a_fresh_healthy_endpoint_keeps_its_budget_and_says_how_much_of_the_period_is_seen() {
    use crate::model::endpoint::{
        BurnWindow, EndpointConfig, EndpointHealth, EndpointModel, SloBurn, SloKind,
    };
    let now = fixtures::now();
    let config: EndpointConfig = serde_json::from_value(serde_json::json!({
        "name": "llama-chat", "url": "http://127.0.0.1:1", "protocol": "vllm",
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut e = EndpointModel::new(&config, now);
    e.health = EndpointHealth::Healthy;
    e.last_scraped = Some(now);
    // Twelve minutes at the sim's ~1.25 requests a second, one of them failed: 0.11 % bad
    // against a 0.1 % budget, but over 12 minutes of a 30-day period.
    e.availability_burn = Some(SloBurn {
        kind: SloKind::Availability,
        objective: 0.999,
        evaluated_at: now,
        windows: vec![BurnWindow {
            window_secs: 259_200.0,
            good: 899.0,
            total: 900.0,
            burn_rate: Some(1.11),
        }],
        covered_secs: 720.0,
        period_secs: 2_592_000.0,
        alerts: Vec::new(),
    });
    let snapshot = Arc::new(Snapshot {
        taken_at: Some(now),
        endpoints: vec![Arc::new(e)],
        ..Snapshot::default()
    });
    let s = text(&draw(&mut WallView::default(), &snapshot, 200, 50, now));
    assert!(s.contains("budget 100% (12m of 30d)"), "{s}");
    assert!(!s.contains("budget 0%"), "{s}");
}

#[test]
fn a_vector_store_tile_shows_its_count_and_growth() {
    use crate::model::endpoint::{
        EndpointConfig, EndpointHealth, EndpointModel, VectorModel, VectorReading,
    };
    let now = fixtures::now();
    let config: EndpointConfig = serde_json::from_value(serde_json::json!({
        "name": "docs-rag", "url": "http://127.0.0.1:1", "protocol": "pinecone",
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut e = EndpointModel::new(&config, now);
    e.health = EndpointHealth::Healthy;
    e.last_scraped = Some(now);
    e.vector = Some(VectorModel {
        latest: Some(VectorReading {
            at: now,
            count: 1_840_000,
            dimension: Some(1024),
            fullness: Some(0.3),
            indexed: None,
            status: None,
        }),
        grew_at: Some(now),
        growth_per_min: Some(2520.0),
        error: None,
    });
    let snapshot = Arc::new(Snapshot {
        taken_at: Some(now),
        endpoints: vec![Arc::new(e)],
        ..Snapshot::default()
    });
    let s = text(&draw(&mut WallView::default(), &snapshot, 200, 50, now));
    assert!(s.contains("1.84M vec +2520/min"), "{s}");
}

#[test]
fn with_airflow_the_pipelines_tile_counts_failing_dags_and_names_the_first() {
    use crate::model::airflow::{AirflowPicture, DagModel, DagRunModel, RunState};
    let now = fixtures::now();
    let run = |id: &str, state| DagRunModel {
        run_id: id.into(),
        state,
        logical_date: None,
        start: Some(now - Duration::minutes(5)),
        end: Some(now - Duration::minutes(4)),
    };
    let dag = |id: &str, states: [RunState; 2], paused| DagModel {
        dag_id: id.into(),
        paused,
        description: None,
        owners: Vec::new(),
        runs: vec![run("b", states[0]), run("a", states[1])],
        failed_run: None,
        failed_tasks: Vec::new(),
        sla_seconds: None,
    };
    let mut snap = fixtures::fleet();
    snap.airflow = Some(Arc::new(AirflowPicture {
        url: "http://airflow:8080".into(),
        api_version: "v1".into(),
        dags: vec![
            dag(
                "feature_build_nightly",
                [RunState::Failed, RunState::Failed],
                false,
            ),
            dag(
                "embedding_refresh",
                [RunState::Success, RunState::Failed],
                false,
            ),
            dag(
                "legacy_csv_export",
                [RunState::Failed, RunState::Failed],
                true,
            ),
        ],
        import_errors: Vec::new(),
        health: None,
        failed_runs: 2,
        fetched_at: Some(now),
        error: None,
    }));
    let s = text(&draw(
        &mut WallView::default(),
        &Arc::new(snap),
        200,
        50,
        now,
    ));
    assert!(s.contains("Pipelines"), "{s}");
    assert!(s.contains("1 of 2 DAGs failing"), "{s}");
    assert!(s.contains("feature_build_nightly"), "{s}");
    assert!(s.contains("training gangs healthy"), "{s}");
    // The other tiles still draw beside it.
    assert!(s.contains("no data: no cost source"), "{s}");
}
