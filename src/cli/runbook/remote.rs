//! `fleetdeck runbook approve|deny ID --attach URL` (`--server`, its older name, still works):
//! records a person's verdict on a plan pending in a headless daemon (`POST
//! /api/v1/runs/ID/approve|deny`) through the attaching client (`cli::remote`). The daemon
//! records it under the caller's identity, never a name the client claims.

use std::process::ExitCode;

use crate::cli::remote::{Refused, Remote};
use crate::cli::render::safe::visible;
use crate::cli::{AttachFlags, Cli, RemoteDecision};
use crate::config::Config;

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
/// cannot be reached (or no daemon is named).
pub(super) fn decide(
    cli: &Cli,
    cfg: &Config,
    d: &RemoteDecision,
    verdict: Verdict,
) -> anyhow::Result<ExitCode> {
    let Some(remote) = Remote::from_flags(cli, cfg, &AttachFlags::from(&d.attach))? else {
        anyhow::bail!(
            "runbook {} needs the daemon: --attach URL (or [attach] url in the config)",
            verdict.verb()
        );
    };
    let path = format!("/api/v1/runs/{}/{}", d.id, verdict.verb());
    match remote.post(&path, &serde_json::json!({})) {
        Ok(answer) => {
            println!(
                "approval {} {}: {}",
                d.id,
                verdict.done(),
                visible(&answer.to_string())
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => match e.downcast_ref::<Refused>() {
            Some(r) => {
                eprintln!(
                    "fleetdeck: {} answered {}: {}",
                    visible(&r.url),
                    r.status,
                    r.message
                );
                Ok(ExitCode::FAILURE)
            }
            None => Err(e),
        },
    }
}
