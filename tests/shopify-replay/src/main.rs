//! `shopify-replay DIR [--token T] [--bucket POINTS] [--restore-rate POINTS_PER_S] [--bulk-ms MS]`:
//! serves a store directory as the Admin GraphQL API on a free loopback port (for the sync
//! benchmark), prints `listening on http://…` and runs until killed.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or_else(|| {
        anyhow::anyhow!(
            "usage: shopify-replay DIR [--token T] [--bucket N] [--restore-rate N] [--bulk-ms MS]"
        )
    })?;
    let mut config = shopify_replay::Config::default();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--token" => config.token = value,
            "--bucket" => config.bucket = value.parse()?,
            "--restore-rate" => config.restore_rate = value.parse()?,
            "--bulk-ms" => config.bulk_duration = std::time::Duration::from_millis(value.parse()?),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let replay = shopify_replay::Replay::serve_dir(std::path::Path::new(&dir), config)?;
    println!("listening on {}", replay.url());
    loop {
        std::thread::park();
    }
}
