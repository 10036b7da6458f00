//! Installing the app on a shop with OAuth, against the Shopify stand-in
//! (`tests/shopify-replay`) on loopback: consent, the signed redirect, the code traded for
//! an expiring offline token, and the token refreshed ahead of its expiry, also when two
//! refreshes race.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use shopify_replay::{Config as ReplayConfig, Replay};
use testkit::{SHOP_B, second_shop};

use super::Server;
use crate::shopify::oauth::{STATE_COOKIE, fresh_token};
use crate::state::shops::ShopKind;

/// Where the test says the server is; the stand-in redirects there, and the test takes the
/// redirect to the in-memory router itself.
const APP_URL: &str = "https://supportlake.example";

#[tokio::test]
async fn a_merchant_installs_with_oauth_and_the_expiring_token_is_refreshed_before_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    second_shop(&dir.path().join("store"));
    // Tokens that live two minutes: inside the refresh margin from the start.
    let replay = Replay::serve_dir(
        &dir.path().join("store"),
        ReplayConfig {
            token_lifetime: Duration::from_secs(120),
            ..ReplayConfig::default()
        },
    )
    .unwrap();
    let defaults = ReplayConfig::default();
    let server = Server::start_with(|config| {
        config.shopify_client_id = defaults.client_id.clone();
        config.shopify_client_secret = defaults.client_secret.clone();
        config.shopify_admin_url = replay.url();
        config.app_url = APP_URL.into();
    })
    .await;
    assert!(server.state.shops().remove(SHOP_B).unwrap(), "a new shop");

    // 1. /auth sends the merchant to the shop's consent screen, with the state cookie.
    let begun = server.get(&format!("/auth?shop={SHOP_B}")).await;
    assert_eq!(begun.status, StatusCode::SEE_OTHER, "{}", begun.body);
    let consent = begun.headers["location"].to_str().unwrap().to_string();
    assert!(
        consent.starts_with(&format!("{}/admin/oauth/authorize?", replay.url())),
        "{consent}"
    );
    assert!(
        consent.contains("redirect_uri=https%3A%2F%2Fsupportlake.example%2Fauth%2Fcallback"),
        "{consent}"
    );
    let set_cookie = begun.headers["set-cookie"].to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Lax", "Path=/auth/callback", "Secure"] {
        assert!(set_cookie.contains(part), "{part}: {set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with(STATE_COOKIE), "{cookie}");
    let not_a_shop = server.get("/auth?shop=evil.example.com").await;
    assert_eq!(not_a_shop.error(), (400, Some("invalid_shop")));

    // 2. The stand-in consents and redirects back with a signed query.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = http.get(&consent).send().await.unwrap();
    assert_eq!(redirect.status(), reqwest::StatusCode::FOUND);
    let back = redirect.headers()["location"].to_str().unwrap().to_string();
    let callback = back
        .strip_prefix(APP_URL)
        .expect("back to the app")
        .to_string();

    // Refused before the code is spent: no cookie, another browser's cookie, an altered query.
    let no_cookie = server.get(&callback).await;
    assert_eq!(
        no_cookie.error(),
        (403, Some("invalid_oauth_state")),
        "{}",
        no_cookie.body
    );
    let altered = server
        .call(
            Method::GET,
            &callback.replace("summit-supply", "ridgeline-outfitters"),
            &[("cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(
        altered.error(),
        (401, Some("invalid_hmac")),
        "{}",
        altered.body
    );

    // 3. The callback with the cookie: the code is traded for an expiring token, sealed.
    let installed = server
        .call(Method::GET, &callback, &[("cookie", &cookie)], "")
        .await;
    assert_eq!(installed.status, StatusCode::OK, "{}", installed.body);
    assert!(
        installed.body.as_str().unwrap().contains(SHOP_B),
        "{}",
        installed.body
    );
    assert_eq!(
        replay.oauth_counts().expiring_exchanges,
        1,
        "asked for an expiring token"
    );
    let record = server.state.shops().installed(SHOP_B).expect("installed");
    assert_eq!(record.kind, ShopKind::Oauth);
    let first = record.credentials.clone();
    let expires = first.access_expires_at.expect("an expiring token");
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 100..=now + 120).contains(&expires),
        "{expires} vs {now}"
    );
    assert!(first.refresh_token.is_some());
    // The code is spent: the same callback again is refused by Shopify.
    let again = server
        .call(Method::GET, &callback, &[("cookie", &cookie)], "")
        .await;
    assert_eq!(
        again.error(),
        (502, Some("code_exchange_failed")),
        "{}",
        again.body
    );
    assert_eq!(replay.oauth_counts().refused, 1, "the spent code");

    // 4. Before any use the token, two minutes from expiry, is refreshed; the new one works.
    let config = server.state.config().clone();
    let shops = server.state.shops();
    let token = fresh_token(&config, shops, SHOP_B, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(Some(&token), first.access_token.as_ref());
    assert_eq!(replay.oauth_counts().refreshes, 1);
    let stored = shops.installed(SHOP_B).unwrap().credentials;
    assert_eq!(stored.access_token.as_ref(), Some(&token));
    assert_ne!(
        stored.refresh_token, first.refresh_token,
        "the new pair is stored together"
    );
    let answered = http
        .post(format!("{}/admin/api/2026-04/graphql.json", replay.url()))
        .header("X-Shopify-Access-Token", &token)
        .header("content-type", "application/json")
        .body(serde_json::json!({"query": "{ shop { name } }"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        answered.status(),
        reqwest::StatusCode::OK,
        "the refreshed token is accepted"
    );

    // 5. Two refreshes racing from the same stored pair: both succeed at Shopify, one
    // pair is kept, and it still refreshes (the newer refresh token was not lost).
    let (a, b) = tokio::join!(
        fresh_token(&config, shops, SHOP_B, chrono::Utc::now()),
        fresh_token(&config, shops, SHOP_B, chrono::Utc::now()),
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a, b, "the loser hands on the winner's token");
    assert_eq!(replay.oauth_counts().refreshes, 3);
    fresh_token(&config, shops, SHOP_B, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replay.oauth_counts().refreshes, 4);
    assert_eq!(
        replay.oauth_counts().refused,
        1,
        "no refresh was refused, so no refresh token was lost: {:?}",
        replay.oauth_counts()
    );
}
