//! A merchant installs the app on a new shop, end to end on loopback: the real binary
//! serving, the Shopify replay playing the shop's OAuth screens and Admin API.
//!
//! install (`/auth` → consent → `/auth/callback` → an expiring token and its refresh
//! token) → the shop's webhook topics subscribed → the first full sync fills the lake with
//! that shop's data only → its webhooks are accepted → its shoppers are answered from its
//! own data → a change at the shop arrives by the next scheduled sync → `app/uninstalled`
//! stops its syncs and its chat.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use pipeline::sources::shopify_api::subscriptions::topic_enum;
use serde_json::{Value, json};
use shopify_replay::{Config, Replay};
use testkit::{SHOP_A, SHOP_B, copy_dir, in_shop_b, in_transit, second_shop};

use crate::common::{demo_index, sql_json};
use crate::serving::{Server, built, eventually, shops};

const CLIENT_ID: &str = "install-test-client-id";
const CLIENT_SECRET: &str = "install-test-client-secret";
/// How long to wait between two looks at something the server does in the background.
const PAUSE: Duration = Duration::from_millis(250);
/// Scheduled syncs this often, so the test sees several.
const SYNC_EVERY: u64 = 2;

/// One HTTP/1.1 GET: status, headers (lower-case names) and body.
fn get(address: &str, path: &str, cookie: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let cookie = cookie.map_or_else(String::new, |c| format!("cookie: {c}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n{cookie}\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

fn count_by_shop(lake: &Path, table: &str) -> Vec<Value> {
    sql_json(
        lake,
        &format!(
            "SELECT s.myshopify_domain AS shop, count(*) AS n FROM {table} t \
             JOIN shops s ON s.shop_id = t.shop_id GROUP BY s.myshopify_domain ORDER BY shop"
        ),
    )
}

#[test]
fn a_new_shop_installs_syncs_answers_and_uninstalls() {
    let work = tempfile::tempdir().unwrap();
    // The server starts with the demo shop's lake and index; the new shop is Summit Supply,
    // whose customer and order ids collide with the demo shop's.
    let lake = work.path().join("lake");
    copy_dir(&demo_index().lake, &lake);
    let index = work.path().join("index");
    copy_dir(&demo_index().index, &index);
    // Its passages' embeddings, so the index update after its sync embeds next to nothing.
    copy_dir(&built().index.join("cache"), &index.join("cache"));
    let store = work.path().join("summit-supply");
    second_shop(&store);
    let replay = Replay::serve_dir(
        &store,
        Config {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            // Shorter than the five minutes ahead of expiry a token is refreshed.
            token_lifetime: Duration::from_secs(120),
            ..Config::default()
        },
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app_url = format!("http://127.0.0.1:{port}");
    let admin = replay.url();
    let every = SYNC_EVERY.to_string();
    let settings = [
        ("SUPPORTLAKE_SHOPIFY_CLIENT_ID", CLIENT_ID),
        ("SUPPORTLAKE_SHOPIFY_CLIENT_SECRET", CLIENT_SECRET),
        ("SUPPORTLAKE_SHOPIFY_ADMIN_URL", admin.as_str()),
        ("SUPPORTLAKE_APP_URL", app_url.as_str()),
        ("SUPPORTLAKE_SYNC_EVERY_SECONDS", every.as_str()),
    ];
    let server = Server::launch(
        work.path().to_path_buf(),
        lake.clone(),
        index,
        &[],
        &settings,
        &format!("127.0.0.1:{port}"),
    );
    let before = count_by_shop(&lake, "orders");
    let product = json!({"id": 1, "title": "x", "updated_at": "2026-11-28T10:00:00Z"}).to_string();

    // Not installed: its webhooks and its shoppers are refused.
    let (status, refused) = server.webhook_from(
        SHOP_B,
        CLIENT_SECRET,
        "products/update",
        product.as_bytes(),
        "e-0",
    );
    assert_eq!(
        (status, refused["error"]["code"].clone()),
        (401, json!("unknown_shop"))
    );
    let chat =
        |message: &str| server.post("/v1/chat", &json!({"shop": SHOP_B, "message": message}));
    assert_eq!(chat("hello").0, 404);

    // The install: /auth sends the merchant to the consent screen with a state cookie ...
    let (status, headers, _) = get(&server.address, &format!("/auth?shop={SHOP_B}"), None);
    assert_eq!(status, 303);
    let consent = url::Url::parse(header(&headers, "location")).unwrap();
    assert_eq!(consent.origin().ascii_serialization(), admin);
    assert_eq!(consent.path(), "/admin/oauth/authorize");
    let cookie = header(&headers, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // ... Shopify sends them back signed ...
    let (status, headers, _) = get(
        &replay.address.to_string(),
        &format!("{}?{}", consent.path(), consent.query().unwrap()),
        None,
    );
    assert_eq!(status, 302);
    let back = url::Url::parse(header(&headers, "location")).unwrap();
    assert_eq!(back.origin().ascii_serialization(), app_url);
    // ... and the callback without the state cookie is refused, with it installs.
    let callback = format!("{}?{}", back.path(), back.query().unwrap());
    assert_eq!(get(&server.address, &callback, None).0, 403);
    let (status, _, page) = get(&server.address, &callback, Some(&cookie));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(SHOP_B), "{page}");
    let granted = replay.oauth_counts();
    assert_eq!(
        (
            granted.authorizations,
            granted.expiring_exchanges,
            granted.plain_exchanges
        ),
        (1, 1, 0)
    );
    let listed = shops(work.path(), &["list"]);
    assert!(
        listed.contains(SHOP_B)
            && listed.contains("Installed/Oauth")
            && listed.contains("Admin token: yes"),
        "{listed}"
    );

    // The first sync, in the background: its shoppers are answered from its own policies.
    let answered = eventually("the first sync and index update", 1200, PAUSE, || {
        let (status, body) = chat("can I return sale items?");
        assert_eq!(status, 200, "{body}");
        let sources = body["reply"]["sources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!sources.is_empty()).then_some(body)
    });
    for source in answered["reply"]["sources"].as_array().unwrap() {
        let url = source["url"].as_str().unwrap();
        assert!(
            url.contains("summit-supply"),
            "a source of another shop: {answered}"
        );
    }
    let uri = format!("{app_url}/webhooks/shopify");
    let mut subscribed = replay.subscriptions();
    subscribed.sort();
    let mut expected: Vec<(String, String)> = pipeline::sources::webhooks::SUBSCRIBED_TOPICS
        .iter()
        .map(|t| (topic_enum(t), uri.clone()))
        .collect();
    expected.sort();
    assert_eq!(subscribed, expected, "every topic, once, to the server");
    // The sync added the new shop's rows and left the demo shop's as they were.
    let after = count_by_shop(&lake, "orders");
    let of = |counts: &[Value], shop: &str| {
        counts
            .iter()
            .find(|c| c["shop"] == shop)
            .map(|c| c["n"].as_i64().unwrap())
    };
    assert_eq!(of(&after, SHOP_A), of(&before, SHOP_A));
    assert_eq!(of(&before, SHOP_B), None);
    assert_eq!(
        of(&after, SHOP_B),
        of(&after, SHOP_A),
        "the copy has as many orders"
    );
    assert!(
        replay.oauth_counts().refreshes >= 1,
        "the short-lived token was refreshed"
    );

    // Its shopper is verified by its own order and email; the demo shop's shopper with
    // the same order number is not.
    let shipped = in_transit();
    let number = shipped["order_number"].as_i64().unwrap().to_string();
    let email = shipped["email"].as_str().unwrap();
    let (_, asked) = chat(&format!("where is my order #{number}?"));
    let conversation = asked["conversation_id"].as_str().unwrap();
    let verify = |email: &str| {
        server.post(
            &format!("/v1/conversations/{conversation}/verify?shop={SHOP_B}"),
            &json!({"order_number": number, "email": email}),
        )
    };
    let (_, wrong) = verify(email);
    assert_eq!(wrong["verified"], false, "{wrong}");
    let (status, verified) = verify(&in_shop_b(email));
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["verified"], true, "{verified}");
    let tracking = shipped["fulfillments"][0]["tracking_number"]
        .as_str()
        .unwrap();
    assert!(
        verified["reply"]["text"]
            .as_str()
            .unwrap()
            .contains(tracking),
        "{verified}"
    );

    // Its webhooks are accepted now.
    let (status, accepted) = server.webhook_from(
        SHOP_B,
        CLIENT_SECRET,
        "products/update",
        product.as_bytes(),
        "e-1",
    );
    assert_eq!(status, 200, "{accepted}");

    // A change at the shop arrives with a scheduled incremental sync.
    let (products, _) = replay.touch(1, 0);
    let id = products[0].rsplit('/').next().unwrap().to_string();
    eventually("the incremental sync", 480, PAUSE, || {
        let rows = sql_json(
            &lake,
            &format!(
                "SELECT p.title FROM products p JOIN shops s ON s.shop_id = p.shop_id \
                 WHERE s.myshopify_domain = '{SHOP_B}' AND p.id = {id}"
            ),
        );
        rows.first()
            .and_then(|r| r["title"].as_str())
            .filter(|t| t.ends_with("(2027 edition)"))
            .map(str::to_string)
    });
    assert_eq!(
        replay.subscriptions().len(),
        expected.len(),
        "later syncs subscribe nothing twice"
    );
    assert_eq!(
        replay.oauth_counts().refused,
        0,
        "no refresh token was used after its replacement"
    );

    // Uninstall: the token goes, the syncs stop, its staged files go, its chat stops.
    let (status, _) = server.webhook_from(SHOP_B, CLIENT_SECRET, "app/uninstalled", b"{}", "e-2");
    assert_eq!(status, 200);
    eventually("the uninstall", 240, PAUSE, || {
        let listed = shops(work.path(), &["list"]);
        (listed.contains("Uninstalled") && listed.contains("Admin token: no")).then_some(())
    });
    assert_eq!(chat("hello").0, 404);
    // A sync running at that moment is cut at the syncer's next look.
    std::thread::sleep(Duration::from_secs(2 * SYNC_EVERY));
    let requests = replay.requests();
    std::thread::sleep(Duration::from_secs(4 * SYNC_EVERY));
    assert_eq!(
        replay.requests(),
        requests,
        "no Admin API call after the uninstall"
    );
    assert!(
        !work.path().join("state/sync").join(SHOP_B).exists(),
        "the uninstalled shop's staged sync is deleted"
    );
}
