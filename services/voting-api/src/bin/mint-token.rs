//! Prints a bearer token for a subject, signed with `JWT_SECRET`; for local use and tests
//! until accounts exist. Usage: `mint-token SUBJECT [TTL_SECONDS]`.

use std::time::Duration;

use anyhow::{Context, bail};
use pollstream_infra::env::Vars;
use pollstream_infra::jwt::{JwtKeys, MIN_SECRET_LEN};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(subject) = args.next().filter(|s| !s.starts_with('-')) else {
        bail!("usage: mint-token SUBJECT [TTL_SECONDS]  (reads JWT_SECRET)");
    };
    let ttl: u64 = match args.next() {
        Some(ttl) => ttl
            .parse()
            .with_context(|| format!("TTL_SECONDS {ttl:?} is not a number"))?,
        None => 24 * 60 * 60,
    };
    let secret = Vars::process().required("JWT_SECRET")?;
    if secret.len() < MIN_SECRET_LEN {
        bail!("JWT_SECRET must be at least {MIN_SECRET_LEN} bytes");
    }
    println!(
        "{}",
        JwtKeys::new(secret.as_bytes()).issue(&subject, Duration::from_secs(ttl))
    );
    Ok(())
}
