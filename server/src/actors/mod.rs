//! Supervised actors that own state and slow work, off the request path: the router (routing table) and one
//! worker per deployment (health). The request path reads what they publish and tells them about events with
//! `try_send`; it never awaits an actor.

pub mod deployment_worker;
pub mod log_retention;
pub mod log_writer;
pub mod router;
