//! Hedged requests (`router_settings.hedge_after_ms`, a tollgate extension): when a call of a group that has a
//! hedge delay has not produced its first byte (a whole answer's response, a stream's first event: the moment
//! `call` resolves) after that delay, the same request also goes to another deployment of the group. The first
//! call to answer serves the caller; the other is cancelled: its future is dropped, which closes its upstream
//! connection and settles it as cancelled, with an accounting gap (`hedge_cancelled`), since the upstream had the
//! request. A failure of one call leaves the other running; when both fail, the last error goes back to
//! `route` for the usual retry and fallback.
//!
//! Contract: both calls run on the request's own task (no spawn): the request context's `Cell`s stay
//! single-threaded, and dropping the request drops both calls. Nothing here waits but the hedge delay.

use std::{future::Future, sync::Arc};

use futures_util::future::{self, Either};

use super::RequestCtx;
use crate::{
    clock,
    error::ApiError,
    routing::{rules::Prompt, Deployment, RoutingTable},
};

/// Calls `call` on `first`, hedged on another deployment of `group` if the group has a hedge delay and the first
/// call is still without an answer after it. Deployments called are added to `tried`.
pub async fn call<F, Fut, R>(
    ctx: &RequestCtx,
    table: &RoutingTable,
    group: &str,
    prompt: Option<&dyn Prompt>,
    first: Arc<Deployment>,
    tried: &mut Vec<String>,
    call: &mut F,
) -> Result<R, ApiError>
where
    F: FnMut(Arc<Deployment>) -> Fut,
    Fut: Future<Output = Result<R, ApiError>>,
{
    let Some(after) = table.hedge_after(group) else { return call(first).await };
    // Boxed: the loser must be dropped at a moment of our choosing, not when this function returns.
    let mut primary = Box::pin(call(first.clone()));
    let primary_done = actix_rt::time::timeout(after, &mut primary).await;
    if let Ok(answer) = primary_done {
        return answer;
    }
    let Some(second) = another(table, group, prompt, tried) else { return primary.await };
    tried.push(second.id.clone());
    ctx.set_hedged();
    tracing::info!(
        request_id = %ctx.request_id,
        model_group = group,
        first = %first.id,
        hedge = %second.id,
        after_ms = after.as_millis() as u64,
        "no first byte yet: hedging the call on another deployment"
    );
    let secondary = Box::pin(call(second.clone()));
    // The new call is polled first, so it has begun (and counts in `x-tollgate-attempts`) before either
    // response is built.
    let (winner, answer) = match future::select(secondary, primary).await {
        Either::Left((Ok(response), primary)) => {
            ctx.drop_race_loser(primary);
            (&second, Ok(response))
        }
        Either::Right((Ok(response), secondary)) => {
            ctx.drop_race_loser(secondary);
            (&first, Ok(response))
        }
        // One failed: the other may still answer.
        Either::Left((Err(_), primary)) => (&first, primary.await),
        Either::Right((Err(_), secondary)) => (&second, secondary.await),
    };
    // `deployment`: the call that serves, or (both failed) the one that failed last.
    tracing::info!(
        request_id = %ctx.request_id,
        model_group = group,
        deployment = %winner.id,
        answered = answer.is_ok(),
        "hedged call decided"
    );
    answer
}

/// A deployment of `group` to hedge on: one not tried by this request, if the group has one available.
/// The prompt's rules apply as to any pick (a deployment whose context window it exceeds is no hedge).
fn another(
    table: &RoutingTable,
    group: &str,
    prompt: Option<&dyn Prompt>,
    tried: &[String],
) -> Option<Arc<Deployment>> {
    let now = clock::monotonic_ms();
    // `pick` falls back to deployments already tried; a hedge on the one already running is no hedge.
    if table.repeats_for(group, prompt, now, tried) {
        return None;
    }
    let picked = table.pick_for(group, prompt, rand::random::<f64>(), now, tried).ok()?;
    (!tried.contains(&picked.id)).then(|| picked.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, pricing};

    #[test]
    fn a_hedge_goes_only_to_a_deployment_the_request_has_not_tried() {
        let env = |_: &str| None;
        let yaml = "model_list:\n  - {model_name: two, litellm_params: {model: mock/a}}\n  - {model_name: two, litellm_params: {model: mock/b}}\n  - {model_name: one, litellm_params: {model: mock/c}}\nrouter_settings: {hedge_after_ms: {two: 10}}\n";
        let config = Config::load_str(yaml, &env).unwrap_or_else(|e| unreachable!("{e}"));
        let table = RoutingTable::build(&config, &env, pricing::vendored(), |_, _, _| None)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(table.hedge_after("two"), Some(std::time::Duration::from_millis(10)));
        assert_eq!(table.hedge_after("one"), None);
        let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        // (group, tried, hedge target)
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            ("two", &["two#0"], Some("two#1")),
            ("two", &["two#1"], Some("two#0")),
            ("two", &["two#0", "two#1"], None),
            ("one", &["one#2"], None),
        ];
        for (group, tried, want) in cases {
            let got = another(&table, group, None, &ids(tried)).map(|d| d.id.clone());
            assert_eq!(got.as_deref(), *want, "{group} {tried:?}");
        }
    }
}
