//! One typed configuration for every supportlake command.
//!
//! Values come from four layers, later ones winning: the embedded defaults below, a
//! `supportlake.toml` file, `SUPPORTLAKE_*` environment variables, and command-line flags
//! (applied by the binary through [`Config::apply_override`]). Every key is documented
//! here, once, and `supportlake config` prints the resolved result.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{PipelineError, Result};

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the Delta tables live, as a URL, so that nothing assumes a local disk:
    /// `file:///abs/path` today, `s3://bucket/prefix` once object-store credentials are wired.
    /// A relative path such as `./data/lake` is accepted and resolved against the working
    /// directory. Env: `SUPPORTLAKE_LAKE_URL`. Example: `lake_url = "file:///srv/supportlake/lake"`.
    pub lake_url: String,
    /// Directory of the retrieval index generations. Env: `SUPPORTLAKE_INDEX_DIR`.
    pub index_dir: PathBuf,
    /// Address the answer server listens on; loopback by default so a demo never faces the
    /// network by accident. Env: `SUPPORTLAKE_LISTEN`.
    pub listen: String,
    /// Secret key for the keyed hash of shopper emails (HMAC-SHA256). The lake keeps only this
    /// hash, which lets the server verify "order number + email" without storing the address.
    /// The default is a public demo key: set a private one for a real store, before the first
    /// ingest (changing it makes existing hashes unmatchable). Env: `SUPPORTLAKE_PII_HASH_KEY`.
    pub pii_hash_key: String,
    /// Rows buffered per table before they are written as one Delta commit during ingest;
    /// bounds memory whatever the input size. Env: `SUPPORTLAKE_INGEST_BATCH_ROWS`.
    pub ingest_batch_rows: usize,
    /// Directory holding ONNX Runtime and the embedding model, as fetched by
    /// `scripts/fetch-assets`. Env: `SUPPORTLAKE_ASSETS_DIR`.
    pub assets_dir: PathBuf,
    /// Directory of labelled intent examples (`*.csv` with `text,intent`) the index build
    /// embeds for the classifier. Env: `SUPPORTLAKE_INTENTS_DIR`.
    pub intents_dir: PathBuf,
    /// Directory of the answer server's operational state (conversations in progress,
    /// verification attempts, the handoff queue, the lake outbox) in one SQLite file.
    /// Env: `SUPPORTLAKE_STATE_DIR`.
    pub state_dir: PathBuf,
    /// Key (32 bytes, base64) that seals every shop's credentials in the shop registry
    /// (`state_dir/shops.sqlite`: storefront secrets, Admin tokens, refresh tokens). The
    /// default is public, for the demo only; make one with `openssl rand -base64 32`.
    /// Env: `SUPPORTLAKE_MASTER_KEY`.
    pub master_key: String,
    /// The master key before a rotation: rows sealed with it still open until
    /// `supportlake shops rekey` has sealed them all under `master_key` (empty: none).
    /// Env: `SUPPORTLAKE_PREVIOUS_MASTER_KEY`.
    pub previous_master_key: String,
    /// Bearer token agents present to the handoff inbox (`/v1/handoffs`). The default is
    /// public, for the demo only. Env: `SUPPORTLAKE_AGENT_TOKEN`.
    pub agent_token: String,
    /// Bearer token analysts and content owners present to the dashboard and the report API
    /// (`/dashboard`, `/v1/reports`). The default is public, for the demo only.
    /// Env: `SUPPORTLAKE_ANALYST_TOKEN`.
    pub analyst_token: String,
    /// Most shopper messages the answer server embeds in one model call. Messages that wait
    /// while the model is busy are embedded together, which costs less per message; 1 embeds
    /// every message alone. Env: `SUPPORTLAKE_EMBEDDING_BATCH`.
    pub embedding_batch: usize,
    /// The Shopify app's client id (API key), sent to the shop's OAuth consent screen when a
    /// merchant installs the app (`/auth`). Env: `SUPPORTLAKE_SHOPIFY_CLIENT_ID`.
    pub shopify_client_id: String,
    /// The Admin API scopes an install asks for, comma-separated.
    /// Env: `SUPPORTLAKE_SHOPIFY_SCOPES`.
    pub shopify_scopes: String,
    /// The server's public base URL as Shopify reaches it (`https://support.example.com`):
    /// the OAuth redirect goes to `<app_url>/auth/callback`. Env: `SUPPORTLAKE_APP_URL`.
    pub app_url: String,
    /// The Shopify app's client secret (API secret key): webhook deliveries are signed with
    /// it (`X-Shopify-Hmac-Sha256`). The default is public, for the demo only.
    /// Env: `SUPPORTLAKE_SHOPIFY_CLIENT_SECRET`.
    pub shopify_client_secret: String,
    /// The client secret before the last rotation, still accepted while Shopify's retries
    /// signed with it drain (empty: none). Env: `SUPPORTLAKE_SHOPIFY_PREVIOUS_CLIENT_SECRET`.
    pub shopify_previous_client_secret: String,
    /// Where `customers/data_request` writes its JSON export of everything held about the
    /// shopper, for the merchant to send on. Env: `SUPPORTLAKE_EXPORTS_DIR`.
    pub exports_dir: PathBuf,
    /// Admin API access token of the Shopify app (`shpat_…`), for `supportlake sync shopify`.
    /// Sent only in the `X-Shopify-Access-Token` header; never printed or logged.
    /// Env: `SUPPORTLAKE_SHOPIFY_ACCESS_TOKEN`.
    pub shopify_access_token: String,
    /// Where the Admin API is, when not at `https://<shop>` (a proxy, or a replay server in
    /// tests). Env: `SUPPORTLAKE_SHOPIFY_ADMIN_URL`.
    pub shopify_admin_url: String,
    /// The Admin API version a sync asks for. Env: `SUPPORTLAKE_SHOPIFY_API_VERSION`.
    pub shopify_api_version: String,
    /// How often `serve` syncs each installed shop that has an Admin token from the Admin
    /// API (the first time in full, then what changed), in seconds; 0 leaves syncing to
    /// `supportlake sync shopify` (a cron job, say). Webhooks bring changes within seconds:
    /// the schedule catches what they missed. Env: `SUPPORTLAKE_SYNC_EVERY_SECONDS`.
    pub sync_every_seconds: u64,
}

/// The key everybody can read: fine for the demo store, wrong for real shopper data.
pub const DEMO_PII_HASH_KEY: &str = "supportlake-demo-key-not-for-production";
/// The demo storefront secret the demo shop is registered with: anybody can sign tokens
/// with it.
pub const DEMO_STOREFRONT_SECRET: &str = "supportlake-demo-storefront-secret";
/// The demo master key: anybody can open a registry sealed with it.
pub const DEMO_MASTER_KEY: &str = "c3VwcG9ydGxha2UtZGVtby1tYXN0ZXIta2V5LTAwMzI=";
/// The demo agent token: anybody can read the handoff inbox with it.
pub const DEMO_AGENT_TOKEN: &str = "supportlake-demo-agent-token";
/// The demo analyst token: anybody can read the dashboard with it.
pub const DEMO_ANALYST_TOKEN: &str = "supportlake-demo-analyst-token";
/// What an install asks for: what `sync shopify` reads (products, inventory, customers,
/// orders with fulfillments and returns, policies, articles) and the app proxy.
pub const DEFAULT_SCOPES: &str = "read_products,read_inventory,read_customers,read_orders,read_fulfillments,read_returns,read_content,read_legal_policies,write_app_proxy";
/// The demo Shopify client secret: anybody can sign webhooks with it.
pub const DEMO_SHOPIFY_CLIENT_SECRET: &str = "supportlake-demo-shopify-client-secret";

impl Default for Config {
    fn default() -> Self {
        Self {
            lake_url: "./data/lake".into(),
            index_dir: PathBuf::from("./data/index"),
            listen: "127.0.0.1:8080".into(),
            pii_hash_key: DEMO_PII_HASH_KEY.into(),
            ingest_batch_rows: 65_536,
            assets_dir: PathBuf::from("./vendor"),
            intents_dir: PathBuf::from("./data/intents"),
            state_dir: PathBuf::from("./data/server"),
            master_key: DEMO_MASTER_KEY.into(),
            previous_master_key: String::new(),
            agent_token: DEMO_AGENT_TOKEN.into(),
            analyst_token: DEMO_ANALYST_TOKEN.into(),
            embedding_batch: 8,
            shopify_client_id: String::new(),
            shopify_scopes: DEFAULT_SCOPES.into(),
            app_url: String::new(),
            shopify_client_secret: DEMO_SHOPIFY_CLIENT_SECRET.into(),
            shopify_previous_client_secret: String::new(),
            exports_dir: PathBuf::from("./data/exports"),
            shopify_access_token: String::new(),
            shopify_admin_url: String::new(),
            shopify_api_version: "2026-04".into(),
            sync_every_seconds: 900,
        }
    }
}

/// Every key with its environment variable, in one place so the docs, the loader and the
/// tests cannot disagree.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("lake_url", "SUPPORTLAKE_LAKE_URL"),
    ("index_dir", "SUPPORTLAKE_INDEX_DIR"),
    ("listen", "SUPPORTLAKE_LISTEN"),
    ("pii_hash_key", "SUPPORTLAKE_PII_HASH_KEY"),
    ("ingest_batch_rows", "SUPPORTLAKE_INGEST_BATCH_ROWS"),
    ("assets_dir", "SUPPORTLAKE_ASSETS_DIR"),
    ("intents_dir", "SUPPORTLAKE_INTENTS_DIR"),
    ("state_dir", "SUPPORTLAKE_STATE_DIR"),
    ("master_key", "SUPPORTLAKE_MASTER_KEY"),
    ("previous_master_key", "SUPPORTLAKE_PREVIOUS_MASTER_KEY"),
    ("agent_token", "SUPPORTLAKE_AGENT_TOKEN"),
    ("analyst_token", "SUPPORTLAKE_ANALYST_TOKEN"),
    ("embedding_batch", "SUPPORTLAKE_EMBEDDING_BATCH"),
    ("shopify_client_id", "SUPPORTLAKE_SHOPIFY_CLIENT_ID"),
    ("shopify_scopes", "SUPPORTLAKE_SHOPIFY_SCOPES"),
    ("app_url", "SUPPORTLAKE_APP_URL"),
    ("shopify_client_secret", "SUPPORTLAKE_SHOPIFY_CLIENT_SECRET"),
    (
        "shopify_previous_client_secret",
        "SUPPORTLAKE_SHOPIFY_PREVIOUS_CLIENT_SECRET",
    ),
    ("exports_dir", "SUPPORTLAKE_EXPORTS_DIR"),
    ("shopify_access_token", "SUPPORTLAKE_SHOPIFY_ACCESS_TOKEN"),
    ("shopify_admin_url", "SUPPORTLAKE_SHOPIFY_ADMIN_URL"),
    ("shopify_api_version", "SUPPORTLAKE_SHOPIFY_API_VERSION"),
    ("sync_every_seconds", "SUPPORTLAKE_SYNC_EVERY_SECONDS"),
];

fn positive(key: &str, value: &str) -> Result<usize> {
    value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        PipelineError::Config(format!("{key} must be a positive integer, got {value:?}"))
    })
}

impl Config {
    /// Loads defaults, then `file` (or `./supportlake.toml` when it exists), then the
    /// environment as seen through `env`.
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None if Path::new("supportlake.toml").exists() => {
                Self::from_file(Path::new("supportlake.toml"))?
            }
            None => Self::default(),
        };
        for (key, var) in ENV_KEYS {
            if let Some(value) = env(var) {
                config.apply_override(key, &value).map_err(|e| match e {
                    PipelineError::Config(msg) => PipelineError::Config(format!("{var}: {msg}")),
                    other => other,
                })?;
            }
        }
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PipelineError::Config(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| PipelineError::Config(format!("{}: {e}", path.display())))
    }

    /// Sets one key from its string form (how env vars and flags arrive).
    pub fn apply_override(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "lake_url" => self.lake_url = value.into(),
            "index_dir" => self.index_dir = value.into(),
            "listen" => self.listen = value.into(),
            "pii_hash_key" => self.pii_hash_key = value.into(),
            "assets_dir" => self.assets_dir = value.into(),
            "intents_dir" => self.intents_dir = value.into(),
            "state_dir" => self.state_dir = value.into(),
            "master_key" => self.master_key = value.into(),
            "previous_master_key" => self.previous_master_key = value.into(),
            "agent_token" => self.agent_token = value.into(),
            "analyst_token" => self.analyst_token = value.into(),
            "shopify_client_id" => self.shopify_client_id = value.into(),
            "shopify_scopes" => self.shopify_scopes = value.into(),
            "app_url" => self.app_url = value.into(),
            "shopify_client_secret" => self.shopify_client_secret = value.into(),
            "shopify_previous_client_secret" => {
                self.shopify_previous_client_secret = value.into();
            }
            "exports_dir" => self.exports_dir = value.into(),
            "shopify_access_token" => self.shopify_access_token = value.into(),
            "shopify_admin_url" => self.shopify_admin_url = value.into(),
            "shopify_api_version" => self.shopify_api_version = value.into(),
            "ingest_batch_rows" => self.ingest_batch_rows = positive(key, value)?,
            "embedding_batch" => self.embedding_batch = positive(key, value)?,
            "sync_every_seconds" => {
                self.sync_every_seconds = value.parse().map_err(|_| {
                    PipelineError::Config(format!(
                        "{key} must be a whole number of seconds, got {value:?}"
                    ))
                })?;
            }
            other => {
                return Err(PipelineError::Config(format!(
                    "unknown config key {other:?}"
                )));
            }
        }
        Ok(())
    }

    /// The configuration with its secrets replaced by a note, for printing.
    pub fn redacted(&self) -> Self {
        let hide = |value: &str, demo: &str| {
            if value.is_empty() {
                String::new()
            } else if value == demo {
                format!("{value} (public demo value)")
            } else {
                "(set, not shown)".to_string()
            }
        };
        Self {
            pii_hash_key: hide(&self.pii_hash_key, DEMO_PII_HASH_KEY),
            master_key: hide(&self.master_key, DEMO_MASTER_KEY),
            previous_master_key: hide(&self.previous_master_key, ""),
            agent_token: hide(&self.agent_token, DEMO_AGENT_TOKEN),
            analyst_token: hide(&self.analyst_token, DEMO_ANALYST_TOKEN),
            shopify_client_secret: hide(&self.shopify_client_secret, DEMO_SHOPIFY_CLIENT_SECRET),
            shopify_previous_client_secret: hide(&self.shopify_previous_client_secret, ""),
            shopify_access_token: hide(&self.shopify_access_token, ""),
            ..self.clone()
        }
    }

    /// The lake location as an absolute URL. Plain paths become `file://` URLs.
    pub fn lake_url(&self) -> Result<Url> {
        lake_url_from(&self.lake_url)
    }
}

/// Turns `s3://…`, `file://…` or a plain (possibly relative) path into a URL.
pub fn lake_url_from(location: &str) -> Result<Url> {
    if location.contains("://") {
        return Url::parse(location).map_err(|e| {
            PipelineError::Config(format!("lake_url {location:?} is not a URL: {e}"))
        });
    }
    let path = Path::new(location);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| PipelineError::Config(format!("cannot resolve {location:?}: {e}")))?
            .join(path)
    };
    Url::from_directory_path(&absolute).map_err(|()| {
        PipelineError::Config(format!("lake path {} is not absolute", absolute.display()))
    })
}

/// The secrets a server needs, with their public demo values.
const SERVING_SECRETS: &[(&str, &str)] = &[
    ("pii_hash_key", DEMO_PII_HASH_KEY),
    ("master_key", DEMO_MASTER_KEY),
    ("agent_token", DEMO_AGENT_TOKEN),
    ("analyst_token", DEMO_ANALYST_TOKEN),
    ("shopify_client_secret", DEMO_SHOPIFY_CLIENT_SECRET),
];

impl Config {
    /// Fails closed before a server starts: every secret it needs is set, and a public
    /// demo value is accepted only when the server listens on loopback, where nobody else
    /// can reach it. The error names each setting at fault.
    pub fn check_serving_secrets(&self, on_loopback: bool) -> Result<()> {
        let value = |key: &str| match key {
            "pii_hash_key" => &self.pii_hash_key,
            "master_key" => &self.master_key,
            "agent_token" => &self.agent_token,
            "analyst_token" => &self.analyst_token,
            _ => &self.shopify_client_secret,
        };
        let mut problems = Vec::new();
        for (key, demo) in SERVING_SECRETS {
            let set = value(key).trim();
            if set.is_empty() {
                problems.push(format!("{key} is empty"));
            } else if set == *demo && !on_loopback {
                problems.push(format!(
                    "{key} is the public demo value, which is refused off loopback"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PipelineError::Config(format!(
                "refusing to serve: {} (set each in supportlake.toml or its SUPPORTLAKE_* variable; docs/operations.md)",
                problems.join("; ")
            )))
        }
    }

    /// The Admin API's base URL for `shop` (its myshopify domain): `shopify_admin_url` when
    /// set (a proxy or a stand-in server), else the shop's own domain.
    pub fn admin_base_url(&self, shop: &str) -> String {
        if self.shopify_admin_url.is_empty() {
            format!("https://{shop}")
        } else {
            self.shopify_admin_url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_beats_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("supportlake.toml");
        std::fs::write(
            &file,
            "lake_url = \"/srv/lake\"\nlisten = \"127.0.0.1:9000\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&file), |var| {
            (var == "SUPPORTLAKE_LISTEN").then(|| "127.0.0.1:7000".to_string())
        })
        .unwrap();
        assert_eq!(config.lake_url, "/srv/lake");
        assert_eq!(config.listen, "127.0.0.1:7000");
        assert_eq!(config.index_dir, PathBuf::from("./data/index"));
    }

    #[test]
    fn unknown_keys_and_bad_numbers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("supportlake.toml");
        std::fs::write(&file, "lake_ur = \"/srv/lake\"\n").unwrap();
        let err = Config::load(Some(&file), |_| None).unwrap_err().to_string();
        assert!(err.contains("lake_ur"), "{err}");
        let err = Config::load(None, |var| {
            (var == "SUPPORTLAKE_INGEST_BATCH_ROWS").then(|| "zero".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("SUPPORTLAKE_INGEST_BATCH_ROWS"), "{err}");
        let batch = |value: &'static str| {
            Config::load(None, move |var| {
                (var == "SUPPORTLAKE_EMBEDDING_BATCH").then(|| value.to_string())
            })
        };
        let err = batch("0").unwrap_err().to_string();
        assert!(
            err.contains("embedding_batch must be a positive integer"),
            "{err}"
        );
        assert_eq!(batch("4").unwrap().embedding_batch, 4);
    }

    #[test]
    fn printing_shows_secrets_only_when_they_are_the_public_demo_values() {
        let mut config = Config::default();
        let demo = config.redacted();
        assert!(
            demo.agent_token.starts_with(DEMO_AGENT_TOKEN),
            "{}",
            demo.agent_token
        );
        config.agent_token = "s3cr3t-agent".into();
        config.master_key = "s3cr3t-master".into();
        config.previous_master_key = "s3cr3t-old-master".into();
        config.pii_hash_key = "s3cr3t-key".into();
        config.shopify_client_secret = "s3cr3t-shopify".into();
        config.shopify_previous_client_secret = "s3cr3t-old-shopify".into();
        let printed = toml::to_string(&config.redacted()).unwrap();
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert_eq!(config.redacted().lake_url, config.lake_url);
    }

    #[test]
    fn a_server_fails_closed_on_empty_secrets_and_on_demo_secrets_off_loopback() {
        let demo = Config::default();
        demo.check_serving_secrets(true).unwrap();
        let error = demo.check_serving_secrets(false).unwrap_err().to_string();
        for (key, _) in SERVING_SECRETS {
            assert!(
                error.contains(&format!("{key} is the public demo value")),
                "{error}"
            );
        }
        for (key, _) in SERVING_SECRETS {
            let mut config = Config::default();
            config.apply_override(key, "").unwrap();
            let error = config.check_serving_secrets(true).unwrap_err().to_string();
            assert!(error.contains(&format!("{key} is empty")), "{error}");
        }
        let mut real = Config::default();
        for (key, _) in SERVING_SECRETS {
            real.apply_override(key, &format!("private-{key}")).unwrap();
        }
        real.check_serving_secrets(false).unwrap();
    }

    #[test]
    fn plain_paths_become_file_urls() {
        assert_eq!(
            lake_url_from("/tmp/lake").unwrap().as_str(),
            "file:///tmp/lake/"
        );
        assert_eq!(lake_url_from("s3://bucket/lake").unwrap().scheme(), "s3");
        assert!(
            lake_url_from("./data/lake")
                .unwrap()
                .as_str()
                .ends_with("/data/lake/")
        );
    }
}
