//! Who may call which management route: ONE table, [`rule`], route × role → allow, deny, or allow within a
//! scope the handler checks against the target (the caller's own teams, teams it administers, itself).
//!
//! Roles are LiteLLM's `user_role`s (`proxy_admin`, `proxy_admin_viewer`, `internal_user`,
//! `internal_user_viewer`); the master key is a `proxy_admin`. Within a team, a user is `admin` (manages the
//! team's members and keys) or a member (manages the team's keys). docs/roles.md renders this table.

use super::AccessError;

/// LiteLLM's `user_role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRole {
    ProxyAdmin,
    ProxyAdminViewer,
    InternalUser,
    InternalUserViewer,
}

impl UserRole {
    pub const ALL: [UserRole; 4] =
        [UserRole::ProxyAdmin, UserRole::ProxyAdminViewer, UserRole::InternalUser, UserRole::InternalUserViewer];

    pub fn parse(text: &str) -> Result<UserRole, AccessError> {
        UserRole::ALL.into_iter().find(|r| r.as_str() == text).ok_or_else(|| {
            AccessError::bad_input(
                "user_role",
                format!(
                    "unknown user_role `{text}`: one of proxy_admin, proxy_admin_viewer, internal_user, \
                     internal_user_viewer"
                ),
            )
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::ProxyAdmin => "proxy_admin",
            UserRole::ProxyAdminViewer => "proxy_admin_viewer",
            UserRole::InternalUser => "internal_user",
            UserRole::InternalUserViewer => "internal_user_viewer",
        }
    }
}

/// A user's role within one team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamRole {
    Admin,
    Member,
}

impl TeamRole {
    /// LiteLLM's `"admin"` and `"user"`; `"member"` is accepted for the latter.
    pub fn parse(text: &str) -> Result<TeamRole, AccessError> {
        match text {
            "admin" => Ok(TeamRole::Admin),
            "user" | "member" => Ok(TeamRole::Member),
            _ => Err(AccessError::bad_input("role", format!("unknown team role `{text}`: `admin` or `user`"))),
        }
    }

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TeamRole::Admin => "admin",
            TeamRole::Member => "member",
        }
    }

    /// As LiteLLM's `members_with_roles` shows it.
    pub fn litellm(self) -> &'static str {
        match self {
            TeamRole::Admin => "admin",
            TeamRole::Member => "user",
        }
    }
}

/// Who is calling a management route.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `None`: the master key (or a session opened with it).
    pub user_id: Option<String>,
    pub role: UserRole,
    /// The teams the user belongs to, with the role in each.
    pub teams: Vec<(String, TeamRole)>,
}

impl Principal {
    pub fn master() -> Principal {
        Principal { user_id: None, role: UserRole::ProxyAdmin, teams: Vec::new() }
    }

    /// The name the audit columns (`created_by`, `updated_by`) record.
    pub fn name(&self) -> &str {
        self.user_id.as_deref().unwrap_or("proxy_admin")
    }

    pub fn role_in(&self, team_id: &str) -> Option<TeamRole> {
        self.teams.iter().find(|(t, _)| t == team_id).map(|(_, r)| *r)
    }

    /// Whether a target in `team_id` (and owned by `owner`) is within `scope` for this caller.
    pub fn reaches(&self, scope: Scope, team_id: Option<&str>, owner: Option<&str>) -> bool {
        match scope {
            Scope::All => true,
            Scope::OwnTeams => team_id.is_some_and(|t| self.role_in(t).is_some()),
            Scope::AdministeredTeams => team_id.is_some_and(|t| self.role_in(t) == Some(TeamRole::Admin)),
            Scope::Itself => owner.is_some() && owner == self.user_id.as_deref(),
        }
    }

    /// The teams `scope` lets this caller see (`None`: all).
    pub fn visible_teams(&self, scope: Scope) -> Option<Vec<String>> {
        match scope {
            Scope::All => None,
            Scope::OwnTeams | Scope::Itself => Some(self.teams.iter().map(|(t, _)| t.clone()).collect()),
            Scope::AdministeredTeams => {
                Some(self.teams.iter().filter(|(_, r)| *r == TeamRole::Admin).map(|(t, _)| t.clone()).collect())
            }
        }
    }
}

/// Every management route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    KeyGenerate,
    KeyUpdate,
    KeyDelete,
    KeyInfo,
    KeyList,
    KeyRegenerate,
    KeyBlock,
    KeyUnblock,
    TeamNew,
    TeamUpdate,
    TeamDelete,
    TeamInfo,
    TeamList,
    TeamMemberAdd,
    TeamMemberDelete,
    TeamMemberUpdate,
    TeamBlock,
    TeamUnblock,
    UserNew,
    UserUpdate,
    UserDelete,
    UserInfo,
    UserList,
    InvitationNew,
    RoutingExplain,
    ConfigReload,
    Health,
    CustomerNew,
    CustomerUpdate,
    CustomerDelete,
    CustomerInfo,
    CustomerList,
    CustomerBlock,
    CustomerUnblock,
    SpendLogs,
    SpendReport,
    GlobalActivity,
}

impl Route {
    #[cfg(test)]
    pub const ALL: [Route; 37] = [
        Route::KeyGenerate,
        Route::KeyUpdate,
        Route::KeyDelete,
        Route::KeyInfo,
        Route::KeyList,
        Route::KeyRegenerate,
        Route::KeyBlock,
        Route::KeyUnblock,
        Route::TeamNew,
        Route::TeamUpdate,
        Route::TeamDelete,
        Route::TeamInfo,
        Route::TeamList,
        Route::TeamMemberAdd,
        Route::TeamMemberDelete,
        Route::TeamMemberUpdate,
        Route::TeamBlock,
        Route::TeamUnblock,
        Route::UserNew,
        Route::UserUpdate,
        Route::UserDelete,
        Route::UserInfo,
        Route::UserList,
        Route::InvitationNew,
        Route::RoutingExplain,
        Route::ConfigReload,
        Route::Health,
        Route::CustomerNew,
        Route::CustomerUpdate,
        Route::CustomerDelete,
        Route::CustomerInfo,
        Route::CustomerList,
        Route::CustomerBlock,
        Route::CustomerUnblock,
        Route::SpendLogs,
        Route::SpendReport,
        Route::GlobalActivity,
    ];

    /// The route's path (`/key/{key}/regenerate` shares [`Route::KeyRegenerate`]).
    pub fn path(self) -> &'static str {
        match self {
            Route::KeyGenerate => "/key/generate",
            Route::KeyUpdate => "/key/update",
            Route::KeyDelete => "/key/delete",
            Route::KeyInfo => "/key/info",
            Route::KeyList => "/key/list",
            Route::KeyRegenerate => "/key/regenerate",
            Route::KeyBlock => "/key/block",
            Route::KeyUnblock => "/key/unblock",
            Route::TeamNew => "/team/new",
            Route::TeamUpdate => "/team/update",
            Route::TeamDelete => "/team/delete",
            Route::TeamInfo => "/team/info",
            Route::TeamList => "/team/list",
            Route::TeamMemberAdd => "/team/member_add",
            Route::TeamMemberDelete => "/team/member_delete",
            Route::TeamMemberUpdate => "/team/member_update",
            Route::TeamBlock => "/team/block",
            Route::TeamUnblock => "/team/unblock",
            Route::UserNew => "/user/new",
            Route::UserUpdate => "/user/update",
            Route::UserDelete => "/user/delete",
            Route::UserInfo => "/user/info",
            Route::UserList => "/user/list",
            Route::InvitationNew => "/invitation/new",
            Route::RoutingExplain => "/routing/explain",
            Route::ConfigReload => "/config/reload",
            Route::Health => "/health",
            Route::CustomerNew => "/customer/new",
            Route::CustomerUpdate => "/customer/update",
            Route::CustomerDelete => "/customer/delete",
            Route::CustomerInfo => "/customer/info",
            Route::CustomerList => "/customer/list",
            Route::CustomerBlock => "/customer/block",
            Route::CustomerUnblock => "/customer/unblock",
            Route::SpendLogs => "/spend/logs",
            Route::SpendReport => "/global/spend/report",
            Route::GlobalActivity => "/global/activity",
        }
    }

    /// Reads change nothing: viewers may call them.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Route::KeyInfo
                | Route::KeyList
                | Route::TeamInfo
                | Route::TeamList
                | Route::UserInfo
                | Route::UserList
                | Route::RoutingExplain
                | Route::Health
                | Route::CustomerInfo
                | Route::CustomerList
                | Route::SpendLogs
                | Route::SpendReport
                | Route::GlobalActivity
        )
    }
}

/// Within what a caller may act on a route's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    All,
    /// Keys and teams of the teams the caller belongs to (any team role).
    OwnTeams,
    /// Keys, teams and members of the teams the caller is `admin` of.
    AdministeredTeams,
    /// The caller's own user record.
    Itself,
}

/// The answer of [`rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Deny,
    Allow(Scope),
}

/// THE role table: what `role` may do on `route`.
pub fn rule(route: Route, role: UserRole) -> Rule {
    use Route::*;
    use Scope::*;
    match role {
        UserRole::ProxyAdmin => Rule::Allow(All),
        UserRole::ProxyAdminViewer if route.is_read() => Rule::Allow(All),
        UserRole::ProxyAdminViewer => Rule::Deny,
        UserRole::InternalUser => match route {
            // Self-service keys: create, list, rotate and revoke the keys of one's own teams.
            KeyGenerate | KeyUpdate | KeyDelete | KeyInfo | KeyList | KeyRegenerate => Rule::Allow(OwnTeams),
            // Blocking a key, and the team's members, are its admins' business.
            KeyBlock | KeyUnblock | TeamMemberAdd | TeamMemberDelete | TeamMemberUpdate => {
                Rule::Allow(AdministeredTeams)
            }
            TeamInfo | TeamList => Rule::Allow(OwnTeams),
            // Spend: the rows and rollups of their own teams' keys (the query's filter, not a refusal).
            SpendLogs | SpendReport | GlobalActivity => Rule::Allow(OwnTeams),
            UserInfo => Rule::Allow(Itself),
            // A team's models, limits and existence, users, invitations and the proxy's own routes: proxy admins.
            TeamNew | TeamUpdate | TeamDelete | TeamBlock | TeamUnblock | UserNew | UserUpdate | UserDelete
            | UserList | InvitationNew | RoutingExplain | ConfigReload | Health | CustomerNew | CustomerUpdate
            | CustomerDelete | CustomerInfo | CustomerList | CustomerBlock | CustomerUnblock => Rule::Deny,
        },
        UserRole::InternalUserViewer => match route {
            KeyInfo | KeyList | TeamInfo | TeamList | SpendLogs | SpendReport | GlobalActivity => Rule::Allow(OwnTeams),
            UserInfo => Rule::Allow(Itself),
            _ => Rule::Deny,
        },
    }
}

/// [`rule`] as a refusal for a caller the table denies.
pub fn authorize(principal: &Principal, route: Route) -> Result<Scope, AccessError> {
    match rule(route, principal.role) {
        Rule::Allow(scope) => Ok(scope),
        Rule::Deny => {
            Err(AccessError::Forbidden(format!("the role {} may not call {}", principal.role.as_str(), route.path())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_table() {
        use Route::*;
        use Scope::*;
        const D: Rule = Rule::Deny;
        const A: Rule = Rule::Allow(All);
        const T: Rule = Rule::Allow(OwnTeams);
        const M: Rule = Rule::Allow(AdministeredTeams);
        const S: Rule = Rule::Allow(Itself);
        // route, proxy_admin, proxy_admin_viewer, internal_user, internal_user_viewer
        let table: [(Route, [Rule; 4]); 37] = [
            (KeyGenerate, [A, D, T, D]),
            (KeyUpdate, [A, D, T, D]),
            (KeyDelete, [A, D, T, D]),
            (KeyInfo, [A, A, T, T]),
            (KeyList, [A, A, T, T]),
            (KeyRegenerate, [A, D, T, D]),
            (KeyBlock, [A, D, M, D]),
            (KeyUnblock, [A, D, M, D]),
            (TeamNew, [A, D, D, D]),
            (TeamUpdate, [A, D, D, D]),
            (TeamDelete, [A, D, D, D]),
            (TeamInfo, [A, A, T, T]),
            (TeamList, [A, A, T, T]),
            (TeamMemberAdd, [A, D, M, D]),
            (TeamMemberDelete, [A, D, M, D]),
            (TeamMemberUpdate, [A, D, M, D]),
            (TeamBlock, [A, D, D, D]),
            (TeamUnblock, [A, D, D, D]),
            (UserNew, [A, D, D, D]),
            (UserUpdate, [A, D, D, D]),
            (UserDelete, [A, D, D, D]),
            (UserInfo, [A, A, S, S]),
            (UserList, [A, A, D, D]),
            (InvitationNew, [A, D, D, D]),
            (RoutingExplain, [A, A, D, D]),
            (ConfigReload, [A, D, D, D]),
            (Health, [A, A, D, D]),
            (CustomerNew, [A, D, D, D]),
            (CustomerUpdate, [A, D, D, D]),
            (CustomerDelete, [A, D, D, D]),
            (CustomerInfo, [A, A, D, D]),
            (CustomerList, [A, A, D, D]),
            (CustomerBlock, [A, D, D, D]),
            (CustomerUnblock, [A, D, D, D]),
            (SpendLogs, [A, A, T, T]),
            (SpendReport, [A, A, T, T]),
            (GlobalActivity, [A, A, T, T]),
        ];
        assert_eq!(table.map(|(r, _)| r), Route::ALL, "every route, once, in order");
        for (route, rules) in table {
            for (role, want) in UserRole::ALL.into_iter().zip(rules) {
                assert_eq!(rule(route, role), want, "{} × {}", route.path(), role.as_str());
            }
        }
    }

    #[test]
    fn scopes_reach_own_teams_administered_teams_and_itself() {
        let p = Principal {
            user_id: Some("u1".into()),
            role: UserRole::InternalUser,
            teams: vec![("a".into(), TeamRole::Admin), ("m".into(), TeamRole::Member)],
        };
        let cases: &[(Scope, Option<&str>, Option<&str>, bool)] = &[
            (Scope::All, None, None, true),
            (Scope::OwnTeams, Some("a"), None, true),
            (Scope::OwnTeams, Some("m"), None, true),
            (Scope::OwnTeams, Some("x"), None, false),
            (Scope::OwnTeams, None, Some("u1"), false),
            (Scope::AdministeredTeams, Some("a"), None, true),
            (Scope::AdministeredTeams, Some("m"), None, false),
            (Scope::Itself, None, Some("u1"), true),
            (Scope::Itself, None, Some("u2"), false),
            (Scope::Itself, None, None, false),
        ];
        for (scope, team, owner, want) in cases {
            assert_eq!(p.reaches(*scope, *team, *owner), *want, "{scope:?} {team:?} {owner:?}");
        }
        assert_eq!(p.visible_teams(Scope::AdministeredTeams), Some(vec!["a".to_owned()]));
        assert_eq!(Principal::master().visible_teams(Scope::All), None);
        let denied = authorize(&p, Route::TeamNew).err().map(|e| (e.status(), e.to_string()));
        assert_eq!(denied, Some((403, "the role internal_user may not call /team/new".to_owned())));
        assert_eq!(UserRole::parse("proxy_admin_viewer"), Ok(UserRole::ProxyAdminViewer));
        assert!(UserRole::parse("root").is_err());
        assert_eq!(TeamRole::parse("user").map(TeamRole::litellm), Ok("user"));
    }
}
