//! Everything that knows HTTP: the router and its middleware ([`router`]), the route
//! table and its OpenAPI document ([`openapi`]), the JSON body extractor ([`extract`]), the
//! bearer checks ([`auth`]), and the handlers with the bodies they take and give:
//! [`health`], [`chat`], [`conversations`], [`handoffs`] (the agents' inbox), [`reports`],
//! [`pages`] (HTML and JavaScript) and [`webhooks`] (Shopify's deliveries).

pub mod auth;
pub mod chat;
pub mod conversations;
pub mod extract;
pub mod handoffs;
pub mod health;
pub mod openapi;
pub mod pages;
pub mod reports;
pub mod webhooks;

#[cfg(test)]
mod tests;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

use crate::AppState;
use crate::error::AppError;
use extract::BODY_LIMIT;
use openapi::ENDPOINTS;

/// The whole HTTP API and the pages, with the body limit, JSON 404/405s and request
/// metrics: what [`crate::serve`] serves, and what a test can call in memory
/// (`router(state).oneshot(request)`).
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for e in ENDPOINTS {
        let handler = (e.handler)();
        router = router.route(
            e.path,
            handler.fallback(|| async {
                AppError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "this route does not take that method",
                )
            }),
        );
    }
    // The pages are not part of the JSON API (and not in the OpenAPI document).
    router = router
        .route("/", get(pages::storefront))
        .route("/widget.js", get(pages::widget))
        .route("/ui.js", get(pages::ui))
        .route("/inbox", get(pages::inbox))
        .route("/dashboard", get(pages::dashboard));
    router
        .fallback(|| async { AppError::not_found("not_found", "no such route; see /openapi.json") })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Counts and times every request by its route pattern.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    state.metrics().request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
