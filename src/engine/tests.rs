use super::*;

/// A config whose one notification sink cannot read its secret.
fn config_with_a_broken_sink() -> Config {
    Config::parse(
        "[notify.sinks.oncall]\nkind = \"pagerduty\"\nrouting_key_file = \"/nonexistent/pd-key\"\n",
        std::path::Path::new("fleetdeck.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn parts(dir: &tempfile::TempDir) -> EngineParts<'static> {
    EngineParts {
        store: Store::open(&dir.path().join("store")).unwrap_or_else(|e| panic!("{e}")),
        runbooks: Vec::new(),
        targets: &[],
    }
}

#[tokio::test]
async fn headless_does_not_start_when_a_sink_cannot_read_its_secret() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let policy = FacePolicy::headless(Mode::Auto, false, "replica-0".into());
    let Err(e) = Engine::build(&config_with_a_broken_sink(), policy, parts(&dir)).await else {
        panic!("headless started without its sink");
    };
    let e = e.to_string();
    assert!(
        e.contains("[notify.sinks.oncall]") && e.contains("/nonexistent/pd-key"),
        "{e}"
    );
}

#[tokio::test]
async fn a_rehearsal_fails_as_headless_does_when_a_sink_cannot_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let policy = FacePolicy::rehearsal(Mode::Auto, 0.02);
    assert!(
        Engine::build(&config_with_a_broken_sink(), policy, parts(&dir))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_cockpit_starts_without_notifications_when_a_sink_cannot_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let policy = FacePolicy::cockpit(Mode::Auto, false);
    let engine = Engine::build(&config_with_a_broken_sink(), policy, parts(&dir))
        .await
        .unwrap_or_else(|e| panic!("the cockpit did not start: {e}"));
    assert!(engine.executor.notifier().is_none());
    assert_eq!(engine.policy().origin, Origin::Tui);
}

#[test]
fn only_a_rehearsal_compresses_the_burn_windows() {
    let workbook = crate::signals::slo::BurnPolicy::sre_workbook();
    let cockpit = FacePolicy::cockpit(Mode::Auto, false).burn_policy();
    let rehearsal = FacePolicy::rehearsal(Mode::Auto, 0.02).burn_policy();
    assert_eq!(format!("{cockpit:?}"), format!("{workbook:?}"));
    assert_eq!(
        format!("{rehearsal:?}"),
        format!("{:?}", workbook.scaled(0.02))
    );
}
