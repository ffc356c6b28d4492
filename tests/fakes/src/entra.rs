//! A fake Microsoft Entra ID token endpoint (`POST /{tenant}/oauth2/v2.0/token`), for Azure deployments that use
//! client credentials. It answers `grant_type=client_credentials` with the client secret [`CLIENT_SECRET`] and
//! the scope `https://cognitiveservices.azure.com/.default` with the token [`ACCESS_TOKEN`] for an hour, and
//! anything else with OAuth's `{"error","error_description"}` (400). Requests are recorded (the form as a JSON
//! object) like every fake's.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use crate::{openai::headers_json, record::Recorder};

pub const CLIENT_SECRET: &str = "entra-test-secret";
pub const ACCESS_TOKEN: &str = "entra-fake-token-0123456789";
const SCOPE: &str = "https://cognitiveservices.azure.com/.default";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/{tenant}/oauth2/v2.0/token", web::post().to(token));
}

async fn token(req: HttpRequest, body: web::Bytes, rec: web::Data<Recorder>) -> HttpResponse {
    let form: Map<String, Value> =
        url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect();
    rec.request(req.path(), headers_json(&req), Value::Object(form.clone()));
    let field = |name: &str| form.get(name).and_then(Value::as_str).unwrap_or_default();
    let refused =
        |error: &str, why: &str| HttpResponse::BadRequest().json(json!({"error": error, "error_description": why}));
    if field("grant_type") != "client_credentials" {
        return refused("unsupported_grant_type", "only client_credentials");
    }
    if field("client_secret") != CLIENT_SECRET || field("client_id").is_empty() {
        return refused("invalid_client", "AADSTS7000215: Invalid client secret provided.");
    }
    if field("scope") != SCOPE {
        return refused("invalid_scope", "AADSTS70011: The provided value for scope is not valid.");
    }
    HttpResponse::Ok().json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
        "access_token": ACCESS_TOKEN}))
}
