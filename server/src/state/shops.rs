//! `shops.sqlite`: the shops this server serves, and each one's credentials, sealed.
//!
//! A shop is a tenant. Nothing of a shop is answered or accepted unless it is here: a shop
//! in the lake but not in the registry gets `unknown_shop` like any stranger, and `sync
//! shopify` refuses a shop that uninstalled the app. `supportlake shops add` writes a custom
//! app's shop here with its fixed Admin token. `app/uninstalled` marks a shop uninstalled
//! and drops its tokens; `shop/redact` and `shops remove` forget it.
//!
//! ## Sealed at rest
//!
//! A shop's credentials (its storefront secret, Admin access token, refresh token and their
//! expiry times) are one JSON document sealed with XChaCha20-Poly1305 under the master key
//! (`master_key`): a random 24-byte nonce per write, and the shop's domain as associated
//! data, so a sealed value copied onto another shop's row does not open. Each row names the
//! key that sealed it by a fingerprint (the first 8 bytes of its SHA-256, never the key).
//! Rotating: set the new key as `master_key` and the old one as `previous_master_key`;
//! rows open under either, and `supportlake shops rekey` seals every row under the new one,
//! after which the previous key can go. What is here is never printed ([`Credentials`]'
//! `Debug` shows none of it) and never written to the lake.
//!
//! ## Races
//!
//! Every row has a revision, raised by each write. A token refresh replaces the tokens only
//! if the row is still at the revision it read ([`ShopRegistry::replace_credentials`]):
//! of two refreshes racing, the one that lost gets `false` and re-reads the winner's tokens
//! instead of overwriting the newer refresh token with its older one.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ServerError;
use crate::state::sqlite::Database;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shops (
    domain TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    kind TEXT NOT NULL,
    scopes TEXT NOT NULL,
    origins TEXT NOT NULL,
    installed_at INTEGER NOT NULL,
    uninstalled_at INTEGER,
    key_id TEXT NOT NULL,
    sealed BLOB NOT NULL,
    revision INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Where a shop stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShopStatus {
    Installed,
    /// `app/uninstalled` came: tokens dropped, nothing served or synced; its data stays in
    /// the lake until `shop/redact` erases it.
    Uninstalled,
}

/// How the shop's Admin access was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShopKind {
    /// Installed through OAuth: an expiring offline token and its refresh token.
    Oauth,
    /// A custom app's fixed Admin token (`shops add --token`), or none.
    Custom,
}

/// A shop's secrets. Held only in memory, opened from its sealed row; `Debug` shows which
/// are set, never a value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Signs the theme's `customer_token`s for this shop only.
    pub storefront_secret: String,
    /// The Admin API access token, if the shop granted one.
    pub access_token: Option<String>,
    /// When `access_token` expires (unix seconds); `None`: it does not (custom apps).
    pub access_expires_at: Option<i64>,
    /// Trades for a new access token (and a new refresh token) before that one expires.
    pub refresh_token: Option<String>,
    /// When `refresh_token` expires (unix seconds).
    pub refresh_expires_at: Option<i64>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("storefront_secret", &"<sealed>")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<sealed>"),
            )
            .field("access_expires_at", &self.access_expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<sealed>"),
            )
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish()
    }
}

/// A shop as the registry holds it, credentials opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopRecord {
    /// The shop's `*.myshopify.com` domain: its id everywhere (the lake's `shop_id`).
    pub domain: String,
    pub status: ShopStatus,
    pub kind: ShopKind,
    /// The Admin API scopes granted.
    pub scopes: Vec<String>,
    /// Storefront origins besides `https://<domain>` that may call the chat API directly
    /// (the shop's custom domains), as `https://host[:port]`.
    pub origins: Vec<String>,
    pub installed_at: DateTime<Utc>,
    pub uninstalled_at: Option<DateTime<Utc>>,
    pub credentials: Credentials,
    /// Raised by every write (see the module doc, "Races").
    pub revision: i64,
}

impl ShopRecord {
    /// Whether the shop is served: installed, not uninstalled.
    pub fn is_installed(&self) -> bool {
        self.status == ShopStatus::Installed
    }

    /// Whether a browser page at `origin` may call the chat API for this shop: the shop's
    /// own `https://<domain>`, or one of its configured origins. Compared as text after
    /// lowering, since an origin is a scheme, a host and a port with no path.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        origin == format!("https://{}", self.domain)
            || self.origins.iter().any(|o| o.eq_ignore_ascii_case(&origin))
    }
}

/// What `supportlake shops list` prints: one line a shop, no credential, only whether each
/// is held.
impl std::fmt::Display for ShopRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = |set: bool| if set { "yes" } else { "no" };
        write!(
            f,
            "{}  {:?}/{:?}  installed {}  storefront secret: {}  Admin token: {}",
            self.domain,
            self.status,
            self.kind,
            self.installed_at.format("%Y-%m-%d %H:%M UTC"),
            held(!self.credentials.storefront_secret.is_empty()),
            held(self.credentials.access_token.is_some()),
        )?;
        if let Some(expires) = self
            .credentials
            .access_expires_at
            .and_then(|t| DateTime::from_timestamp(t, 0))
        {
            write!(f, " (expires {})", expires.format("%Y-%m-%d %H:%M UTC"))?;
        }
        if let Some(at) = self.uninstalled_at {
            write!(f, "  uninstalled {}", at.format("%Y-%m-%d %H:%M UTC"))?;
        }
        if !self.scopes.is_empty() {
            write!(f, "  scopes: {}", self.scopes.join(","))?;
        }
        if !self.origins.is_empty() {
            write!(f, "  origins: {}", self.origins.join(" "))?;
        }
        Ok(())
    }
}

/// The master key and, during a rotation, the one before it (see the module doc).
#[derive(Clone)]
pub struct MasterKeys {
    current: [u8; 32],
    previous: Option<[u8; 32]>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("current", &key_id(&self.current))
            .field("previous", &self.previous.as_ref().map(key_id))
            .finish()
    }
}

/// Why a master key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{setting} is empty: set it to 32 random bytes in base64 (openssl rand -base64 32)")]
    Empty { setting: &'static str },
    #[error("{setting} is not 32 bytes of base64 (openssl rand -base64 32)")]
    Malformed { setting: &'static str },
}

impl MasterKeys {
    /// The keys from their base64 settings (`master_key`, `previous_master_key`; an empty
    /// previous key means no rotation is under way).
    pub fn from_base64(current: &str, previous: &str) -> Result<Self, KeyError> {
        let decode = |text: &str, setting: &'static str| -> Result<[u8; 32], KeyError> {
            if text.trim().is_empty() {
                return Err(KeyError::Empty { setting });
            }
            STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or(KeyError::Malformed { setting })
        };
        Ok(Self {
            current: decode(current, "master_key")?,
            previous: if previous.trim().is_empty() {
                None
            } else {
                Some(decode(previous, "previous_master_key")?)
            },
        })
    }

    /// The key a row names by its fingerprint.
    fn by_id(&self, id: &str) -> Option<&[u8; 32]> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|key| key_id(key) == id)
    }
}

/// A key's fingerprint: the first 8 bytes of its SHA-256, in hex. Tells which key sealed a
/// row without revealing anything usable about it.
fn key_id(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

/// Seals `credentials` for `domain` under `key`: nonce ‖ ciphertext.
fn seal(key: &[u8; 32], domain: &str, credentials: &Credentials) -> Result<Vec<u8>, ServerError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let plaintext = serde_json::to_vec(credentials)?;
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: &plaintext,
                aad: domain.as_bytes(),
            },
        )
        .map_err(|_| ServerError::Secrets(format!("could not seal {domain}'s credentials")))?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Opens what [`seal`] made, or says why not (wrong key, another shop's row, or damage:
/// the AEAD tells none of them apart, and neither does this).
fn open(key: &[u8; 32], domain: &str, sealed: &[u8]) -> Result<Credentials, ServerError> {
    const NONCE: usize = 24;
    let refused = || {
        ServerError::Secrets(format!(
            "{domain}'s credentials do not open with the master key that sealed them: the row was altered or moved"
        ))
    };
    if sealed.len() < NONCE {
        return Err(refused());
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE);
    let plaintext = XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: domain.as_bytes(),
            },
        )
        .map_err(|_| refused())?;
    Ok(serde_json::from_slice(&plaintext)?)
}

/// A new storefront secret: 32 random bytes from the operating system, in hex.
pub fn generate_secret() -> String {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A shop's domain as the registry keys it, if it is a valid `*.myshopify.com` domain (what
/// Shopify's own libraries accept: letters, digits and hyphens, then `.myshopify.com`).
pub fn shop_domain(text: &str) -> Option<String> {
    let domain = text.trim().to_ascii_lowercase();
    let name = domain.strip_suffix(".myshopify.com")?;
    let valid = !name.is_empty()
        && name.len() <= 60
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    valid.then_some(domain)
}

/// A storefront origin as `scheme://host[:port]`, lowered, if `text` is one (no path, no
/// query; `https`, or `http` for loopback development only).
pub fn origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    let host = url.host_str()?;
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    let bare = matches!(url.path(), "" | "/") && url.query().is_none() && url.fragment().is_none();
    (scheme_ok && bare && url.username().is_empty()).then(|| url.origin().ascii_serialization())
}

/// The registry. Reads are served from memory (every chat request asks it); writes go to the
/// file and the memory together; [`ShopRegistry::reload_if_changed`] picks up what another
/// process (`supportlake shops …`) wrote.
#[derive(Debug)]
pub struct ShopRegistry {
    database: Database,
    keys: MasterKeys,
    cached: RwLock<Arc<BTreeMap<String, ShopRecord>>>,
    /// SQLite's `data_version` when `cached` was read: it changes when another connection
    /// commits.
    seen: std::sync::Mutex<i64>,
}

impl ShopRegistry {
    /// The registry of the configured `state_dir`, under the configured master keys.
    pub fn open_configured(config: &pipeline::Config) -> Result<Self, ServerError> {
        let keys = MasterKeys::from_base64(&config.master_key, &config.previous_master_key)
            .map_err(|e| ServerError::Secrets(e.to_string()))?;
        Self::open(&config.state_dir, keys)
    }

    /// Opens (creating when missing) `shops.sqlite` in `dir`. Fails when a row does not open
    /// with the keys given: a server must not start with shops it cannot read.
    pub fn open(dir: &Path, keys: MasterKeys) -> Result<Self, ServerError> {
        let database = Database::open(&dir.join("shops.sqlite"), SCHEMA, "FULL")?;
        let registry = Self {
            database,
            keys,
            cached: RwLock::default(),
            seen: std::sync::Mutex::new(-1),
        };
        registry.reload()?;
        Ok(registry)
    }

    /// Every shop, installed or not, by domain.
    pub fn all(&self) -> Arc<BTreeMap<String, ShopRecord>> {
        self.cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The shop `domain`, installed or not.
    pub fn get(&self, domain: &str) -> Option<ShopRecord> {
        self.all().get(&domain.to_ascii_lowercase()).cloned()
    }

    /// The shop `domain` if it is installed: what serving anything of it requires.
    pub fn installed(&self, domain: &str) -> Option<ShopRecord> {
        self.get(domain).filter(ShopRecord::is_installed)
    }

    /// Reads the file again when another connection has committed since the last read.
    pub fn reload_if_changed(&self) -> Result<bool, ServerError> {
        let version: i64 = self
            .database
            .reader()
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if version == *crate::unpoisoned(&self.seen) {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }

    fn reload(&self) -> Result<(), ServerError> {
        let reader = self.database.reader();
        let version: i64 = reader.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let mut statement = reader.prepare(
            "SELECT domain, status, kind, scopes, origins, installed_at, uninstalled_at, key_id, sealed, revision FROM shops",
        )?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Vec<u8>>(8)?,
                    r.get::<_, i64>(9)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        drop(statement);
        drop(reader);
        let mut shops = BTreeMap::new();
        for (
            domain,
            status,
            kind,
            scopes,
            origins,
            installed,
            uninstalled,
            key,
            sealed,
            revision,
        ) in rows
        {
            let master = self.keys.by_id(&key).ok_or_else(|| {
                ServerError::Secrets(format!(
                    "{domain}'s credentials are sealed with key {key}, which is neither master_key nor previous_master_key"
                ))
            })?;
            let record = ShopRecord {
                credentials: open(master, &domain, &sealed)?,
                status: if status == "installed" {
                    ShopStatus::Installed
                } else {
                    ShopStatus::Uninstalled
                },
                kind: if kind == "oauth" {
                    ShopKind::Oauth
                } else {
                    ShopKind::Custom
                },
                scopes: serde_json::from_str(&scopes)?,
                origins: serde_json::from_str(&origins)?,
                installed_at: time(installed),
                uninstalled_at: uninstalled.map(time),
                revision,
                domain: domain.clone(),
            };
            shops.insert(domain, record);
        }
        *self
            .cached
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(shops);
        *crate::unpoisoned(&self.seen) = version;
        Ok(())
    }

    /// Writes `record` (a new revision of it) and refreshes the memory.
    fn write(&self, record: &ShopRecord) -> Result<(), ServerError> {
        let sealed = seal(&self.keys.current, &record.domain, &record.credentials)?;
        self.database.transaction(|tx| {
            tx.execute(
                "INSERT INTO shops (domain, status, kind, scopes, origins, installed_at, uninstalled_at, key_id, sealed, revision)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1)
                 ON CONFLICT (domain) DO UPDATE SET status = ?2, kind = ?3, scopes = ?4, origins = ?5,
                    installed_at = ?6, uninstalled_at = ?7, key_id = ?8, sealed = ?9, revision = revision + 1",
                params![
                    record.domain,
                    status_text(record.status),
                    kind_text(record.kind),
                    serde_json::to_string(&record.scopes)?,
                    serde_json::to_string(&record.origins)?,
                    record.installed_at.timestamp(),
                    record.uninstalled_at.map(|t| t.timestamp()),
                    key_id(&self.keys.current),
                    sealed,
                ],
            )?;
            Ok::<_, ServerError>(())
        })?;
        self.reload()
    }

    /// Installs (or re-installs) `domain` with its grant.
    pub fn install(
        &self,
        domain: &str,
        kind: ShopKind,
        scopes: Vec<String>,
        credentials: Credentials,
        now: DateTime<Utc>,
    ) -> Result<ShopRecord, ServerError> {
        let domain = shop_domain(domain).ok_or_else(|| {
            ServerError::Secrets(format!("{domain:?} is not a *.myshopify.com domain"))
        })?;
        let origins = self.get(&domain).map(|s| s.origins).unwrap_or_default();
        let record = ShopRecord {
            domain: domain.clone(),
            status: ShopStatus::Installed,
            kind,
            scopes,
            origins,
            installed_at: now,
            uninstalled_at: None,
            credentials,
            revision: 0,
        };
        self.write(&record)?;
        self.get(&domain)
            .ok_or_else(|| ServerError::Secrets(format!("{domain} vanished after its install")))
    }

    /// Sets the extra storefront origins of `domain`.
    pub fn set_origins(&self, domain: &str, origins: Vec<String>) -> Result<(), ServerError> {
        let mut record = self.existing(domain)?;
        record.origins = origins;
        self.write(&record)
    }

    /// `app/uninstalled`: marks `domain` uninstalled and drops every credential it had.
    /// Returns `false` when the shop was not installed (a repeat delivery, say).
    pub fn uninstall(&self, domain: &str, now: DateTime<Utc>) -> Result<bool, ServerError> {
        let Some(mut record) = self.get(domain) else {
            return Ok(false);
        };
        if !record.is_installed() {
            return Ok(false);
        }
        record.status = ShopStatus::Uninstalled;
        record.uninstalled_at = Some(now);
        record.credentials = Credentials::default();
        self.write(&record)?;
        Ok(true)
    }

    /// Replaces the credentials of `domain` only if the row is still at `revision` (see the
    /// module doc, "Races"). `false`: someone else wrote first; re-read and use theirs.
    pub fn replace_credentials(
        &self,
        domain: &str,
        revision: i64,
        credentials: &Credentials,
    ) -> Result<bool, ServerError> {
        let sealed = seal(&self.keys.current, domain, credentials)?;
        let changed = self.database.transaction(|tx| {
            Ok::<_, ServerError>(tx.execute(
                "UPDATE shops SET sealed = ?1, key_id = ?2, revision = revision + 1
                 WHERE domain = ?3 AND revision = ?4 AND status = 'installed'",
                params![sealed, key_id(&self.keys.current), domain, revision],
            )?)
        })?;
        self.reload()?;
        Ok(changed == 1)
    }

    /// Forgets `domain` and its credentials. Returns whether it was here.
    pub fn remove(&self, domain: &str) -> Result<bool, ServerError> {
        let removed = self.database.transaction(|tx| {
            Ok::<_, ServerError>(tx.execute(
                "DELETE FROM shops WHERE domain = ?1",
                params![domain.to_ascii_lowercase()],
            )?)
        })?;
        self.reload()?;
        Ok(removed == 1)
    }

    /// Seals every row under the current master key; returns how many were under another.
    pub fn rekey(&self) -> Result<usize, ServerError> {
        let current = key_id(&self.keys.current);
        let mut moved = 0;
        for record in self.all().values() {
            let key: String = self.database.reader().query_row(
                "SELECT key_id FROM shops WHERE domain = ?1",
                params![record.domain],
                |r| r.get(0),
            )?;
            if key != current {
                let sealed = seal(&self.keys.current, &record.domain, &record.credentials)?;
                self.database.transaction(|tx| {
                    Ok::<_, ServerError>(tx.execute(
                        "UPDATE shops SET sealed = ?1, key_id = ?2 WHERE domain = ?3",
                        params![sealed, current, record.domain],
                    )?)
                })?;
                moved += 1;
            }
        }
        self.reload()?;
        Ok(moved)
    }

    fn existing(&self, domain: &str) -> Result<ShopRecord, ServerError> {
        self.get(domain)
            .ok_or_else(|| ServerError::Secrets(format!("no shop {domain} in the registry")))
    }

    /// The fingerprint of the key `domain`'s row is sealed under.
    #[cfg(test)]
    pub fn sealed_with(&self, domain: &str) -> Result<Option<String>, ServerError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .database
            .reader()
            .query_row(
                "SELECT key_id FROM shops WHERE domain = ?1",
                params![domain],
                |r| r.get(0),
            )
            .optional()?)
    }
}

fn time(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

fn status_text(status: ShopStatus) -> &'static str {
    match status {
        ShopStatus::Installed => "installed",
        ShopStatus::Uninstalled => "uninstalled",
    }
}

fn kind_text(kind: ShopKind) -> &'static str {
    match kind {
        ShopKind::Oauth => "oauth",
        ShopKind::Custom => "custom",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ridgeline-outfitters.myshopify.com";
    const B: &str = "summit-supply.myshopify.com";

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    fn credentials(secret: &str) -> Credentials {
        Credentials {
            storefront_secret: secret.into(),
            access_token: Some(format!("shpat_{secret}")),
            access_expires_at: Some(1_900_000_000),
            refresh_token: Some(format!("shprt_{secret}")),
            refresh_expires_at: Some(1_910_000_000),
        }
    }

    fn registry(
        dir: &Path,
        current: u8,
        previous: Option<u8>,
    ) -> Result<ShopRegistry, ServerError> {
        let keys =
            MasterKeys::from_base64(&key(current), &previous.map(key).unwrap_or_default()).unwrap();
        ShopRegistry::open(dir, keys)
    }

    #[test]
    fn credentials_are_sealed_on_disk_and_open_only_for_their_shop_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let shops = registry(dir.path(), 1, None).unwrap();
        shops
            .install(
                A,
                ShopKind::Oauth,
                vec!["read_orders".into()],
                credentials("alpha-secret"),
                Utc::now(),
            )
            .unwrap();
        shops
            .install(
                B,
                ShopKind::Custom,
                vec![],
                credentials("bravo-secret"),
                Utc::now(),
            )
            .unwrap();
        assert_eq!(
            shops.get(A).unwrap().credentials,
            credentials("alpha-secret")
        );
        drop(shops);

        let file = std::fs::read(dir.path().join("shops.sqlite")).unwrap();
        let wal = std::fs::read(dir.path().join("shops.sqlite-wal")).unwrap_or_default();
        for secret in ["alpha-secret", "bravo-secret", "shpat_", "shprt_"] {
            for bytes in [&file, &wal] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} is on disk in the clear"
                );
            }
        }

        // Another key opens nothing, and says which setting to look at.
        let error = registry(dir.path(), 2, None).unwrap_err().to_string();
        assert!(error.contains("master_key"), "{error}");

        // A's sealed value moved onto B's row does not open.
        let connection = rusqlite::Connection::open(dir.path().join("shops.sqlite")).unwrap();
        connection
            .execute(
                "UPDATE shops SET sealed = (SELECT sealed FROM shops WHERE domain = ?1) WHERE domain = ?2",
                params![A, B],
            )
            .unwrap();
        drop(connection);
        let error = registry(dir.path(), 1, None).unwrap_err().to_string();
        assert!(
            error.contains(B) && error.contains("altered or moved"),
            "{error}"
        );
    }

    #[test]
    fn rotating_the_master_key_reseals_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let old = registry(dir.path(), 1, None).unwrap();
        old.install(
            A,
            ShopKind::Custom,
            vec![],
            credentials("alpha"),
            Utc::now(),
        )
        .unwrap();
        old.install(
            B,
            ShopKind::Custom,
            vec![],
            credentials("bravo"),
            Utc::now(),
        )
        .unwrap();
        let old_id = old.sealed_with(A).unwrap().unwrap();
        drop(old);

        // During the rotation both keys open; rekey moves every row to the new one.
        let rotating = registry(dir.path(), 2, Some(1)).unwrap();
        assert_eq!(rotating.get(B).unwrap().credentials, credentials("bravo"));
        assert_eq!(rotating.rekey().unwrap(), 2);
        assert_eq!(rotating.rekey().unwrap(), 0, "nothing left to move");
        assert_ne!(rotating.sealed_with(A).unwrap().unwrap(), old_id);
        drop(rotating);

        // After it, the new key alone opens everything.
        let rotated = registry(dir.path(), 2, None).unwrap();
        assert_eq!(rotated.get(A).unwrap().credentials, credentials("alpha"));
    }

    #[test]
    fn of_two_refreshes_racing_the_later_writer_loses_and_the_newer_token_stays() {
        let dir = tempfile::tempdir().unwrap();
        let shops = registry(dir.path(), 1, None).unwrap();
        let read = shops
            .install(A, ShopKind::Oauth, vec![], credentials("first"), Utc::now())
            .unwrap();
        // Both refreshers read the same revision; the first to write wins.
        assert!(
            shops
                .replace_credentials(A, read.revision, &credentials("second"))
                .unwrap()
        );
        assert!(
            !shops
                .replace_credentials(A, read.revision, &credentials("stale"))
                .unwrap()
        );
        assert_eq!(shops.get(A).unwrap().credentials, credentials("second"));
    }

    #[test]
    fn uninstalling_drops_the_tokens_and_stops_serving() {
        let dir = tempfile::tempdir().unwrap();
        let shops = registry(dir.path(), 1, None).unwrap();
        shops
            .install(A, ShopKind::Oauth, vec![], credentials("alpha"), Utc::now())
            .unwrap();
        assert!(shops.uninstall(A, Utc::now()).unwrap());
        assert!(
            !shops.uninstall(A, Utc::now()).unwrap(),
            "a repeat changes nothing"
        );
        let record = shops.get(A).unwrap();
        assert_eq!(record.status, ShopStatus::Uninstalled);
        assert_eq!(record.credentials, Credentials::default());
        assert!(shops.installed(A).is_none());
        // A refresh that read the installed row cannot bring the tokens back.
        assert!(
            !shops
                .replace_credentials(A, record.revision, &credentials("late"))
                .unwrap()
        );
    }

    #[test]
    fn a_write_by_another_process_is_seen_after_reload() {
        let dir = tempfile::tempdir().unwrap();
        let server = registry(dir.path(), 1, None).unwrap();
        assert!(!server.reload_if_changed().unwrap());
        let cli = registry(dir.path(), 1, None).unwrap();
        cli.install(
            A,
            ShopKind::Custom,
            vec![],
            credentials("alpha"),
            Utc::now(),
        )
        .unwrap();
        assert!(server.get(A).is_none(), "served from memory until reloaded");
        assert!(server.reload_if_changed().unwrap());
        assert!(server.installed(A).is_some());
    }

    #[test]
    fn only_myshopify_domains_and_bare_origins_are_accepted() {
        assert_eq!(
            shop_domain(" Ridgeline-Outfitters.myshopify.com "),
            Some(A.into())
        );
        for bad in [
            "ridgeline.example.com",
            "evil.com/.myshopify.com",
            "a.b.myshopify.com",
            ".myshopify.com",
            "-x.myshopify.com",
            "ridgeline-outfitters.myshopify.com.evil.com",
        ] {
            assert_eq!(shop_domain(bad), None, "{bad}");
        }
        assert_eq!(
            origin("https://Shop.Example.com/"),
            Some("https://shop.example.com".into())
        );
        assert_eq!(
            origin("http://127.0.0.1:8081"),
            Some("http://127.0.0.1:8081".into())
        );
        for bad in [
            "http://shop.example.com",
            "https://shop.example.com/path",
            "shop.example.com",
            "*",
        ] {
            assert_eq!(origin(bad), None, "{bad}");
        }
        let record = ShopRecord {
            domain: A.into(),
            status: ShopStatus::Installed,
            kind: ShopKind::Custom,
            scopes: vec![],
            origins: vec!["https://shop.example.com".into()],
            installed_at: Utc::now(),
            uninstalled_at: None,
            credentials: Credentials::default(),
            revision: 1,
        };
        assert!(record.allows_origin("https://ridgeline-outfitters.myshopify.com"));
        assert!(record.allows_origin("https://SHOP.example.com"));
        assert!(!record.allows_origin("https://summit-supply.myshopify.com"));
        assert!(!record.allows_origin("http://shop.example.com"));
    }
}
