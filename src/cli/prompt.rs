//! The terminal prompt that asks the person at the keyboard to approve a runbook's plan.

use super::render::safe::visible;
use crate::runbook::approvals::PendingApproval;

/// Shows the plan on stderr, so that stdout keeps only the command's output, and asks. Only `y`
/// approves: an empty line, any other answer or an unreadable stdin is a no.
pub(super) fn approve_on_terminal(p: &PendingApproval) -> bool {
    eprintln!("approval {} requested: {}", p.id, visible(&p.reason));
    for step in &p.plan {
        eprintln!(
            "  - {} {}",
            visible(&step.summary),
            visible(&step.blast.to_string())
        );
    }
    eprint!("approve? [y/N] ");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.trim().eq_ignore_ascii_case("y")
}
