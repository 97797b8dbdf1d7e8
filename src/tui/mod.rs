//! The cockpit's terminal UI: the app (`app`: state and dispatch, input, chrome, the event
//! loop), one module per pane behind the `Pane` trait (`pane`, with what panes are given; the
//! table panes are `TableSpec`s over the one `table_pane`),
//! shared drawing (`widgets`), text formatting (`format`), signals in their incident groups
//! (`signal_groups`) and the noise kept over the last hour (`noise`), the loop's links to the
//! RCA store (`rca`) and the runbook executor (`automation`), the logs and YAML views opened on
//! one object (`logs`, `yaml`) and their link (`inspect`), the NOC wall (`wall`, with its block
//! digits in `bigdigits`), the keymap and the themes. May import state, pipeline, store,
//! runbook, actions (the Mutation vocabulary), sources (only the on-demand readers of
//! `sources::logs`), model, config; never signals (the pipeline hands the cockpit evaluated
//! snapshots).

pub mod app;
pub mod attach;
pub mod automation;
pub mod bigdigits;
pub mod cost;
pub mod endpoints;
pub mod events;
pub mod format;
pub mod gpus;
pub mod incidents;
pub mod inspect;
pub mod intent;
pub mod keymap;
pub mod logs;
pub mod nodes;
pub mod noise;
pub mod overview;
pub mod pane;
pub mod pipelines;
pub mod pipelines_spark;
pub mod pods;
pub mod rca;
pub mod reclaim;
pub mod runbooks;
pub mod selector;
pub mod signal_groups;
pub mod signals;
pub mod table_pane;
pub mod theme;
pub mod wall;
pub mod widgets;
pub mod workloads;
pub mod yaml;

use keymap::{Keymap, PaneId};
use pane::Pane;

/// Every pane, once, in tab order (`PaneId::ALL`'s order; a test checks it). The pane list
/// stands next to the module list so that adding a pane is its module, one line here, and its
/// `PaneId` in the keymap: a table pane is a `table_pane::TableSpec` registered as
/// `TablePane::<Spec>::default()`.
pub(crate) fn registered_panes(keymap: &Keymap) -> Vec<(PaneId, Box<dyn Pane>)> {
    let incident_keys = app::incident_keys_hint(keymap);
    let runbook_keys = app::runbook_keys_hint(keymap);
    vec![
        (
            PaneId::Overview,
            Box::new(overview::OverviewPane::default()),
        ),
        (PaneId::Nodes, Box::new(nodes::NodesPane::default())),
        (PaneId::Gpus, Box::new(gpus::GpusPane::default())),
        (
            PaneId::Endpoints,
            Box::new(endpoints::EndpointsPane::default()),
        ),
        (PaneId::Cost, Box::new(cost::CostPane::default())),
        (PaneId::Signals, Box::new(signals::SignalsPane::default())),
        (
            PaneId::Incidents,
            Box::new(incidents::IncidentsPane::with_keys_hint(incident_keys)),
        ),
        (
            PaneId::Runbooks,
            Box::new(runbooks::RunbooksPane::with_keys_hint(runbook_keys)),
        ),
        (PaneId::Pods, Box::new(pods::PodsPane::default())),
        (
            PaneId::Workloads,
            Box::new(workloads::WorkloadsPane::default()),
        ),
        (PaneId::Events, Box::new(events::EventsPane::default())),
        (
            PaneId::Pipelines,
            Box::new(pipelines::PipelinesPane::default()),
        ),
        (
            PaneId::Spark,
            Box::new(pipelines_spark::SparkPane::default()),
        ),
    ]
}
