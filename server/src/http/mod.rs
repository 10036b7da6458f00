//! Everything that knows HTTP: the router and its middleware ([`router`]), the route
//! table and its OpenAPI document ([`openapi`]), the JSON body extractor ([`extract`]), the
//! bearer checks ([`auth`]), and the handlers with the bodies they take and give:
//! [`health`], [`chat`], [`conversations`], [`handoffs`] (the agents' inbox), [`reports`],
//! [`pages`] (HTML and JavaScript), [`install`] (OAuth) and [`webhooks`] (Shopify's deliveries); [`storefront`]
//! decides which shop a shopper's request is for, and lets it in by CORS or the app proxy.

pub mod auth;
pub mod chat;
pub mod conversations;
pub mod extract;
pub mod handoffs;
pub mod health;
pub mod install;
pub mod openapi;
pub mod pages;
pub mod reports;
pub mod storefront;
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
    // The shopper's routes again, for two more ways in: CORS from the shops' storefronts,
    // and Shopify's app proxy under /proxy (http::storefront).
    let mut storefront = Router::new().route("/widget.js", get(pages::widget));
    for e in ENDPOINTS {
        let handler = (e.handler)().fallback(|| async {
            AppError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        });
        if e.auth == openapi::Auth::Shopper {
            storefront = storefront.route(e.path, handler);
        } else {
            router = router.route(e.path, handler);
        }
    }
    router = router
        .route("/", get(pages::storefront))
        .route("/ui.js", get(pages::ui))
        .route("/inbox", get(pages::inbox))
        .route("/dashboard", get(pages::dashboard));
    let proxied = storefront.clone().layer(middleware::from_fn_with_state(
        state.clone(),
        storefront::app_proxy,
    ));
    router
        .merge(storefront.layer(storefront::cors(&state)))
        .nest("/proxy", proxied)
        .fallback(|| async { AppError::not_found("not_found", "no such route; see /openapi.json") })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

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
