//! Spend reports over HTTP (issue 16): `/spend/logs` (filters, keyset pages walked end to end),
//! `/global/spend/report` for every `group_by` and `/global/activity` equal the sums of the request log's rows,
//! on SQLite and Postgres; what viewers and team members see; the retention purge deletes old log rows and keeps
//! the rollups.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tollgate_tests::{
    chat_body, get, get_with, post, post_messages,
    store::{query_row, PgSchema, TempSqlite},
    FakeUpstream, Gateway, Reply, MASTER_KEY,
};

/// Two priced groups on the fake upstreams (1 and 2 nano-dollars per prompt and completion token), and one whose
/// upstream answers 400.
fn config(fake: &FakeUpstream, extra: &str) -> String {
    format!(
        "model_list:
  - model_name: oa
    litellm_params: {{model: openai/normal, api_base: {url}/v1, api_key: sk-fake-upstream-key-123456, input_cost_per_token: 0.000000001, output_cost_per_token: 0.000000002}}
  - model_name: an
    litellm_params: {{model: anthropic/normal, api_base: {url}, api_key: sk-fake-upstream-key-123456, input_cost_per_token: 0.000000001, output_cost_per_token: 0.000000002}}
  - model_name: bad
    litellm_params: {{model: openai/error-400, api_base: {url}/v1, api_key: sk-fake-upstream-key-123456}}
general_settings:
  master_key: {MASTER_KEY}
{extra}",
        url = fake.url
    )
}

const PASSWORD: &str = "a long enough password";

async fn admin_post(gw: &Gateway, path: &str, body: Value) -> Reply {
    let r = post(&gw.url, path, Some(MASTER_KEY), body.to_string()).await;
    assert_eq!(r.status, 200, "{path} {body}: {}", r.text);
    r
}

/// A signed-in user's cookie (`role`, optionally a member of `team`).
async fn session(gw: &Gateway, id: &str, role: &str, team: Option<&str>) -> String {
    let email = format!("{id}@example.com");
    admin_post(gw, "/user/new", json!({"user_id": id, "user_email": email, "user_role": role, "password": PASSWORD}))
        .await;
    if let Some(team) = team {
        admin_post(gw, "/team/member_add", json!({"team_id": team, "member": {"user_id": id, "role": "user"}})).await;
    }
    let r = post(&gw.url, "/login", None, json!({"email": email, "password": PASSWORD}).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.header("set-cookie").unwrap_or_default().split(';').next().unwrap_or_default().to_owned()
}

async fn chat(gw: &Gateway, key: &str, model: &str, extra: Value) -> u16 {
    post(&gw.url, "/v1/chat/completions", Some(key), chat_body(model, extra)).await.status
}

/// Sends the traffic: two keys in two teams, three groups (one failing upstream, one unknown), streamed and not,
/// both dialects, some with an end user. Returns how many requests and the two keys.
async fn traffic(gw: &Gateway) -> (i64, String, String) {
    admin_post(gw, "/team/new", json!({"team_id": "ta", "team_alias": "Team A"})).await;
    admin_post(gw, "/team/new", json!({"team_id": "tb"})).await;
    let ka = admin_post(gw, "/key/generate", json!({"team_id": "ta", "key_alias": "alpha"})).await;
    let ka = ka.json["key"].as_str().unwrap_or_default().to_owned();
    let kb = admin_post(gw, "/key/generate", json!({"team_id": "tb"})).await;
    let kb = kb.json["key"].as_str().unwrap_or_default().to_owned();
    let stream = json!({"stream": true, "stream_options": {"include_usage": true}});
    let mut n = 0;
    for (key, round) in [(&ka, 0), (&kb, 1)] {
        for i in 0..3 {
            assert_eq!(chat(gw, key, "oa", json!({})).await, 200);
            assert_eq!(chat(gw, key, "oa", stream.clone()).await, 200);
            assert_eq!(chat(gw, key, "an", json!({"user": format!("eu-{}", i % 2)})).await, 200);
            n += 3;
        }
        let messages =
            json!({"model": "an", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let r = tollgate_tests::post_with(
            &gw.url,
            "/v1/messages",
            &[("x-api-key", key.as_str()), ("anthropic-version", "2023-06-01"), ("content-type", "application/json")],
            messages.to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(chat(gw, key, "bad", json!({})).await, 400);
        assert_eq!(chat(gw, key, "nope", json!({})).await, 404);
        n += 3 + round;
        if round == 1 {
            assert_eq!(chat(gw, key, "oa", stream.clone()).await, 200);
        }
    }
    // No key at all: the master key (no key, no team in the log).
    assert_eq!(
        post_messages(
            &gw.url,
            json!({"model": "an", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}).to_string()
        )
        .await
        .status,
        200
    );
    n += 1;
    (n, ka, kb)
}

fn wait_rows(url: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let sql = "SELECT COUNT(*), (SELECT CAST(SUM(requests) AS BIGINT) FROM usage_daily) FROM request_log";
    let mut got = Err(String::new());
    while Instant::now() < deadline {
        got = query_row(url, sql);
        if got == Ok(vec![want, want]) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the log and rollups hold {got:?} requests, want {want}");
}

/// `(requests, cost, prompt tokens, completion tokens, failures)` of the log rows matching `condition`.
fn log_sums(url: &str, condition: &str) -> Vec<i64> {
    let sql = format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT), CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS BIGINT) FROM request_log WHERE {condition}"
    );
    query_row(url, &sql).unwrap_or_default()
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(-1)
}

fn group_sums(v: &Value) -> Vec<i64> {
    vec![
        i(&v["requests"]),
        i(&v["spend_nanos"]),
        i(&v["prompt_tokens"]),
        i(&v["completion_tokens"]),
        i(&v["failed_requests"]),
    ]
}

/// Every page of `/spend/logs?{query}` at `limit` rows a page, as `who` (a cookie, else the master key).
async fn all_pages(gw: &Gateway, query: &str, limit: u32, who: Option<&str>) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/spend/logs?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = match who {
            Some(cookie) => get_with(&gw.url, &path, &[("cookie", cookie)]).await,
            None => get(&gw.url, &path, Some(MASTER_KEY)).await,
        };
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let page = r.json["data"].as_array().cloned().unwrap_or_default();
        assert!(page.len() <= limit as usize);
        rows.extend(page);
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return rows,
        }
    }
    panic!("more than 1000 pages");
}

fn sql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn spend_reports(url: &str) {
    let fake = FakeUpstream::start();
    let gw = Gateway::start_on(&config(&fake, ""), url);
    let (n, ka, kb) = traffic(&gw).await;
    wait_rows(url, n);
    let hash_a = query_row(url, "SELECT COUNT(*) FROM request_log WHERE team_id = 'ta'").unwrap_or_default();
    assert!(hash_a[0] > 0);

    // Every row once, newest first, whatever the page size.
    for limit in [1, 4, 50] {
        let rows = all_pages(&gw, "", limit, None).await;
        let ids: BTreeSet<&str> = rows.iter().filter_map(|r| r["request_id"].as_str()).collect();
        assert_eq!((rows.len() as i64, ids.len() as i64), (n, n), "limit {limit}: every row exactly once");
        let times: Vec<&str> = rows.iter().filter_map(|r| r["startTime"].as_str()).collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
        let spend: i64 = rows.iter().map(|r| r["spend_nanos"].as_i64().unwrap_or(0)).sum();
        assert_eq!(spend, log_sums(url, "1 = 1")[1]);
    }
    let first = get(&gw.url, "/spend/logs", Some(MASTER_KEY)).await;
    assert!(!first.text.contains(&ka) && !first.text.contains(&kb), "never a key's value");
    assert_eq!(first.json["next_cursor"], Value::Null, "{n} rows fit the default page of 50");

    // Filters: each the log rows that match it.
    let mut hashes = Vec::new();
    for key in [&ka, &kb] {
        let r = get(&gw.url, &format!("/key/info?key={key}"), Some(MASTER_KEY)).await;
        hashes.push(r.json["key"].as_str().unwrap_or_default().to_owned());
    }
    let (hash_a, hash_b) = (hashes[0].clone(), hashes[1].clone());
    let cases = [
        (format!("api_key={ka}"), format!("key_hash = {}", sql_quote(&hash_a))),
        (format!("api_key={hash_b}"), format!("key_hash = {}", sql_quote(&hash_b))),
        ("team_id=tb".to_owned(), "team_id = 'tb'".to_owned()),
        ("model=an".to_owned(), "model_group = 'an'".to_owned()),
        ("status=failure".to_owned(), "status >= 400".to_owned()),
        ("status=success&team_id=ta".to_owned(), "status < 400 AND team_id = 'ta'".to_owned()),
        ("start_date=2000-01-01&end_date=2999-12-31".to_owned(), "1 = 1".to_owned()),
        ("end_date=2000-01-01".to_owned(), "1 = 0".to_owned()),
        ("start_date=2999-01-01T00:00:00Z".to_owned(), "1 = 0".to_owned()),
        ("user_id=nobody".to_owned(), "1 = 0".to_owned()),
    ];
    for (query, condition) in &cases {
        let rows = all_pages(&gw, query, 7, None).await;
        let want = log_sums(url, condition);
        let spend: i64 = rows.iter().map(|r| r["spend_nanos"].as_i64().unwrap_or(0)).sum();
        let failures = rows.iter().filter(|r| r["status"] == "failure").count() as i64;
        assert_eq!((rows.len() as i64, spend, failures), (want[0], want[1], want[4]), "{query}");
    }
    let one = get(&gw.url, "/spend/logs", Some(MASTER_KEY)).await;
    let id = one.json["data"][3]["request_id"].as_str().unwrap_or_default().to_owned();
    let by_id = get(&gw.url, &format!("/spend/logs?request_id={id}"), Some(MASTER_KEY)).await;
    assert_eq!(by_id.json["data"].as_array().map(Vec::len), Some(1), "{}", by_id.text);
    assert_eq!(by_id.json["data"][0], one.json["data"][3]);

    // Refusals: OpenAI-shaped 400s naming the parameter.
    for (query, param) in [
        ("cursor=not-a-cursor", "cursor"),
        ("limit=1001", "limit"),
        ("status=ok", "status"),
        ("start_date=30-11-2026", "start_date"),
    ] {
        let r = get(&gw.url, &format!("/spend/logs?{query}"), Some(MASTER_KEY)).await;
        assert_eq!((r.status, r.json["error"]["param"].as_str()), (400, Some(param)), "{query}: {}", r.text);
        assert_eq!(r.json["error"]["type"], "invalid_request_error");
    }
    let r = get(&gw.url, "/global/spend/report?group_by=tags", Some(MASTER_KEY)).await;
    assert_eq!((r.status, r.json["error"]["param"].as_str()), (400, Some("group_by")), "{}", r.text);

    // Reports: each group's sums equal the log rows'.
    let report = |group: &str| {
        let path = format!("/global/spend/report?start_date=2000-01-01&end_date=2999-12-31&group_by={group}");
        let gw_url = gw.url.clone();
        async move {
            let r = get(&gw_url, &path, Some(MASTER_KEY)).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            r.json.as_array().cloned().unwrap_or_default()
        }
    };
    let dimensions = [
        ("api_key", "key_hash", "api_key"),
        ("model", "model_group", "model"),
        ("provider", "provider", "provider"),
        ("user", "user_id", "user_id"),
        ("customer", "end_user", "end_user"),
    ];
    for (group, column, field) in dimensions {
        let rows = report(group).await;
        let mut seen = 0;
        for row in &rows {
            let condition = match row[field].as_str() {
                Some(v) => format!("{column} = {}", sql_quote(v)),
                None => format!("({column} IS NULL OR {column} = '')"),
            };
            assert_eq!(group_sums(row), log_sums(url, &condition), "{group}: {row}");
            seen += i(&row["requests"]);
        }
        assert_eq!(seen, n, "{group}: every request in one group");
    }
    let keys = report("key").await;
    let alpha = keys.iter().find(|k| k["api_key"].as_str() == Some(hash_a.as_str()));
    assert_eq!(alpha.map(|k| k["key_alias"].clone()), Some(json!("alpha")));
    let days = report("day").await;
    let total: Vec<i64> =
        days.iter().map(group_sums).fold(vec![0; 5], |a, b| a.iter().zip(b).map(|(x, y)| x + y).collect());
    assert_eq!(total, log_sums(url, "1 = 1"), "days add up to everything");
    // The team report (LiteLLM's shape): per day, per team, its spend by model and key.
    let teams = report("team").await;
    let mut by_team: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for day in &teams {
        assert!(day["group_by_day"].as_str().is_some_and(|d| d.ends_with("T00:00:00+00:00")), "{day}");
        for team in day["teams"].as_array().into_iter().flatten() {
            let name = team["team_id"].as_str().unwrap_or("").to_owned();
            let parts: i64 = team["metadata"].as_array().into_iter().flatten().map(|m| i(&m["spend_nanos"])).sum();
            assert_eq!(parts, i(&team["spend_nanos"]), "a team's metadata adds up to it: {team}");
            let sums = by_team.entry(name).or_insert_with(|| vec![0; 5]);
            for (s, v) in sums.iter_mut().zip(group_sums(team)) {
                *s += v;
            }
        }
    }
    assert_eq!(by_team.get("ta"), Some(&log_sums(url, "team_id = 'ta'")));
    assert_eq!(by_team.get("tb"), Some(&log_sums(url, "team_id = 'tb'")));
    assert_eq!(by_team.get(""), Some(&log_sums(url, "team_id IS NULL")));
    let team_a =
        teams.iter().flat_map(|d| d["teams"].as_array().cloned().unwrap_or_default()).find(|t| t["team_id"] == "ta");
    assert_eq!(team_a.map(|t| t["team_name"].clone()), Some(json!("Team A")));

    // Activity: requests, tokens and failures per day.
    let activity = get(&gw.url, "/global/activity?start_date=2000-01-01&end_date=2999-12-31", Some(MASTER_KEY)).await;
    let all = log_sums(url, "1 = 1");
    assert_eq!(
        (
            i(&activity.json["sum_api_requests"]),
            i(&activity.json["sum_failed_requests"]),
            i(&activity.json["sum_total_tokens"])
        ),
        (all[0], all[4], all[2] + all[3]),
        "{}",
        activity.text
    );
    let default_range = get(&gw.url, "/global/activity", Some(MASTER_KEY)).await;
    assert_eq!(i(&default_range.json["sum_api_requests"]), n, "the last 30 days include today: {}", default_range.text);

    // Roles: a viewer reads everything; a team member their team's rows only.
    let viewer = session(&gw, "viewer", "proxy_admin_viewer", None).await;
    assert_eq!(all_pages(&gw, "", 50, Some(&viewer)).await.len() as i64, n);
    let member = session(&gw, "member", "internal_user", Some("ta")).await;
    let mine = all_pages(&gw, "", 5, Some(&member)).await;
    assert!(mine.iter().all(|r| r["team_id"] == "ta"), "only team A's rows");
    assert_eq!(mine.len() as i64, log_sums(url, "team_id = 'ta'")[0]);
    assert!(all_pages(&gw, &format!("api_key={kb}"), 5, Some(&member)).await.is_empty(), "team B's key: nothing");
    assert!(all_pages(&gw, "team_id=tb", 5, Some(&member)).await.is_empty());
    let r = get_with(&gw.url, "/global/spend/report?group_by=model", &[("cookie", &member)]).await;
    let seen: i64 = r.json.as_array().into_iter().flatten().map(|g| i(&g["requests"])).sum();
    assert_eq!(seen, log_sums(url, "team_id = 'ta'")[0], "{}", r.text);
    let r = get_with(&gw.url, "/global/activity", &[("cookie", &member)]).await;
    assert_eq!(i(&r.json["sum_api_requests"]), log_sums(url, "team_id = 'ta'")[0], "{}", r.text);
    let loner = session(&gw, "loner", "internal_user", None).await;
    assert!(all_pages(&gw, "", 5, Some(&loner)).await.is_empty(), "no team, no rows");
    assert_eq!(get(&gw.url, "/spend/logs", None).await.status, 401);
    assert_eq!(get(&gw.url, "/spend/logs", Some(&ka)).await.status, 401, "a virtual key is no management credential");
}

#[actix_rt::test]
async fn spend_logs_and_reports_equal_the_log_rows_on_sqlite() {
    let db = TempSqlite::new();
    spend_reports(&db.url()).await;
}

#[actix_rt::test]
async fn spend_logs_and_reports_equal_the_log_rows_on_postgres() {
    let schema = PgSchema::new();
    spend_reports(&schema.url()).await;
}

/// Retention: rows older than the period are purged in the background; the rollups, and so the reports, keep
/// them.
async fn retention(url: &str) {
    let fake = FakeUpstream::start();
    let extra = "  maximum_spend_logs_retention_period: 2s\n  maximum_spend_logs_retention_interval: 1s\n";
    let gw = Gateway::start_on(&config(&fake, extra), url);
    for _ in 0..5 {
        assert_eq!(chat(&gw, MASTER_KEY, "oa", json!({})).await, 200);
    }
    wait_rows(url, 5);
    let rollups = "SELECT CAST(SUM(requests) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT) FROM usage_daily";
    let before = query_row(url, rollups).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut left = vec![-1];
    while Instant::now() < deadline {
        left = query_row(url, "SELECT COUNT(*) FROM request_log").unwrap_or_default();
        if left == vec![0] {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(left, vec![0], "rows older than 2 s are purged within a few intervals");
    assert_eq!(query_row(url, rollups).unwrap_or_default(), before, "the rollups are kept");
    let r = get(&gw.url, "/global/spend/report?group_by=model", Some(MASTER_KEY)).await;
    assert_eq!(r.json[0]["requests"], 5, "{}", r.text);
    assert_eq!(chat(&gw, MASTER_KEY, "oa", json!({})).await, 200);
    wait_rows_at_least(url, 1);
}

fn wait_rows_at_least(url: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if query_row(url, "SELECT COUNT(*) FROM request_log").unwrap_or_default().first().is_some_and(|n| *n >= want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("a new row after the purge never arrived");
}

#[actix_rt::test]
async fn retention_purges_old_log_rows_and_keeps_the_rollups_on_sqlite() {
    let db = TempSqlite::new();
    retention(&db.url()).await;
}

#[actix_rt::test]
async fn retention_purges_old_log_rows_and_keeps_the_rollups_on_postgres() {
    let schema = PgSchema::new();
    retention(&schema.url()).await;
}
