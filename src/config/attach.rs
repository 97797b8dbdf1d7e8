//! `[attach]`: the running daemon the one-shot commands (`incident`, `audit`, `runbook
//! approve|deny`, `store stats`) work on through its API instead of a local store.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachConfig {
    /// The daemon's base URL (`https://fleetdeck.example:9180`); empty: commands use the local
    /// store unless `--attach URL` is given.
    pub url: String,
    /// A file holding the bearer token to send; empty: `--token-file`, else the token the
    /// kubeconfig's current context yields, else `$FLEETDECK_TOKEN`.
    pub token_file: String,
}
