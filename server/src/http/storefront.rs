//! Which shop a storefront request is for, and whether its caller may speak for that shop.
//!
//! A shopper's browser reaches the chat API three ways, and each proves something else:
//!
//! * **Through Shopify's app proxy** (`/proxy/…`, the theme app embed's way): Shopify signed
//!   the query ([`crate::shopify::proxy`]), so the shop is the signed `shop`, and a signed
//!   `logged_in_customer_id` is a verified shopper of that shop. A body or query naming
//!   another shop is refused (403 `shop_mismatch`).
//! * **Directly, from the shop's storefront** (CORS): the request names its shop; the
//!   browser's `Origin` must be one that shop allows (`https://<shop>.myshopify.com` and the
//!   origins in the registry), else 403 `origin_not_allowed` — a page of shop B cannot
//!   drive shop A's chat. The preflight is answered by [`cors`] for any installed shop's
//!   origin, without credentials, never with `*`.
//! * **From the server's own pages, or from no browser** (the demo storefront, curl): no
//!   `Origin`, or the server's own, and the shop named in the request.
//!
//! In every case the shop must be installed in the registry: a shop in the lake that is not
//! installed is `unknown_shop` like any other.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::AppState;
use crate::error::AppError;
use crate::shopify::proxy::{self, Proxied, ProxyError};
use crate::state::shops::{ShopRecord, shop_domain};

/// The shop a storefront request is for, as proven.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub shop: ShopRecord,
    /// The signed-in customer Shopify's app proxy vouched for, if any.
    pub proxied_customer: Option<i64>,
}

impl Tenant {
    /// The shop's id (its myshopify domain, the lake's `shop_id`).
    pub fn id(&self) -> &str {
        &self.shop.domain
    }
}

/// What a request says about where it comes from (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    proxied: Option<Proxied>,
    origin: Option<String>,
    host: Option<String>,
    /// `?shop=` (the widget sends it on every call; through the proxy, Shopify adds it).
    query_shop: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let query_shop = parts.uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "shop")
                .map(|(_, v)| v.into_owned())
        });
        Ok(Self {
            proxied: parts.extensions.get::<Proxied>().cloned(),
            origin: header(header::ORIGIN),
            host: header(header::HOST),
            query_shop,
        })
    }
}

impl Caller {
    /// The installed shop this request is for: the proxy's signed shop, else `named` (the
    /// body's `shop`), else `?shop=`; refused when the caller may not speak for it.
    pub fn tenant(&self, state: &AppState, named: Option<&str>) -> Result<Tenant, AppError> {
        let named = named
            .or(self.query_shop.as_deref())
            .map(|n| resolve(state, n));
        let domain = match (&self.proxied, named) {
            (Some(proxied), Some(named)) if named != proxied.shop => {
                return Err(AppError::new(
                    StatusCode::FORBIDDEN,
                    "shop_mismatch",
                    "the request names another shop than the one Shopify forwarded it for",
                ));
            }
            (Some(proxied), _) => proxied.shop.clone(),
            (None, Some(named)) => named,
            (None, None) => {
                return Err(AppError::bad_request(
                    "missing_shop",
                    "name the shop: `shop` in the body, or `?shop=` for this route",
                ));
            }
        };
        let shop = state
            .shops()
            .installed(&domain)
            .ok_or_else(|| unknown_shop(&domain))?;
        if self.proxied.is_none()
            && let Some(origin) = &self.origin
            && !self.same_origin(origin)
            && !shop.allows_origin(origin)
        {
            tracing::info!(
                %origin,
                shop = %domain,
                "a page at an origin the shop does not allow called its chat (allow it with `supportlake shops add {domain} --origin {origin}`)"
            );
            return Err(AppError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this page may not use this shop's chat",
            ));
        }
        Ok(Tenant {
            shop,
            proxied_customer: self.proxied.as_ref().and_then(|p| p.customer_id),
        })
    }

    /// Whether `origin` is this server's own (its pages call the API as any page does, and
    /// a browser sends `Origin` with their POSTs too).
    fn same_origin(&self, origin: &str) -> bool {
        let Some(host) = &self.host else {
            return false;
        };
        origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
    }
}

/// The shop a request names, as the registry keys it: a `*.myshopify.com` domain as it
/// is, another name (a custom domain the lake knows, or the shop's id) through the
/// commerce snapshot.
fn resolve(state: &AppState, name: &str) -> String {
    shop_domain(name)
        .or_else(|| {
            state
                .snapshot()
                .shop(name)
                .map(|s| s.id.to_ascii_lowercase())
        })
        .unwrap_or_else(|| name.trim().to_ascii_lowercase())
}

/// The one refusal for a shop that is not served here, whatever the reason.
pub fn unknown_shop(shop: &str) -> AppError {
    AppError::not_found(
        "unknown_shop",
        format!("no shop {shop:?} is installed on this server"),
    )
}

/// The CORS layer of the storefront routes: a preflight from an installed shop's origin is
/// answered with that origin (never `*`, never with credentials: the API uses no cookies);
/// any other origin gets no CORS headers, so the browser refuses the call.
pub fn cors(state: &AppState) -> CorsLayer {
    let state = state.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|origin| {
                state
                    .shops()
                    .all()
                    .values()
                    .any(|shop| shop.is_installed() && shop.allows_origin(origin))
            })
        }))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

/// In front of `/proxy/…`: verifies Shopify's app proxy signature and hands on what it
/// proves (a [`Proxied`] extension), or refuses with the signature's code.
pub async fn app_proxy(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let config = state.config();
    let proven = proxy::verify(
        request.uri().query().unwrap_or_default(),
        &[
            &config.shopify_client_secret,
            &config.shopify_previous_client_secret,
        ],
        chrono::Utc::now().timestamp(),
    )
    .map_err(|refusal| {
        let status = match refusal {
            ProxyError::Malformed => StatusCode::BAD_REQUEST,
            ProxyError::Unsigned | ProxyError::BadSignature | ProxyError::Stale(_) => {
                StatusCode::UNAUTHORIZED
            }
        };
        AppError::new(status, refusal.code(), refusal.to_string())
    })?;
    request.extensions_mut().insert(proven);
    Ok(next.run(request).await)
}
