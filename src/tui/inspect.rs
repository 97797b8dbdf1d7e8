//! The loop's link for the logs and YAML views: starts a log stream on the cluster's client,
//! reads an object, writes saved lines to a file. Its tasks hold no app: answers come back as
//! `Reply`s (and a data-less wake-up when log lines arrive) for the loop to apply. May import
//! the app's vocabulary and the on-demand readers of `sources::logs`.

use std::collections::HashMap;

use tokio::sync::mpsc;

use super::app::{Command, Reply};
use crate::sources::logs::{LogStream, fetch_object};

pub struct InspectLink {
    /// One client per kubeconfig context, keyed as signals name their cluster.
    clients: HashMap<String, kube::Client>,
    replies: mpsc::Sender<Reply>,
    wake: mpsc::Sender<()>,
}

impl InspectLink {
    /// The link, the receiver of its replies and the receiver of its log wake-ups.
    pub fn new(
        clients: HashMap<String, kube::Client>,
    ) -> (Self, mpsc::Receiver<Reply>, mpsc::Receiver<()>) {
        let (replies, replies_rx) = mpsc::channel(16);
        // One pending wake-up is enough: the app takes every line there is when it wakes.
        let (wake, wake_rx) = mpsc::channel(1);
        (
            Self {
                clients,
                replies,
                wake,
            },
            replies_rx,
            wake_rx,
        )
    }

    fn client(&self, cluster: &str) -> Result<kube::Client, String> {
        self.clients.get(cluster).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = self.clients.keys().map(String::as_str).collect();
            known.sort_unstable();
            format!(
                "no Kubernetes client for cluster {cluster:?} (contexts: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
    }

    /// Performs a logs or YAML view's command, keeping `log_lines` of a stream. Answers what
    /// the loop applies to the app at once (a started stream, or why none could start); later
    /// answers come through the replies. The link never holds the app.
    pub fn perform(&self, command: Command, log_lines: usize) -> Option<Reply> {
        match command {
            Command::OpenLogs(request) => Some(match self.client(&request.target.cluster) {
                Ok(client) => Reply::Logs(LogStream::spawn(
                    client,
                    request,
                    log_lines,
                    self.wake.clone(),
                )),
                Err(why) => Reply::InspectFailed(why),
            }),
            Command::FetchObject(object) => match self.client(&object.cluster) {
                Ok(client) => {
                    let replies = self.replies.clone();
                    tokio::spawn(async move {
                        let result = fetch_object(client, &object).await;
                        let _ = replies.send(Reply::Object(object, result)).await;
                    });
                    None
                }
                Err(why) => Some(Reply::InspectFailed(why)),
            },
            Command::SaveLogs { file, text } => {
                let replies = self.replies.clone();
                tokio::spawn(async move {
                    let lines = text.lines().count();
                    let message = match tokio::fs::write(&file, text).await {
                        Ok(()) => format!("saved {lines} lines to ./{file}"),
                        Err(e) => format!("cannot save the logs to ./{file}: {e}"),
                    };
                    let _ = replies.send(Reply::Say(message)).await;
                });
                None
            }
            _ => None,
        }
    }
}
