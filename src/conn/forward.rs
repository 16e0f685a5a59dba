//! Forward auth on the request path: what a subscribe or publish becomes once the auth
//! server (`--auth-url`, see [`crate::forward_auth`]) has answered. Called by the
//! handshake after routing (and after JWT checks: both must allow).

use std::sync::Arc;

use super::publish::Refusal;
use super::subscribe::Subscribe;
use crate::forward_auth::{self, Action, Credentials, Grant, Settings, Verdict};
use crate::worker::Port;

/// Asks about a subscribe; narrows its topics to those allowed and names its user.
/// Every requested topic narrowed away is a 403.
pub async fn subscribe(
    port: &Port,
    settings: &Arc<Settings>,
    who: &Credentials,
    sub: &mut Subscribe,
) -> Result<(), Refusal> {
    let topics: Vec<&str> = sub.topics.iter().map(String::as_str).collect();
    let grant = ask(port, settings, Action::Subscribe, who, &topics).await?;
    sub.topics.retain(|t| grant.allows(t));
    if sub.topics.is_empty() {
        return Err(Refusal {
            status: 403,
            why: "the auth server allows none of these topics".into(),
        });
    }
    if grant.user.is_some() {
        sub.user = grant.user;
    }
    Ok(())
}

/// Asks about a publish to `topics` (every topic of a batch): all must be allowed.
pub async fn publish(
    port: &Port,
    settings: &Arc<Settings>,
    who: &Credentials,
    topics: &[&str],
) -> Result<(), Refusal> {
    let grant = ask(port, settings, Action::Publish, who, topics).await?;
    match topics.iter().find(|t| !grant.allows(t)) {
        Some(t) => Err(Refusal {
            status: 403,
            why: format!("the auth server does not allow publishing to {t}"),
        }),
        None => Ok(()),
    }
}

async fn ask(
    port: &Port,
    settings: &Arc<Settings>,
    action: Action,
    who: &Credentials,
    topics: &[&str],
) -> Result<Grant, Refusal> {
    // The request timer must not end the call before its own timeout does.
    port.deadline(settings.timeout * 2);
    let (verdict, outcome) = forward_auth::check(settings, action, who, topics).await;
    port.stats().forward_auth[outcome.index()].add(1);
    match verdict {
        Verdict::Allow(grant) => Ok(grant),
        Verdict::Deny(status) => Err(Refusal {
            status,
            why: "refused by the auth server".into(),
        }),
        Verdict::Unavailable(why) => {
            log::warn!(action = action.name(), why:% = why; "forward auth unavailable");
            Err(Refusal { status: 503, why })
        }
    }
}
