//! Budget admission of a request: before its first upstream call it reserves its maximum cost on every budget it
//! is bound by (its key's, team's, user's, membership's, its key's for the model group, its end user's), all or
//! nothing, and hands the reservation to its request-level log record, which replaces it by the real cost when the
//! request ends, however it ends (`logs::request::Finish`).
//!
//! The maximum cost: the prompt's tokens (counted with each deployment's tokenizer) at the input price plus the
//! answer's bound (`max_tokens` / `max_completion_tokens`, else `general_settings.budget_default_max_tokens`, never
//! more than the model's catalog maximum) at the output price, for the group's most expensive deployment. A group
//! with no price at all reserves 0 (and is counted: `tollgate_budget_unpriced_reservations_total`): its calls are
//! still refused once a budget is at its cap, and their cost, when known, still counts (docs/budgets.md).

use std::sync::{
    atomic::{AtomicBool, Ordering::Relaxed},
    Arc,
};

use super::route::Asked;
use crate::{
    access::{end_users::EndUserRecord, Caller},
    budgets::{self, Charge, Ledger, Reservation},
    error::ApiError,
    logs::{request::Finish, LogRecord},
    pricing::Pricing,
    routing::RoutingTable,
};

/// A budget with at least this many times a request's bound-based reservation left is far from its cap: the
/// request reserves with its prompt's byte length as the token count instead of tokenizing the prompt (which costs
/// about a microsecond for a short prompt and grows with its length). A bound is never below the exact count, so
/// the cap still holds; near the cap, where a larger reservation could refuse a request that fits, the prompt is
/// counted exactly.
const FAR_FROM_CAP: u64 = 64;

/// Whether a reservation of `bound` may skip counting the prompt's tokens, with `room` left on the tightest budget.
fn far_from_cap(room: Option<u64>, bound: u64) -> bool {
    room.is_some_and(|room| room / FAR_FROM_CAP >= bound.max(1))
}

/// The most a request to `model` can cost, in nano-dollars; `None` when no deployment of the group has a price.
/// `exact`: count the prompt's tokens with each deployment's tokenizer; else take its byte length (a bound).
pub fn max_cost(
    table: &RoutingTable,
    model: &str,
    asked: &Asked<'_>,
    default_max_tokens: u64,
    exact: bool,
) -> Option<u64> {
    let group = table.group(model)?;
    let mut most: Option<u64> = None;
    for (i, d) in group.deployments.iter().enumerate() {
        let Pricing::Priced(prices) = d.pricing else { continue };
        let traits = group.traits.get(i);
        let prompt = match (asked.prompt, traits) {
            (Some(p), Some(t)) if exact => p.tokens(t.encoding),
            (Some(p), _) => p.upper_bound(),
            (None, _) => asked.input_bound,
        };
        let output = budgets::output_bound(asked.max_output, default_max_tokens, traits.and_then(|t| t.max_output));
        let cost = budgets::max_cost_nanos(prompt, output, prices.input_cost_per_token, prices.output_cost_per_token);
        most = Some(most.map_or(cost, |m| m.max(cost)));
    }
    most
}

/// The charges a request by `caller` to `model` for `end_user` is bound by.
fn charges(caller: &Caller, end_user: Option<&EndUserRecord>, model: &str) -> Vec<Charge> {
    let mut out = Vec::new();
    if let Some(key) = caller.key() {
        out.extend(key.budgets.iter().cloned());
        out.extend(key.model_budgets.get(model).cloned());
    }
    if let Some(budget) = end_user.and_then(|u| u.budget.clone()) {
        out.push(budget);
    }
    out
}

/// Reserves the request's maximum cost, or refuses it (429 `budget_exceeded`) naming the budget. `None`: no budget
/// applies.
pub async fn reserve(
    ledger: &Ledger,
    caller: &Caller,
    end_user: Option<&EndUserRecord>,
    table: &RoutingTable,
    model: &str,
    asked: &Asked<'_>,
    default_max_tokens: u64,
) -> Result<Option<Reservation>, ApiError> {
    let charges = charges(caller, end_user, model);
    if charges.is_empty() {
        return Ok(None);
    }
    let now = crate::clock::unix_secs();
    // `room` is `None` when no budget has a cap: nothing to reserve against.
    let size = |room: Option<u64>| {
        let Some(room) = room else { return 0 };
        let cost = match max_cost(table, model, asked, default_max_tokens, false) {
            Some(bound) if far_from_cap(Some(room), bound) => Some(bound),
            _ => max_cost(table, model, asked, default_max_tokens, true),
        };
        cost.unwrap_or_else(|| {
            ledger.count_unpriced();
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Relaxed) {
                tracing::warn!(
                    model,
                    "a budgeted request to a model group without a price reserves $0 (its cost is counted when \
                     known; counted in tollgate_budget_unpriced_reservations_total; warned once)"
                );
            }
            0
        })
    };
    let reserved = ledger.reserve_sized(&charges, now, size).await;
    reserved.map(Some).map_err(|e| ApiError::BudgetExceeded { exceeded: e, now })
}

/// The reservation as the request log's record holds it: when the record is finished, the request's real cost
/// replaces the reservation, and the record names the periods it counts in (`store::spend`).
pub struct Held(pub Reservation);

impl Finish for Held {
    fn finish(self: Box<Self>, record: &mut LogRecord) {
        record.budget_periods = self.0.periods().into_iter().map(|(k, start)| (k.tag().to_owned(), start)).collect();
        // A cost that could not be counted (an accounting gap, named in the record) settles as what was counted.
        self.0.settle(record.cost_nanos.unwrap_or(0));
    }
}

/// Holds `reservation` in the request's log record (`log`); without one, it is released at once.
pub fn hold(log: Option<&Arc<crate::logs::request::RequestLog>>, reservation: Option<Reservation>) {
    if let (Some(log), Some(r)) = (log, reservation) {
        log.hold(Box::new(Held(r)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_budget_far_from_its_cap_skips_counting_the_prompt() {
        let cases = [
            (None, 10, false),
            (Some(0), 10, false),
            (Some(639), 10, false),
            (Some(640), 10, true),
            (Some(u64::MAX), 10, true),
            // An unpriced request's bound is 0, still needs room.
            (Some(63), 0, false),
            (Some(64), 0, true),
        ];
        for (room, bound, want) in cases {
            assert_eq!(far_from_cap(room, bound), want, "room {room:?}, bound {bound}");
        }
    }
}
