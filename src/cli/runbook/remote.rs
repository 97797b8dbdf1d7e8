//! `fleetdeck runbook approve|deny --server URL`: the HTTP client that records a person's
//! verdict on a plan pending in a headless daemon (`POST /api/v1/runs/ID/approve|deny`).

use crate::cli::render::safe::visible;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::RemoteDecision;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Approve,
    Deny,
}

impl Verdict {
    /// The last segment of the daemon's route.
    fn verb(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Verdict::Approve => "approved",
            Verdict::Deny => "denied",
        }
    }
}

/// Exits 1, with the daemon's answer on stderr, when the daemon refuses; fails only when it
/// cannot be reached.
pub(super) fn decide(d: &RemoteDecision, verdict: Verdict) -> anyhow::Result<ExitCode> {
    let token = token(d)?;
    let by = super::local_user_name();
    let url = format!(
        "{}/api/v1/runs/{}/{}",
        d.server.trim_end_matches('/'),
        d.id,
        verdict.verb()
    );
    let rt = crate::cli::runtime()?;
    let (status, body) = rt.block_on(post(&url, &token, &by))?;
    if status.is_success() {
        println!(
            "approval {} {}: {}",
            d.id,
            verdict.done(),
            visible(body.trim())
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "fleetdeck: {} answered {status}: {}",
            visible(&url),
            visible(body.trim())
        );
        Ok(ExitCode::FAILURE)
    }
}

/// `--token-file`, else `$FLEETDECK_TOKEN`.
fn token(d: &RemoteDecision) -> anyhow::Result<String> {
    Ok(match &d.token_file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the token file {}", p.display()))?
            .trim()
            .to_string(),
        None => std::env::var("FLEETDECK_TOKEN")
            .context("no token: pass --token-file PATH or set FLEETDECK_TOKEN")?,
    })
}

/// The status and body of the daemon's answer; an unreadable body is reported as empty, since
/// the status alone decides the outcome.
async fn post(url: &str, token: &str, by: &str) -> anyhow::Result<(reqwest::StatusCode, String)> {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token.trim())
        .json(&serde_json::json!({ "by": by }))
        .timeout(std::time::Duration::from_secs(15))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = r.status();
    Ok((status, r.text().await.unwrap_or_default()))
}
