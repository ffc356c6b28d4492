//! The team management routes, LiteLLM's paths and shapes: `/team/new`, `/team/update`, `/team/delete`,
//! `/team/info`, `/team/list`, `/team/member_add`, `/team/member_delete`, `/team/member_update`, `/team/block`,
//! `/team/unblock`. Who may call them is `access::roles`'s table; a team outside the caller's scope is answered
//! as one that does not exist (404). Every change drops the team's keys from the key cache, so the request path
//! never serves a key with a stale team in this process.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{
    keys::{logged, read},
    principal::{authorize, store_error},
    spend, AppState,
};
use crate::{
    access::{
        budgets,
        manage::KeyInfo,
        roles::{Principal, Route, Scope, TeamRole},
        teams::{self, Member, MemberAdd, MemberChange, MemberInfo, TeamInfo, TeamRefs, TeamRequest},
        AccessError,
    },
    budgets::BudgetKind,
    clock,
    error::ApiError,
    store::{keys::KeyFilter, teams::TeamRow, Store},
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/team/new", web::post().to(new))
        .route("/team/update", web::post().to(update))
        .route("/team/delete", web::post().to(delete))
        .route("/team/info", web::get().to(info))
        .route("/team/list", web::get().to(list))
        .route("/team/member_add", web::post().to(member_add))
        .route("/team/member_delete", web::post().to(member_delete))
        .route("/team/member_update", web::post().to(member_update))
        .route("/team/block", web::post().to(block))
        .route("/team/unblock", web::post().to(unblock));
}

fn not_found(team_id: &str) -> ApiError {
    AccessError::NotFound(format!("no team {team_id}")).into()
}

/// The team, if it exists and is within the caller's scope (else 404, either way).
async fn reachable_team(
    store: &Store,
    principal: &Principal,
    scope: Scope,
    team_id: &str,
) -> Result<TeamRow, ApiError> {
    let row = store.team_by_id(team_id).await.map_err(store_error)?;
    let row = row.ok_or_else(|| not_found(team_id))?;
    if principal.reaches(scope, Some(team_id), None) {
        return Ok(row);
    }
    if principal.reaches(Scope::OwnTeams, Some(team_id), None) {
        // The caller's own team, but this needs its admin: say why.
        return Err(AccessError::Forbidden(format!("only admins of team {team_id} may do this")).into());
    }
    Err(not_found(team_id))
}

/// A team's members as `members_with_roles` shows them.
async fn members(store: &Store, team_id: &str) -> Result<Vec<MemberInfo>, ApiError> {
    let rows = store.team_members(team_id).await.map_err(store_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let email = store.user_by_id(&row.user_id).await.map_err(store_error)?.and_then(|u| u.email);
        out.push(MemberInfo {
            role: teams::stored_role(&row).litellm(),
            user_id: row.user_id,
            user_email: email,
            max_budget_in_team: budgets::usd(row.max_budget_nanos),
        });
    }
    Ok(out)
}

async fn team_info(state: &AppState, row: &TeamRow) -> Result<TeamInfo, ApiError> {
    let mut info = TeamInfo::of(row, members(state.keys.store(), &row.team_id).await?);
    let budget = budgets::budget(
        row.max_budget_nanos,
        row.soft_budget_nanos,
        row.budget_duration.as_deref(),
        row.budget_reset_at,
    );
    let (spend, reset) = spend::current(state, BudgetKind::Team, &row.team_id, &budget).await?;
    info.spend = spend;
    info.budget_reset_at = reset;
    Ok(info)
}

/// The user a member entry names (by id, else by email); it must exist.
async fn member_user(store: &Store, user_id: Option<&str>, email: Option<&str>) -> Result<String, ApiError> {
    let user = match (user_id, email) {
        (Some(id), _) => store.user_by_id(id).await.map_err(store_error)?,
        (None, Some(email)) => store.user_by_email(email).await.map_err(store_error)?,
        (None, None) => {
            return Err(AccessError::bad_input("member", "a member needs `user_id` or `user_email`").into());
        }
    };
    let shown = user_id.or(email).unwrap_or_default();
    user.map(|u| u.user_id).ok_or_else(|| AccessError::bad_input("member", format!("no user {shown}")).into())
}

async fn add_members(
    store: &Store,
    team_id: &str,
    list: &[Member],
    budget: Option<i64>,
    now: i64,
) -> Result<(), ApiError> {
    for member in list {
        let role = member.team_role()?;
        let user_id = member_user(store, member.user_id.as_deref(), member.user_email.as_deref()).await?;
        store.put_membership(teams::membership(team_id, &user_id, role, budget, now)).await.map_err(store_error)?;
    }
    Ok(())
}

async fn new(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, _, bytes) = read(&req, payload, &state, Route::TeamNew).await?;
        let request = TeamRequest::parse(&bytes)?;
        let now = clock::unix_secs();
        let row = teams::new_team(&request, now)?;
        let store = state.keys.store();
        if store.team_by_id(&row.team_id).await.map_err(store_error)?.is_some() {
            return Err(AccessError::bad_input("team_id", format!("team {} already exists", row.team_id)).into());
        }
        // Members are checked before the team is written, so a bad member leaves no half-made team.
        for member in request.members_with_roles.iter().flatten() {
            member.team_role()?;
            member_user(store, member.user_id.as_deref(), member.user_email.as_deref()).await?;
        }
        let row = store.insert_team(row).await.map_err(store_error)?;
        let members = request.members_with_roles.as_deref().unwrap_or_default();
        add_members(store, &row.team_id, members, None, now).await?;
        tracing::info!(team = %row.team_id, by = %principal.name(), "team created");
        Ok(HttpResponse::Ok().json(team_info(&state, &row).await?))
    })
    .await
}

async fn update(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope, bytes) = read(&req, payload, &state, Route::TeamUpdate).await?;
        let mut request = TeamRequest::parse(&bytes)?;
        let team_id =
            request.team_id.take().ok_or_else(|| AccessError::bad_input("team_id", "`team_id` is required"))?;
        let store = state.keys.store();
        let row = reachable_team(store, &principal, scope, &team_id).await?;
        let row = teams::updated_team(row, request, clock::unix_secs())?;
        let row = store.update_team(row).await.map_err(store_error)?.ok_or_else(|| not_found(&team_id))?;
        // The team's models, budget and rate limits ride on its keys' cache entries: they apply from the next
        // request.
        state.keys.invalidate_team(&team_id);
        tracing::info!(team = %team_id, by = %principal.name(), "team updated");
        Ok(HttpResponse::Ok().json(team_info(&state, &row).await?))
    })
    .await
}

async fn set_blocked(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    blocked: bool,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let route = if blocked { Route::TeamBlock } else { Route::TeamUnblock };
        let (principal, scope, bytes) = read(&req, payload, &state, route).await?;
        let refs = TeamRefs::parse(&bytes)?;
        let team_id = refs.one()?;
        let store = state.keys.store();
        let mut row = reachable_team(store, &principal, scope, team_id).await?;
        row.blocked = blocked;
        row.updated_at = clock::unix_secs();
        let row = store.update_team(row).await.map_err(store_error)?.ok_or_else(|| not_found(team_id))?;
        state.keys.invalidate_team(team_id);
        tracing::info!(team = %team_id, blocked, by = %principal.name(), "team blocked state changed");
        Ok(HttpResponse::Ok().json(team_info(&state, &row).await?))
    })
    .await
}

async fn block(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    set_blocked(req, payload, state, true).await
}

async fn unblock(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_blocked(req, payload, state, false).await
}

async fn delete(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, _, bytes) = read(&req, payload, &state, Route::TeamDelete).await?;
        let refs = TeamRefs::parse(&bytes)?;
        let mut ids = refs.team_ids.clone();
        ids.extend(refs.team_id.clone());
        if ids.is_empty() {
            return Err(AccessError::bad_input("team_ids", "name the teams to delete in `team_ids`").into());
        }
        let (deleted, keys) = state.keys.store().delete_teams(&ids).await.map_err(store_error)?;
        for team in &deleted {
            state.keys.invalidate_team(team);
        }
        if deleted.is_empty() {
            return Err(AccessError::NotFound("none of the named teams exists".into()).into());
        }
        tracing::info!(teams = deleted.len(), keys = keys.len(), by = %principal.name(), "teams deleted with their keys");
        Ok(HttpResponse::Ok().json(json!({ "deleted_teams": deleted, "deleted_keys": keys })))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct InfoQuery {
    team_id: Option<String>,
}

async fn info(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<InfoQuery>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope) = authorize(&req, &state, Route::TeamInfo).await?;
        let team_id =
            query.team_id.as_deref().ok_or_else(|| AccessError::bad_input("team_id", "`team_id` is required"))?;
        let store = state.keys.store();
        let row = reachable_team(store, &principal, scope, team_id).await?;
        let filter = KeyFilter { team_id: Some(team_id.to_owned()), ..KeyFilter::default() };
        let (keys, _) = store.list_keys(&filter, 1, 1000).await.map_err(store_error)?;
        let mut infos: Vec<KeyInfo> = Vec::with_capacity(keys.len());
        for key in &keys {
            infos.push(spend::key_info(&state, key).await?);
        }
        let keys = infos;
        let info = team_info(&state, &row).await?;
        Ok(HttpResponse::Ok().json(json!({
            "team_id": team_id,
            "team_info": info,
            "keys": keys,
            "team_memberships": info.members_with_roles,
        })))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    user_id: Option<String>,
}

/// LiteLLM answers `/team/list` with a JSON array of teams.
async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope) = authorize(&req, &state, Route::TeamList).await?;
        let store = state.keys.store();
        let mut ids = principal.visible_teams(scope);
        if let Some(user) = &query.user_id {
            let theirs: Vec<String> =
                store.memberships_of(user).await.map_err(store_error)?.into_iter().map(|m| m.team_id).collect();
            ids = Some(match ids {
                None => theirs,
                Some(visible) => theirs.into_iter().filter(|t| visible.contains(t)).collect(),
            });
        }
        let rows = store.list_teams(ids.as_deref()).await.map_err(store_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(team_info(&state, row).await?);
        }
        Ok(HttpResponse::Ok().json(out))
    })
    .await
}

async fn member_add(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope, bytes) = read(&req, payload, &state, Route::TeamMemberAdd).await?;
        let request = MemberAdd::parse(&bytes)?;
        let store = state.keys.store();
        let row = reachable_team(store, &principal, scope, &request.team_id).await?;
        let budget = budgets::usd_field("max_budget_in_team", request.max_budget_in_team.as_ref())?;
        add_members(store, &row.team_id, &request.members(), budget, clock::unix_secs()).await?;
        // Member budgets ride on their keys' cache entries.
        state.keys.invalidate_team(&row.team_id);
        tracing::info!(team = %row.team_id, by = %principal.name(), "team members added");
        Ok(HttpResponse::Ok().json(team_info(&state, &row).await?))
    })
    .await
}

async fn member_delete(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope, bytes) = read(&req, payload, &state, Route::TeamMemberDelete).await?;
        let request = MemberChange::parse(&bytes)?;
        let store = state.keys.store();
        let row = reachable_team(store, &principal, scope, &request.team_id).await?;
        let user_id = member_user(store, request.user_id.as_deref(), request.user_email.as_deref()).await?;
        if !store.delete_membership(&row.team_id, &user_id).await.map_err(store_error)? {
            return Err(AccessError::NotFound(format!("{user_id} is not a member of team {}", row.team_id)).into());
        }
        state.keys.invalidate_team(&row.team_id);
        tracing::info!(team = %row.team_id, user = %user_id, by = %principal.name(), "team member removed");
        Ok(HttpResponse::Ok().json(team_info(&state, &row).await?))
    })
    .await
}

async fn member_update(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    logged(&req, async || {
        let (principal, scope, bytes) = read(&req, payload, &state, Route::TeamMemberUpdate).await?;
        let request = MemberChange::parse(&bytes)?;
        let store = state.keys.store();
        let row = reachable_team(store, &principal, scope, &request.team_id).await?;
        let user_id = member_user(store, request.user_id.as_deref(), request.user_email.as_deref()).await?;
        let current = store.team_members(&row.team_id).await.map_err(store_error)?;
        let Some(membership) = current.into_iter().find(|m| m.user_id == user_id) else {
            return Err(AccessError::NotFound(format!("{user_id} is not a member of team {}", row.team_id)).into());
        };
        let role = match request.role.as_deref() {
            Some(role) => TeamRole::parse(role)?,
            None => teams::stored_role(&membership),
        };
        let budget = budgets::usd_field("max_budget_in_team", request.max_budget_in_team.as_ref())?
            .or(membership.max_budget_nanos);
        let changed = teams::membership(&row.team_id, &user_id, role, budget, membership.created_at);
        store.put_membership(changed).await.map_err(store_error)?;
        state.keys.invalidate_team(&row.team_id);
        tracing::info!(team = %row.team_id, user = %user_id, role = role.as_str(), by = %principal.name(),
            "team member updated");
        Ok(HttpResponse::Ok().json(team_info(&state, &row).await?))
    })
    .await
}
