//! API keys: `twh_test_`/`twh_live_` + a public lookup part + a secret part. Only the SHA-256
//! of the whole key is stored; the row is found by the lookup part and the hash compared in
//! constant time.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use twh_entity::{api_key, tenant};

use super::{Principal, Role};

const LOOKUP_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const CACHE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 10_000;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ApiKeyKind {
    /// Sandbox keys: `twh_test_…`.
    Test,
    /// Production keys: `twh_live_…`.
    Live,
}

impl ApiKeyKind {
    fn prefix(self) -> &'static str {
        match self {
            ApiKeyKind::Test => "twh_test_",
            ApiKeyKind::Live => "twh_live_",
        }
    }
}

pub struct GeneratedKey {
    /// The full key, shown once to its owner.
    pub plaintext: String,
    pub lookup: String,
    pub hash: String,
}

pub(crate) fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub fn hash_key(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

pub fn generate_key(kind: ApiKeyKind) -> GeneratedKey {
    let lookup = random_token(LOOKUP_LEN);
    let plaintext = format!("{}{}{}", kind.prefix(), lookup, random_token(SECRET_LEN));
    let hash = hash_key(&plaintext);
    GeneratedKey {
        plaintext,
        lookup,
        hash,
    }
}

/// Splits a presented key into its lookup part, refusing anything not shaped like our keys.
fn lookup_part(presented: &str) -> Option<&str> {
    let rest = presented
        .strip_prefix("twh_test_")
        .or_else(|| presented.strip_prefix("twh_live_"))?;
    if rest.len() != LOOKUP_LEN + SECRET_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(&rest[..LOOKUP_LEN])
}

/// Recently verified keys, so a hot client does not cost a query per request. Entries expire
/// after 30 seconds, which bounds how long a revoked key or suspended tenant keeps working.
#[derive(Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, (Principal, Instant)>>,
}

impl KeyCache {
    fn get(&self, hash: &str) -> Option<Principal> {
        let entries = self.entries.read().ok()?;
        let (principal, at) = entries.get(hash)?;
        (at.elapsed() < CACHE_TTL).then(|| principal.clone())
    }

    /// Forgets a key (revoked here or, through the bus, on another replica).
    pub fn evict_key(&self, key_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (p, _)| p.key_id != key_id);
        }
    }

    /// Forgets every key of a tenant (suspended here or on another replica).
    pub fn evict_tenant(&self, tenant_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (p, _)| p.tenant_id != tenant_id);
        }
    }

    /// Forgets every key (when revocations may have been missed).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    fn put(&self, hash: String, principal: Principal) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= CACHE_MAX {
                entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                if entries.len() >= CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(hash, (principal, Instant::now()));
        }
    }
}

/// Resolves a bearer token to a principal; `None` for anything unknown, revoked or suspended.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    cache: &KeyCache,
    presented: &str,
) -> anyhow::Result<Option<Principal>> {
    let Some(lookup) = lookup_part(presented) else {
        return Ok(None);
    };
    let hash = hash_key(presented);
    if let Some(principal) = cache.get(&hash) {
        return Ok(Some(principal));
    }
    let key = api_key::Entity::find()
        .filter(api_key::Column::Lookup.eq(lookup))
        .one(db)
        .await?;
    let Some((key, role)) = in_force(db, key).await? else {
        return Ok(None);
    };
    let matches: bool = key.key_hash.as_bytes().ct_eq(hash.as_bytes()).into();
    if !matches {
        return Ok(None);
    }
    let principal = Principal {
        tenant_id: key.tenant_id,
        key_id: key.id,
        role,
        session: None,
    };
    cache.put(hash, principal.clone());
    Ok(Some(principal))
}

/// The key and its role, if it exists, is not revoked and its tenant is active.
async fn in_force(
    db: &impl ConnectionTrait,
    key: Option<api_key::Model>,
) -> anyhow::Result<Option<(api_key::Model, Role)>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let active = tenant::Entity::find_by_id(key.tenant_id.clone())
        .one(db)
        .await?
        .is_some_and(|t| t.status == "active");
    let role = Role::parse(&key.role);
    Ok(match role {
        Some(role) if active && key.revoked_at.is_none() => Some((key, role)),
        _ => None,
    })
}

/// The principal of a verified session token: valid while the key that minted it is (not
/// revoked, its tenant active), cached like a key and evicted with it.
pub async fn authenticate_session(
    db: &impl ConnectionTrait,
    cache: &KeyCache,
    token: &str,
    claims: super::jwt::Claims,
) -> anyhow::Result<Option<Principal>> {
    let hash = hash_key(token);
    if let Some(principal) = cache.get(&hash) {
        return Ok(Some(principal));
    }
    let key = api_key::Entity::find()
        .filter(api_key::Column::TenantId.eq(claims.tid.as_str()))
        .filter(api_key::Column::Id.eq(claims.sub.as_str()))
        .one(db)
        .await?;
    let Some((key, key_role)) = in_force(db, key).await? else {
        return Ok(None);
    };
    if key_role.rank() < claims.role.rank() {
        return Ok(None);
    }
    let principal = Principal {
        tenant_id: key.tenant_id,
        key_id: key.id,
        role: claims.role,
        session: Some(claims.jti),
    };
    cache.put(hash, principal.clone());
    Ok(Some(principal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_their_prefix_and_verify() {
        let key = generate_key(ApiKeyKind::Test);
        assert!(key.plaintext.starts_with("twh_test_"));
        assert_eq!(lookup_part(&key.plaintext), Some(key.lookup.as_str()));
        assert_eq!(hash_key(&key.plaintext), key.hash);
        let live = generate_key(ApiKeyKind::Live);
        assert!(live.plaintext.starts_with("twh_live_"));
        assert_ne!(live.hash, key.hash);
    }

    #[test]
    fn malformed_keys_have_no_lookup_part() {
        assert_eq!(lookup_part(""), None);
        assert_eq!(lookup_part("twh_test_short"), None);
        assert_eq!(
            lookup_part("sk_live_0123456789012345678901234567890123456789abcd"),
            None
        );
        let key = generate_key(ApiKeyKind::Live).plaintext;
        let tampered = format!("{}!", &key[..key.len() - 1]);
        assert_eq!(lookup_part(&tampered), None);
    }
}
