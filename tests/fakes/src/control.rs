//! `/__fake/*`: lets out-of-process tests (the Python SDK tests, scripts) read and clear what the fake saw, and
//! set switches (`PUT /__fake/switch/{name}` with the mode name as the body; see `record.rs`).

use actix_web::{web, HttpResponse};

use crate::record::Recorder;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__fake/requests", web::get().to(list_requests))
        .route("/__fake/requests", web::delete().to(clear_requests))
        .route("/__fake/events", web::get().to(list_events))
        .route("/__fake/events", web::delete().to(clear_events))
        .route("/__fake/switch/{name}", web::put().to(set_switch));
}

async fn set_switch(rec: web::Data<Recorder>, name: web::Path<String>, mode: String) -> HttpResponse {
    rec.set_switch(&name, mode.trim());
    HttpResponse::NoContent().finish()
}

async fn list_requests(rec: web::Data<Recorder>) -> HttpResponse {
    HttpResponse::Ok().json(rec.requests())
}

async fn clear_requests(rec: web::Data<Recorder>) -> HttpResponse {
    rec.clear_requests();
    HttpResponse::NoContent().finish()
}

async fn list_events(rec: web::Data<Recorder>) -> HttpResponse {
    HttpResponse::Ok().json(rec.events())
}

async fn clear_events(rec: web::Data<Recorder>) -> HttpResponse {
    rec.clear_events();
    HttpResponse::NoContent().finish()
}
