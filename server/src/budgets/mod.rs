//! Budgets: `max_budget` per key, team, user, team member, end user and per model of a key, each over a period
//! (`budget_duration`) or over the entity's lifetime; `soft_budget`, which only warns.
//!
//! Contract: before its first upstream call a request reserves its maximum cost on every budget that applies, all
//! or nothing ([`Ledger::reserve`]); the [`Reservation`] it gets is held by the request-level log record and is
//! replaced by the real cost when that record is finished, however the request ended. In-process the accounts of a
//! reservation are locked in name order for a few comparisons, never across an await, so concurrent requests can
//! never take spend + reservations past a cap. With Redis ([`redis`]) each replica reserves from a lease of the
//! budget it took from Redis in chunks (one Lua script per lease). Pure arithmetic (periods, amounts, lease sizes)
//! is in this file and table-tested. Imports nothing of the request path, the store or HTTP.

pub mod ledger;
pub mod redis;

use std::fmt;

pub use self::ledger::{Ledger, Reservation};
use crate::access::period::{self, Period};

/// Nano-dollars in a dollar.
pub const NANOS_PER_USD: f64 = 1e9;

/// Whose budget. The tag is the `spend` table's `entity_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BudgetKind {
    Key,
    Team,
    User,
    Member,
    EndUser,
    KeyModel,
}

impl BudgetKind {
    pub const ALL: [BudgetKind; 6] = [
        BudgetKind::Key,
        BudgetKind::Team,
        BudgetKind::User,
        BudgetKind::Member,
        BudgetKind::EndUser,
        BudgetKind::KeyModel,
    ];

    /// `entity_kind` in the `spend` table, the Prometheus label, and the tag in the request log's periods.
    pub fn tag(self) -> &'static str {
        match self {
            BudgetKind::Key => "key",
            BudgetKind::Team => "team",
            BudgetKind::User => "user",
            BudgetKind::Member => "member",
            BudgetKind::EndUser => "end_user",
            BudgetKind::KeyModel => "key_model",
        }
    }

    pub fn from_tag(tag: &str) -> Option<BudgetKind> {
        BudgetKind::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// How a refusal names it ("Budget exceeded for key sk-...abcd").
    pub fn noun(self) -> &'static str {
        match self {
            BudgetKind::Key => "key",
            BudgetKind::Team => "team",
            BudgetKind::User => "user",
            BudgetKind::Member => "team member",
            BudgetKind::EndUser => "end user",
            BudgetKind::KeyModel => "model budget of key",
        }
    }
}

/// The `entity_id` of a member's spend: team and user.
pub fn member_id(team_id: &str, user_id: &str) -> String {
    format!("{team_id}/{user_id}")
}

/// The `entity_id` of a key's spend on one model group.
pub fn key_model_id(key_hash: &str, model: &str) -> String {
    format!("{key_hash}/{model}")
}

/// A budget as an entity sets it. Money in nano-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    /// `max_budget`: reservations + spend never pass it. `None`: only counted (and soft-checked).
    pub cap: Option<u64>,
    /// `soft_budget`: crossing it warns once per period.
    pub soft: Option<u64>,
    /// `budget_duration`; `None`: the budget is for the entity's lifetime.
    pub period: Option<Period>,
    /// The stored `budget_reset_at`: the first reset, from which every later one is counted.
    pub anchor: Option<i64>,
}

impl Budget {
    /// Whether anything is enforced or watched.
    pub fn is_set(&self) -> bool {
        self.cap.is_some() || self.soft.is_some()
    }

    /// The current period at `now` (Unix seconds): its start (the `spend` row's `period_start`; 0 for a lifetime
    /// budget) and its end (the next reset), if it has one.
    pub fn window(&self, now: i64) -> (i64, Option<i64>) {
        match (self.period, self.anchor) {
            (Some(p), Some(anchor)) => {
                let (start, end) = p.window(anchor, now);
                (start, Some(end))
            }
            _ => (0, None),
        }
    }
}

/// One budget a request is bound by: whose, and what was stored as spent when the entity was loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    pub kind: BudgetKind,
    /// `spend.entity_id`: a key's hash, a team id, a user id, `team/user`, an end user id, `hash/model`.
    pub id: String,
    /// How a refusal names it: `sk-...abcd` (or the key's alias), the team's id, ...
    pub name: String,
    pub budget: Budget,
    /// `(period_start, spend)` read from the store when the entity was loaded: an account made in that period
    /// starts from it (spend journaled but not yet stored is missing from it: docs/budgets.md).
    pub stored: Option<(i64, u64)>,
}

impl Charge {
    /// The ledger's name for the account: kind and id.
    pub fn scope(&self) -> String {
        format!("{}:{}", self.kind.tag(), self.id)
    }
}

/// A request refused by a budget: 429 `budget_exceeded`, `x-should-retry: false`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    pub kind: BudgetKind,
    pub name: String,
    /// Spent in the current period (settled; with Redis, what every replica took).
    pub spent: u64,
    pub cap: u64,
    /// Unix seconds of the next reset, for a periodic budget.
    pub resets_at: Option<i64>,
}

impl Exceeded {
    /// Seconds until the reset, at least 1 (`retry-after`), for a periodic budget.
    pub fn retry_after_secs(&self, now: i64) -> Option<u64> {
        self.resets_at.map(|at| u64::try_from(at - now).unwrap_or(0).max(1))
    }
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Budget exceeded for {} {}: spend {} of {}",
            self.kind.noun(),
            self.name,
            usd(self.spent),
            usd(self.cap)
        )?;
        match self.resets_at {
            Some(at) => write!(f, "; resets {}", period::iso8601(at)),
            None => write!(f, "; the budget does not reset (no budget_duration): an admin can raise max_budget"),
        }
    }
}

/// `$1.02`: dollars with cents, more digits only when cents would show a nonzero amount as $0.00.
pub fn usd(nanos: u64) -> String {
    let dollars = nanos as f64 / NANOS_PER_USD;
    if nanos > 0 && nanos < 10_000_000 {
        format!("${dollars:.6}")
    } else {
        format!("${dollars:.2}")
    }
}

/// A USD amount from the management API as nano-dollars: finite and not negative.
pub fn nanos_of_usd(usd: f64) -> Option<i64> {
    (0.0..9e9).contains(&usd).then(|| (usd * NANOS_PER_USD).round() as i64)
}

/// Nano-dollars as the management API's USD.
pub fn usd_of_nanos(nanos: i64) -> f64 {
    nanos as f64 / NANOS_PER_USD
}

/// What a request may cost at most, from its prompt's token count and its output bound, at a deployment's prices
/// (USD per token). Rounded up: a reservation must never be smaller than the cost it stands for.
pub fn max_cost_nanos(prompt_tokens: u64, output_tokens: u64, input_per_token: f64, output_per_token: f64) -> u64 {
    let usd = prompt_tokens as f64 * input_per_token + output_tokens as f64 * output_per_token;
    // Less a millionth of a nano-dollar first, so float noise (2459100.0000000005) does not round a whole cost up.
    (usd * NANOS_PER_USD - 1e-6).ceil().max(0.0) as u64
}

/// The output a request may produce, for its reservation: the request's `max_tokens` (or
/// `max_completion_tokens`), else the configured default (`budget_default_max_tokens`); never more than the
/// model's catalog maximum output, when known, since no answer can be longer.
pub fn output_bound(requested: Option<u64>, default: u64, catalog_max_output: Option<u64>) -> u64 {
    let asked = requested.unwrap_or(default);
    catalog_max_output.map_or(asked, |max| asked.min(max))
}

/// The smallest lease a replica takes from Redis: a cent.
pub const MIN_LEASE_NANOS: u64 = 10_000_000;

/// How much of a budget a replica asks Redis for when its lease cannot cover `need`: 10% of the cap but at least a
/// cent, and at least what is needed. Redis grants at most what is left of the cap.
pub fn lease_size(cap: u64, need: u64) -> u64 {
    (cap / 10).max(MIN_LEASE_NANOS).max(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_cover_the_worst_case_rounded_up() {
        let cases = [
            // (prompt, output bound, $ in/token, $ out/token, nanos)
            (0, 0, 1e-6, 2e-6, 0),
            (100, 0, 1e-6, 2e-6, 100_000),
            (100, 50, 1e-6, 2e-6, 200_000),
            (10, 4096, 1.5e-7, 6e-7, 2_459_100),
            (1, 0, 1e-10, 0.0, 1),
        ];
        for (prompt, output, input_price, output_price, want) in cases {
            assert_eq!(max_cost_nanos(prompt, output, input_price, output_price), want, "{prompt} {output}");
        }
        let bounds = [
            (Some(10), 4096, None, 10),
            (None, 4096, None, 4096),
            (None, 4096, Some(1000), 1000),
            (Some(20_000), 4096, Some(16_384), 16_384),
        ];
        for (asked, default, max, want) in bounds {
            assert_eq!(output_bound(asked, default, max), want, "{asked:?} {default} {max:?}");
        }
    }

    #[test]
    fn leases_are_a_tenth_of_the_cap_at_least_a_cent_and_what_is_needed() {
        let cases = [
            (1_000_000_000, 1, 100_000_000),
            (50_000_000, 1, MIN_LEASE_NANOS),
            (1_000_000_000, 300_000_000, 300_000_000),
            (0, 5, MIN_LEASE_NANOS),
        ];
        for (cap, need, want) in cases {
            assert_eq!(lease_size(cap, need), want, "{cap} {need}");
        }
    }

    #[test]
    fn refusals_name_the_budget_the_spend_and_the_reset() {
        let e = Exceeded {
            kind: BudgetKind::Key,
            name: "sk-...abcd".into(),
            spent: 1_020_000_000,
            cap: 1_000_000_000,
            resets_at: Some(1_796_083_200),
        };
        assert_eq!(
            e.to_string(),
            "Budget exceeded for key sk-...abcd: spend $1.02 of $1.00; resets 2026-12-01T00:00:00Z"
        );
        assert_eq!(e.retry_after_secs(1_796_083_100), Some(100));
        let member = Exceeded { kind: BudgetKind::Member, resets_at: None, ..e };
        assert!(member.to_string().starts_with("Budget exceeded for team member sk-...abcd"), "{member}");
        assert_eq!(usd(1_500), "$0.000002");
        assert_eq!(nanos_of_usd(1.25), Some(1_250_000_000));
        assert_eq!(nanos_of_usd(-1.0), None);
        assert_eq!(nanos_of_usd(f64::NAN), None);
    }

    #[test]
    fn lifetime_budgets_have_one_period_from_zero() {
        let lifetime = Budget { cap: Some(5), ..Budget::default() };
        assert_eq!(lifetime.window(1_000), (0, None));
        let daily = Budget { cap: Some(5), period: Some(Period::Seconds(86_400)), anchor: Some(86_400), soft: None };
        assert_eq!(daily.window(86_400 * 3 + 5), (86_400 * 3, Some(86_400 * 4)));
    }
}
