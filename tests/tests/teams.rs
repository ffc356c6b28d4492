//! Teams, users, sign-in and roles over HTTP, on SQLite and on Postgres: the role matrix (every management route ×
//! every role, asserted by status) and a team member's self-service (sign in with cookie and CSRF, keys within the
//! team's models, another team's keys out of sight).

use serde_json::{json, Value};
use tollgate_tests::{
    chat_body, get, get_with, post, post_with,
    store::{PgSchema, TempSqlite},
    Gateway, Reply, MASTER_KEY,
};

const CONFIG: &str = "model_list:
  - {model_name: a, litellm_params: {model: mock/a}}
  - {model_name: b, litellm_params: {model: mock/b}}
  - {model_name: c, litellm_params: {model: mock/c}}
general_settings:
  master_key: sk-test-master
";

const PASSWORD: &str = "a long enough password";

fn code(r: &Reply) -> &str {
    r.json["error"]["code"].as_str().unwrap_or("<no code>")
}

async fn admin_post(gw: &Gateway, path: &str, body: Value) -> Reply {
    let r = post(&gw.url, path, Some(MASTER_KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{path} {body}: {}", r.text);
    r
}

/// A caller of management routes.
#[derive(Clone)]
enum Who {
    Master,
    /// A signed-in session: its cookie and CSRF token.
    Session {
        cookie: String,
        csrf: String,
    },
    Nobody,
}

impl Who {
    async fn post(&self, gw: &Gateway, path: &str, body: &Value) -> Reply {
        let headers: Vec<(&str, &str)> = match self {
            Who::Master => return post(&gw.url, path, Some(MASTER_KEY), body.to_string()).await,
            Who::Session { cookie, csrf } => vec![("cookie", cookie), ("x-csrf-token", csrf)],
            Who::Nobody => vec![],
        };
        post_with(&gw.url, path, &headers, body.to_string()).await
    }

    async fn get(&self, gw: &Gateway, path: &str) -> Reply {
        match self {
            Who::Master => get(&gw.url, path, Some(MASTER_KEY)).await,
            Who::Session { cookie, .. } => get_with(&gw.url, path, &[("cookie", cookie)]).await,
            Who::Nobody => get(&gw.url, path, None).await,
        }
    }
}

/// Signs in; returns the session (asserting the cookie's attributes).
async fn sign_in(gw: &Gateway, body: Value) -> Who {
    let r = post(&gw.url, "/login", None, body.to_string()).await;
    assert_eq!(r.status, 200, "{body}: {}", r.text);
    let set = r.header("set-cookie").unwrap_or_default().to_owned();
    for part in ["tollgate_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    let cookie = set.split(';').next().unwrap_or_default().to_owned();
    assert!(
        !r.text.contains(cookie.trim_start_matches("tollgate_session=")),
        "the session token is only in the cookie"
    );
    let csrf = r.json["csrf_token"].as_str().unwrap_or_default().to_owned();
    assert_eq!(csrf.len(), 64, "{}", r.text);
    Who::Session { cookie, csrf }
}

/// A user with a password and a role, optionally in a team with a team role; signed in.
async fn user(gw: &Gateway, id: &str, role: &str, team: Option<(&str, &str)>) -> Who {
    admin_post(
        gw,
        "/user/new",
        json!({"user_id": id, "user_email": format!("{id}@example.com"),
        "user_role": role, "password": PASSWORD}),
    )
    .await;
    if let Some((team_id, team_role)) = team {
        admin_post(gw, "/team/member_add", json!({"team_id": team_id, "member": {"user_id": id, "role": team_role}}))
            .await;
    }
    sign_in(gw, json!({"email": format!("{id}@example.com"), "password": PASSWORD})).await
}

/// A fresh key in `team` (made by the master key); returns its value.
async fn team_key(gw: &Gateway, team: &str, models: Value) -> String {
    let r = admin_post(gw, "/key/generate", json!({"team_id": team, "models": models})).await;
    r.json["key"].as_str().unwrap_or_default().to_owned()
}

async fn fresh_user(gw: &Gateway, n: &mut u32) -> String {
    *n += 1;
    let id = format!("fresh-{n}");
    admin_post(gw, "/user/new", json!({"user_id": id})).await;
    id
}

async fn fresh_customer(gw: &Gateway, n: &mut u32) -> String {
    *n += 1;
    let id = format!("fresh-customer-{n}");
    admin_post(gw, "/customer/new", json!({"user_id": id})).await;
    id
}

async fn fresh_team(gw: &Gateway, n: &mut u32) -> String {
    *n += 1;
    let id = format!("fresh-team-{n}");
    admin_post(gw, "/team/new", json!({"team_id": id})).await;
    id
}

/// One call of `route` whose target is in team `ta` (fresh where the call changes or removes it), so the answer
/// depends only on who calls. `None` for a GET.
async fn call_for(gw: &Gateway, route: &str, n: &mut u32) -> (String, Option<Value>) {
    let post = |path: &str, body: Value| (path.to_owned(), Some(body));
    match route {
        "/key/generate" => post(route, json!({"team_id": "ta", "models": ["a"]})),
        "/key/update" => post(route, json!({"key": team_key(gw, "ta", json!([])).await, "key_alias": "x"})),
        "/key/delete" => post(route, json!({"keys": [team_key(gw, "ta", json!([])).await]})),
        "/key/info" => (format!("/key/info?key={}", team_key(gw, "ta", json!([])).await), None),
        "/key/list" => ("/key/list".into(), None),
        "/key/regenerate" => post(route, json!({"key": team_key(gw, "ta", json!([])).await})),
        "/key/block" | "/key/unblock" => post(route, json!({"key": team_key(gw, "ta", json!([])).await})),
        "/team/new" => post(route, json!({"team_alias": "new"})),
        "/team/update" => post(route, json!({"team_id": "ta", "metadata": {"n": *n}})),
        "/team/delete" => post(route, json!({"team_ids": [fresh_team(gw, n).await]})),
        "/team/info" => ("/team/info?team_id=ta".into(), None),
        "/team/list" => ("/team/list".into(), None),
        "/team/member_add" => post(route, json!({"team_id": "ta", "member": {"user_id": fresh_user(gw, n).await}})),
        "/team/member_delete" | "/team/member_update" => {
            let id = fresh_user(gw, n).await;
            admin_post(gw, "/team/member_add", json!({"team_id": "ta", "member": {"user_id": id}})).await;
            post(route, json!({"team_id": "ta", "user_id": id, "role": "user"}))
        }
        "/team/block" | "/team/unblock" => post(route, json!({"team_id": fresh_team(gw, n).await})),
        "/user/new" => {
            *n += 1;
            post(route, json!({"user_id": format!("made-{n}")}))
        }
        "/user/update" => post(route, json!({"user_id": fresh_user(gw, n).await, "metadata": {"x": 1}})),
        "/user/delete" => post(route, json!({"user_ids": [fresh_user(gw, n).await]})),
        "/user/info" => ("/user/info?user_id=member".into(), None),
        "/user/list" => ("/user/list".into(), None),
        "/invitation/new" => post(route, json!({"user_id": fresh_user(gw, n).await})),
        "/routing/explain" => ("/routing/explain?model=a".into(), None),
        "/health" => ("/health".into(), None),
        "/customer/new" => {
            *n += 1;
            post(route, json!({"user_id": format!("customer-{n}")}))
        }
        "/customer/update" => post(route, json!({"user_id": "eu-1", "alias": format!("a{n}")})),
        "/customer/delete" => post(route, json!({"user_ids": [fresh_customer(gw, n).await]})),
        "/customer/info" => ("/customer/info?end_user_id=eu-1".into(), None),
        "/customer/list" => ("/customer/list".into(), None),
        "/customer/block" | "/customer/unblock" => post(route, json!({"user_ids": [fresh_customer(gw, n).await]})),
        "/config/reload" => post(route, json!({})),
        "/spend/logs" => ("/spend/logs?team_id=ta".into(), None),
        "/global/spend/report" => ("/global/spend/report?group_by=key".into(), None),
        "/global/activity" => ("/global/activity".into(), None),
        other => unreachable!("no call for {other}"),
    }
}

/// The role matrix: every management route × every role (the brief's seven callers, and an
/// `internal_user_viewer` member of team A). 400 on /config/reload means "allowed": an in-process
/// gateway has no config file to re-read.
const MATRIX: [(&str, [u16; 8]); 37] = [
    // route                  master  admin  viewer  team-admin  member  other-team  team-viewer  nobody
    ("/key/generate", /*  */ [200, 200, 403, 200, 200, 403, 403, 401]),
    ("/key/update", /*    */ [200, 200, 403, 200, 200, 404, 403, 401]),
    ("/key/delete", /*    */ [200, 200, 403, 200, 200, 404, 403, 401]),
    ("/key/info", /*      */ [200, 200, 200, 200, 200, 404, 200, 401]),
    ("/key/list", /*      */ [200, 200, 200, 200, 200, 200, 200, 401]),
    ("/key/regenerate", /**/ [200, 200, 403, 200, 200, 404, 403, 401]),
    ("/key/block", /*     */ [200, 200, 403, 200, 403, 404, 403, 401]),
    ("/key/unblock", /*   */ [200, 200, 403, 200, 403, 404, 403, 401]),
    ("/team/new", /*      */ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/team/update", /*   */ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/team/delete", /*   */ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/team/info", /*     */ [200, 200, 200, 200, 200, 404, 200, 401]),
    ("/team/list", /*     */ [200, 200, 200, 200, 200, 200, 200, 401]),
    ("/team/member_add", [200, 200, 403, 200, 403, 404, 403, 401]),
    ("/team/member_delete", [200, 200, 403, 200, 403, 404, 403, 401]),
    ("/team/member_update", [200, 200, 403, 200, 403, 404, 403, 401]),
    ("/team/block", /*    */ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/team/unblock", /*  */ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/user/new", /*      */ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/user/update", /*   */ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/user/delete", /*   */ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/user/info", /*     */ [200, 200, 200, 404, 200, 404, 404, 401]),
    ("/user/list", /*     */ [200, 200, 200, 403, 403, 403, 403, 401]),
    ("/invitation/new", /**/ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/routing/explain", [200, 200, 200, 403, 403, 403, 403, 401]),
    ("/config/reload", /* */ [400, 400, 403, 403, 403, 403, 403, 401]),
    ("/health", /*        */ [200, 200, 200, 403, 403, 403, 403, 401]),
    ("/customer/new", /*  */ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/customer/update", [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/customer/delete", [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/customer/info", /* */ [200, 200, 200, 403, 403, 403, 403, 401]),
    ("/customer/list", /* */ [200, 200, 200, 403, 403, 403, 403, 401]),
    ("/customer/block", /**/ [200, 200, 403, 403, 403, 403, 403, 401]),
    ("/customer/unblock", [200, 200, 403, 403, 403, 403, 403, 401]),
    // Spend: members read their own teams' rows (another team's member gets an empty answer, not a refusal).
    ("/spend/logs", /*    */ [200, 200, 200, 200, 200, 200, 200, 401]),
    ("/global/spend/report", [200, 200, 200, 200, 200, 200, 200, 401]),
    ("/global/activity", [200, 200, 200, 200, 200, 200, 200, 401]),
];

async fn role_matrix(database_url: &str) {
    let gw = Gateway::start_on(CONFIG, database_url);
    admin_post(&gw, "/team/new", json!({"team_id": "ta", "team_alias": "A", "models": ["a", "b"]})).await;
    admin_post(&gw, "/team/new", json!({"team_id": "tb", "team_alias": "B", "models": ["c"]})).await;
    admin_post(&gw, "/customer/new", json!({"user_id": "eu-1"})).await;
    let roles = [
        ("master", Who::Master),
        ("proxy_admin user", user(&gw, "admin", "proxy_admin", None).await),
        ("viewer", user(&gw, "viewer", "proxy_admin_viewer", None).await),
        ("team admin", user(&gw, "team-admin", "internal_user", Some(("ta", "admin"))).await),
        ("team member", user(&gw, "member", "internal_user", Some(("ta", "user"))).await),
        ("other team's member", user(&gw, "other", "internal_user", Some(("tb", "user"))).await),
        ("team viewer", user(&gw, "team-viewer", "internal_user_viewer", Some(("ta", "user"))).await),
        ("no credentials", Who::Nobody),
    ];
    let mut n = 0;
    let mut wrong = Vec::new();
    for (route, statuses) in MATRIX {
        for ((name, who), want) in roles.iter().zip(statuses) {
            let (path, body) = call_for(&gw, route, &mut n).await;
            let got = match &body {
                Some(body) => who.post(&gw, &path, body).await,
                None => who.get(&gw, &path).await,
            };
            if got.status != want {
                wrong.push(format!("{route} as {name}: {} (want {want}) {}", got.status, got.text));
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {} cells differ:\n{}", wrong.len(), MATRIX.len() * roles.len(), wrong.join("\n"));
}

#[actix_rt::test]
async fn role_matrix_on_sqlite() {
    let db = TempSqlite::new();
    role_matrix(&db.url()).await;
}

#[actix_rt::test]
async fn role_matrix_on_postgres() {
    let schema = PgSchema::new();
    role_matrix(&schema.url()).await;
}

async fn chat(gw: &Gateway, key: &str, model: &str) -> Reply {
    post(&gw.url, "/v1/chat/completions", Some(key), chat_body(model, json!({}))).await
}

/// A member is invited, sets a password, signs in (cookie + CSRF), creates a key within the team's models, is
/// refused beyond them with the reason, and can neither see nor touch another team's keys.
async fn member_self_service(database_url: &str) {
    let gw = Gateway::start_on(CONFIG, database_url);
    admin_post(&gw, "/team/new", json!({"team_id": "ta", "models": ["a", "b"]})).await;
    admin_post(&gw, "/team/new", json!({"team_id": "tb", "models": ["c"]})).await;
    admin_post(&gw, "/user/new", json!({"user_id": "mia", "user_email": "mia@example.com", "teams": ["ta"]})).await;

    // Invited: no password yet, so no sign-in; the invitation sets one, once.
    let no = post(&gw.url, "/login", None, json!({"email": "mia@example.com", "password": PASSWORD}).to_string()).await;
    assert_eq!((no.status, code(&no)), (401, "invalid_credentials"), "{}", no.text);
    let invitation = admin_post(&gw, "/invitation/new", json!({"user_id": "mia"})).await;
    let id = invitation.json["id"].as_str().unwrap_or_default().to_owned();
    assert!(invitation.json["link"].as_str().is_some_and(|l| l.ends_with(&id)), "{}", invitation.text);
    let claim = json!({"invitation_link": invitation.json["link"], "user_id": "mia", "password": PASSWORD});
    let claimed = post(&gw.url, "/onboarding/claim_token", None, claim.to_string()).await;
    assert_eq!(claimed.status, 200, "{}", claimed.text);
    assert_eq!(claimed.json["status"], "active");
    assert!(!claimed.text.contains("argon2") && !claimed.text.contains(PASSWORD), "{}", claimed.text);
    let again = post(&gw.url, "/onboarding/claim_token", None, claim.to_string()).await;
    assert_eq!(again.status, 400, "an invitation is claimed once: {}", again.text);
    let wrong =
        post(&gw.url, "/login", None, json!({"email": "mia@example.com", "password": "not it at all"}).to_string())
            .await;
    assert_eq!(wrong.status, 401);

    let mia = sign_in(&gw, json!({"email": "mia@example.com", "password": PASSWORD})).await;
    let Who::Session { cookie, csrf } = mia.clone() else { unreachable!() };

    // Cookie-authenticated writes need the CSRF token; reads do not.
    let body = json!({"team_id": "ta", "models": ["a"]}).to_string();
    let forged = post_with(&gw.url, "/key/generate", &[("cookie", &cookie)], body.clone()).await;
    assert_eq!((forged.status, code(&forged)), (403, "csrf_token_invalid"), "{}", forged.text);
    let bad = post_with(&gw.url, "/key/generate", &[("cookie", &cookie), ("x-csrf-token", "0000")], body).await;
    assert_eq!(bad.status, 403, "{}", bad.text);
    assert_eq!(get_with(&gw.url, "/key/list", &[("cookie", &cookie)]).await.status, 200);

    // Within the team's models: created, owned by her, usable on its model only.
    let created = mia.post(&gw, "/key/generate", &json!({"team_id": "ta", "models": ["a"]})).await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert_eq!((created.json["team_id"].as_str(), created.json["user_id"].as_str()), (Some("ta"), Some("mia")));
    let key = created.json["key"].as_str().unwrap_or_default().to_owned();
    assert_eq!(chat(&gw, &key, "a").await.status, 200);

    // A member's key budget stays within the team's (a proxy admin's may exceed it; the team's binds anyway).
    admin_post(&gw, "/team/update", json!({"team_id": "ta", "max_budget": 5})).await;
    let over = mia.post(&gw, "/key/generate", &json!({"team_id": "ta", "max_budget": 6})).await;
    assert_eq!(over.status, 403, "{}", over.text);
    assert!(over.text.contains("max_budget $6.00 > the team's $5.00"), "{}", over.text);
    let within = mia.post(&gw, "/key/update", &json!({"key": key, "max_budget": 5})).await;
    assert_eq!(within.status, 200, "{}", within.text);
    // So do its rate limits; only a proxy admin changes the team's.
    admin_post(&gw, "/team/update", json!({"team_id": "ta", "rpm_limit": 1000})).await;
    let faster = mia.post(&gw, "/key/generate", &json!({"team_id": "ta", "rpm_limit": 1001})).await;
    assert_eq!(faster.status, 403, "{}", faster.text);
    assert!(faster.text.contains("rpm_limit 1001 > the team's 1000"), "{}", faster.text);
    let raise = mia.post(&gw, "/team/update", &json!({"team_id": "ta", "rpm_limit": 5000})).await;
    assert_eq!((raise.status, code(&raise)), (403, "forbidden"), "{}", raise.text);
    let b = chat(&gw, &key, "b").await;
    assert_eq!((b.status, code(&b)), (403, "model_not_allowed"), "{}", b.text);
    let whole_team = mia.post(&gw, "/key/generate", &json!({"team_id": "ta"})).await;
    let team_wide = whole_team.json["key"].as_str().unwrap_or_default().to_owned();
    assert_eq!(chat(&gw, &team_wide, "b").await.status, 200, "no models: the team's");
    let c = chat(&gw, &team_wide, "c").await;
    assert_eq!((c.status, code(&c)), (403, "model_not_allowed"), "key ∩ team: {}", c.text);

    // Beyond the team's: refused with the reason.
    let beyond = mia.post(&gw, "/key/generate", &json!({"team_id": "ta", "models": ["a", "c"]})).await;
    assert_eq!(beyond.status, 403, "{}", beyond.text);
    let says = beyond.json["error"]["message"].as_str().unwrap_or_default();
    assert!(says.contains("models outside team ta's models: c"), "{says}");
    let widen = mia.post(&gw, "/key/update", &json!({"key": key, "models": ["c"]})).await;
    assert_eq!(widen.status, 403, "{}", widen.text);
    let elsewhere = mia.post(&gw, "/key/generate", &json!({"team_id": "tb"})).await;
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.text);
    let no_team = mia.post(&gw, "/key/generate", &json!({})).await;
    assert_eq!(no_team.status, 400, "{}", no_team.text);
    let for_other = mia.post(&gw, "/key/generate", &json!({"team_id": "ta", "user_id": "someone"})).await;
    assert_eq!(for_other.status, 403, "{}", for_other.text);

    // Another team's key: not listed, and every touch answers as for a key that does not exist.
    let theirs = team_key(&gw, "tb", json!(["c"])).await;
    let listed = mia.get(&gw, "/key/list?return_full_object=true&size=100").await;
    let teams: Vec<&str> =
        listed.json["keys"].as_array().into_iter().flatten().filter_map(|k| k["team_id"].as_str()).collect();
    assert_eq!((teams.len(), teams.iter().all(|t| *t == "ta")), (2, true), "{}", listed.text);
    let listed_b = mia.get(&gw, "/key/list?team_id=tb").await;
    assert_eq!(listed_b.json["total_count"], 0, "{}", listed_b.text);
    let ghost = "sk-this-key-does-not-exist-0000";
    for (path, body) in [
        ("/key/update", json!({"key": theirs, "key_alias": "mine"})),
        ("/key/delete", json!({"keys": [theirs]})),
        ("/key/regenerate", json!({"key": theirs})),
        ("/key/block", json!({"key": theirs})),
    ] {
        let touched = mia.post(&gw, path, &body).await;
        assert_eq!((touched.status, code(&touched)), (404, "not_found"), "{path}: {}", touched.text);
    }
    let info = mia.get(&gw, &format!("/key/info?key={theirs}")).await;
    let missing = mia.get(&gw, &format!("/key/info?key={ghost}")).await;
    assert_eq!((info.status, missing.status), (404, 404), "{}", info.text);
    assert_eq!(info.json["error"]["code"], missing.json["error"]["code"]);
    assert_eq!(chat(&gw, &theirs, "c").await.status, 200, "still there, untouched");
    let team_b = mia.get(&gw, "/team/info?team_id=tb").await;
    assert_eq!(team_b.status, 404, "{}", team_b.text);
    let team_list = mia.get(&gw, "/team/list").await;
    assert_eq!(team_list.json.as_array().map(|t| t.len()), Some(1), "{}", team_list.text);

    // Her own keys: rotate and revoke.
    let rotated = mia.post(&gw, "/key/regenerate", &json!({"key": key})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_key = rotated.json["key"].as_str().unwrap_or_default().to_owned();
    assert_eq!(chat(&gw, &key, "a").await.status, 401);
    assert_eq!(chat(&gw, &new_key, "a").await.status, 200);

    // The team's changes reach its keys at once: narrower models, then blocked.
    admin_post(&gw, "/team/update", json!({"team_id": "ta", "models": ["b"]})).await;
    let narrowed = chat(&gw, &new_key, "a").await;
    assert_eq!((narrowed.status, code(&narrowed)), (403, "model_not_allowed"), "{}", narrowed.text);
    let renamed = mia.post(&gw, "/key/update", &json!({"key": new_key, "key_alias": "still mine"})).await;
    assert_eq!(renamed.status, 200, "a key made before its team narrowed can still be renamed: {}", renamed.text);
    admin_post(&gw, "/team/block", json!({"team_id": "ta"})).await;
    let blocked = chat(&gw, &team_wide, "b").await;
    assert_eq!((blocked.status, code(&blocked)), (403, "team_blocked"), "{}", blocked.text);
    admin_post(&gw, "/team/unblock", json!({"team_id": "ta"})).await;
    assert_eq!(chat(&gw, &team_wide, "b").await.status, 200);

    let revoked = mia.post(&gw, "/key/delete", &json!({"keys": [new_key]})).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(chat(&gw, &new_key, "b").await.status, 401);

    // Signed out: the cookie no longer works.
    let out = post_with(&gw.url, "/logout", &[("cookie", &cookie), ("x-csrf-token", &csrf)], "").await;
    assert_eq!(out.status, 200, "{}", out.text);
    assert!(out.header("set-cookie").is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(mia.get(&gw, "/key/list").await.status, 401);
}

#[actix_rt::test]
async fn member_self_service_on_sqlite() {
    let db = TempSqlite::new();
    member_self_service(&db.url()).await;
}

#[actix_rt::test]
async fn member_self_service_on_postgres() {
    let schema = PgSchema::new();
    member_self_service(&schema.url()).await;
}

#[actix_rt::test]
async fn the_master_key_signs_in_as_admin_and_team_rate_limits_are_validated() {
    let gw = Gateway::start(CONFIG);
    let wrong = post(&gw.url, "/login", None, json!({"username": "admin", "password": "sk-nope"}).to_string()).await;
    assert_eq!(wrong.status, 401);
    let admin = sign_in(&gw, json!({"username": "admin", "password": MASTER_KEY})).await;
    let team = admin.post(&gw, "/team/new", &json!({"team_id": "t", "max_budget": 10, "rpm_limit": -5})).await;
    assert_eq!(
        (team.status, code(&team), team.json["error"]["param"].as_str()),
        (400, "invalid_value", Some("rpm_limit"))
    );
    assert!(team.text.contains("`rpm_limit` must be a whole number, 0 or more"), "{}", team.text);
    let tags = admin.post(&gw, "/team/new", &json!({"team_id": "t", "tags": ["x"]})).await;
    assert_eq!((tags.status, code(&tags)), (400, "not_supported_yet"), "{}", tags.text);
    let made = admin.post(&gw, "/team/new", &json!({"team_id": "t", "rpm_limit": 5, "max_parallel_requests": 2})).await;
    assert_eq!(made.status, 200, "{}", made.text);
    assert_eq!((made.json["rpm_limit"].as_i64(), made.json["max_parallel_requests"].as_i64()), (Some(5), Some(2)));
    assert!(made.json["tpm_limit"].is_null(), "{}", made.text);
    let member = admin.post(&gw, "/team/member_add", &json!({"team_id": "t", "member": {"user_id": "nobody"}})).await;
    assert_eq!(member.status, 400, "{}", member.text);
    let budget = admin
        .post(&gw, "/team/member_update", &json!({"team_id": "t", "user_id": "x", "max_budget_in_team": -3}))
        .await;
    assert_eq!((budget.status, code(&budget)), (400, "invalid_value"), "{}", budget.text);
    let deleted = admin.post(&gw, "/team/delete", &json!({"team_ids": ["t"]})).await;
    assert_eq!(deleted.json["deleted_teams"], json!(["t"]), "{}", deleted.text);
}

/// A team change made through one gateway reaches a second gateway on the same store within its key cache TTL
/// (1 s here), and at once on the first.
#[actix_rt::test]
async fn a_team_change_reaches_a_replica_within_the_cache_ttl() {
    let schema = PgSchema::new();
    let config = format!("{CONFIG}  user_api_key_cache_ttl: 1\n");
    let gw = Gateway::start_on(&config, &schema.url());
    let replica = Gateway::start_on(&config, &schema.url());
    admin_post(&gw, "/team/new", json!({"team_id": "t", "models": ["a"]})).await;
    let key = team_key(&gw, "t", json!([])).await;
    assert_eq!(chat(&replica, &key, "a").await.status, 200);
    admin_post(&gw, "/team/block", json!({"team_id": "t"})).await;
    assert_eq!(chat(&gw, &key, "a").await.status, 403, "at once here");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut got = 0;
    while std::time::Instant::now() < deadline {
        got = chat(&replica, &key, "a").await.status;
        if got == 403 {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(got, 403, "the replica drops the team's key within its TTL");
    admin_post(&gw, "/team/delete", json!({"team_ids": ["t"]})).await;
    assert_eq!(chat(&gw, &key, "a").await.status, 401, "deleted with its team");
}
