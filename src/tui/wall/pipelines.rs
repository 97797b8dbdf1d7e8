//! The wall's pipelines tile: Airflow DAGs failing (of how many, the worst named), and the
//! training gangs running against those `training.stalled` or `training.straggler` flags; a
//! row is left for the worst consumer lag when a Kafka source lands. Shown when a pipeline
//! source (Airflow) is configured, so a wall without one keeps its layout. Imports model,
//! model (the DAG verdict `model::airflow::judge`, so the tile and `pipeline.dag_failing` agree), theme and the
//! wall's tile helpers.

use std::collections::BTreeSet;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{Freshness, WallCtx, grey_if_stale, tile};
use crate::model::airflow::judge;
use crate::tui::theme::Role;

/// Whether the wall shows the tile: a pipeline source is configured.
pub fn shown(ctx: &WallCtx) -> bool {
    ctx.snapshot.airflow.is_some()
}

pub fn draw_pipelines(buf: &mut Buffer, area: Rect, ctx: &WallCtx) {
    let t = ctx.theme;
    let s = ctx.snapshot;
    let fresh = match &s.airflow {
        None => Freshness::NoData("no Airflow configured".into(), None),
        Some(p) => Freshness::of(ctx.now, p.fetched_at, p.error.clone()),
    };
    let fresh = ctx.link(&fresh);
    let Some(inner) = tile(buf, area, " Pipelines ", &fresh, t) else {
        return;
    };
    let mut lines = Vec::new();
    if let Some(p) = &s.airflow {
        let failing: Vec<&str> = p
            .dags
            .iter()
            .filter(|d| judge(p, d, ctx.now).is_some())
            .map(|d| d.dag_id.as_str())
            .collect();
        let active = p.dags.iter().filter(|d| !d.paused).count();
        let role = if failing.is_empty() {
            Role::Ok
        } else {
            Role::Critical
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:>3}", failing.len()), t.style(role)),
            Span::raw(format!(" of {active} DAGs failing")),
        ]));
        if let Some(first) = failing.first() {
            lines.push(Line::styled(
                format!("    {first}"),
                t.style(Role::Critical),
            ));
        }
    }
    let gangs: usize = s.clusters.iter().map(|c| c.gang_jobs.len()).sum();
    let flagged: BTreeSet<(&str, &str, &str)> = s
        .signals
        .iter()
        .filter(|x| x.kind == "training.stalled" || x.kind == "training.straggler")
        .map(|x| {
            (
                x.subject.cluster.as_str(),
                x.subject.namespace.as_deref().unwrap_or(""),
                x.subject.object.as_deref().unwrap_or(""),
            )
        })
        .collect();
    let role = if flagged.is_empty() {
        Role::Ok
    } else {
        Role::Warning
    };
    lines.push(Line::from(vec![
        Span::styled(
            format!("{:>3}", gangs.saturating_sub(flagged.len())),
            t.style(Role::Ok),
        ),
        Span::raw(" training gangs healthy, "),
        Span::styled(flagged.len().to_string(), t.style(role)),
        Span::raw(" stalled or straggling"),
    ]));
    Paragraph::new(lines).render(inner, buf);
    grey_if_stale(buf, inner, &fresh, t);
}
