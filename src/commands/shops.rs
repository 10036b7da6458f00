//! `supportlake shops …`: the shop registry from the command line.

use anyhow::{Result, bail};
use chrono::Utc;
use pipeline::Config;
use server::shops::{Credentials, ShopKind, ShopRegistry, generate_secret, origin, shop_domain};

use crate::cli::ShopsAction;

pub fn shops(config: &Config, action: ShopsAction) -> Result<()> {
    let registry = ShopRegistry::open_configured(config)?;
    match action {
        ShopsAction::List => {
            let shops = registry.all();
            if shops.is_empty() {
                println!("No shops: install the app on one, or `supportlake shops add DOMAIN`.");
            }
            for shop in shops.values() {
                // When the Admin API sync (the server's or `sync shopify`) last began.
                let synced = pipeline::sources::shopify_api::last_synced(config, &shop.domain)?
                    .map(|t| format!("  last synced {}", t.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default();
                println!("{shop}{synced}");
            }
        }
        ShopsAction::Add {
            domain,
            token,
            storefront_secret,
            origins,
            scopes,
        } => {
            let Some(domain) = shop_domain(&domain) else {
                bail!("{domain:?} is not a shop's *.myshopify.com domain");
            };
            let origins = origins
                .iter()
                .map(|o| {
                    origin(o).ok_or_else(|| {
                        anyhow::anyhow!(
                            "{o:?} is not a storefront origin: https://host[:port], no path (http only for localhost)"
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let existing = registry.get(&domain);
            let kept = existing.as_ref().map(|s| s.credentials.clone());
            let made = storefront_secret.is_none()
                && kept.as_ref().is_none_or(|c| c.storefront_secret.is_empty());
            let credentials = Credentials {
                storefront_secret: storefront_secret
                    .or_else(|| kept.as_ref().map(|c| c.storefront_secret.clone()))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(generate_secret),
                access_token: token.or_else(|| kept.and_then(|c| c.access_token)),
                ..Credentials::default()
            };
            let secret = credentials.storefront_secret.clone();
            let scopes = if scopes.is_empty() {
                existing.map(|s| s.scopes).unwrap_or_default()
            } else {
                scopes
            };
            registry.install(&domain, ShopKind::Custom, scopes, credentials, Utc::now())?;
            if !origins.is_empty() {
                registry.set_origins(&domain, origins)?;
            }
            println!("{}", registry.get(&domain).expect("just installed"));
            if made {
                println!(
                    "Storefront secret (shown once; put it in the theme's supportlake settings): {secret}"
                );
            }
        }
        ShopsAction::Remove { domain } => {
            if !registry.remove(&domain)? {
                bail!("no shop {domain} in the registry");
            }
            println!("Removed {domain} and its credentials.");
        }
        ShopsAction::Rekey => {
            let moved = registry.rekey()?;
            println!(
                "Sealed {moved} shop(s) under master_key; every shop now opens without previous_master_key."
            );
        }
    }
    Ok(())
}
