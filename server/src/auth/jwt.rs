//! Console sessions: short-lived JWTs a tenant's API key mints (`createSession`) for a browser,
//! so the key itself never sits in one.
//!
//! HS256 only (the algorithm is pinned: a token claiming another, `none` included, is refused),
//! an expiry always (at most 12 hours, 30 seconds of clock skew allowed), and a `kid` naming the
//! signing key: `TWH_JWT_KEYS` lists `kid:secret` pairs, the first signs and all verify, so a key
//! is rotated by putting the new one first and dropping the old after the longest session. A
//! session acts as the key that minted it, with that key's role or a lower one; revoking the key
//! or suspending the tenant ends its sessions (the same check, and cache, as the key).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Role;

pub const ISSUER: &str = "twh";
pub const MAX_TTL_SECS: u64 = 12 * 3600;
pub const DEFAULT_TTL_SECS: u64 = 3600;
const LEEWAY_SECS: u64 = 30;

/// What a session token says.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Claims {
    pub iss: String,
    /// The API key that minted the session.
    pub sub: String,
    /// The tenant.
    pub tid: String,
    pub role: Role,
    pub iat: u64,
    pub exp: u64,
    /// The session's id, in the audit trail.
    pub jti: String,
    /// A console session's CSRF token: a request authenticated by the console's cookie must
    /// repeat it in `X-CSRF-Token` (a cross-site page can send the cookie, never the header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    /// A console session of the platform operator (`TWH_ADMIN_TOKEN`), not of a tenant's key:
    /// `sub` is then a fingerprint of the admin token, so changing the token ends it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub op: bool,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The installation's session keys.
pub struct Sessions {
    keys: Vec<SigningKey>,
    /// True when no `TWH_JWT_KEYS` was given and a key was made up for this process: its
    /// sessions work on this process only and end with it.
    pub ephemeral: bool,
}

/// Parses `TWH_JWT_KEYS`: `kid:secret` pairs separated by commas; secrets of 32 bytes or more.
pub fn parse_keys(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut keys = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((kid, secret)) = pair.split_once(':') else {
            return Err("each key is kid:secret".into());
        };
        let kid = kid.trim();
        if kid.is_empty()
            || kid.len() > 64
            || !kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err("a kid is 1 to 64 letters, digits, '-', '_' or '.'".into());
        }
        if secret.len() < 32 {
            // Never echo the secret itself.
            return Err(format!("the secret of kid {kid} is shorter than 32 bytes"));
        }
        if keys.iter().any(|(k, _): &(String, String)| k == kid) {
            return Err(format!("kid {kid} is listed twice"));
        }
        keys.push((kid.to_owned(), secret.to_owned()));
    }
    if keys.is_empty() {
        return Err("give at least one kid:secret".into());
    }
    Ok(keys)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Sessions {
    /// The configured keys, or one made up for this process.
    pub fn new(configured: Option<&[(String, String)]>) -> Self {
        let (pairs, ephemeral) = match configured {
            Some(pairs) if !pairs.is_empty() => (pairs.to_vec(), false),
            _ => {
                use rand::Rng;
                let secret: String = rand::rng()
                    .sample_iter(&rand::distr::Alphanumeric)
                    .take(48)
                    .map(char::from)
                    .collect();
                (vec![("ephemeral".to_owned(), secret)], true)
            }
        };
        let keys = pairs
            .into_iter()
            .map(|(kid, secret)| SigningKey {
                kid,
                encoding: EncodingKey::from_secret(secret.as_bytes()),
                decoding: DecodingKey::from_secret(secret.as_bytes()),
            })
            .collect();
        Self { keys, ephemeral }
    }

    /// Signs a session for `sub` (a key id) of `tid` with `role`, living `ttl_secs`.
    pub fn mint(
        &self,
        sub: &str,
        tid: &str,
        role: Role,
        ttl_secs: u64,
    ) -> anyhow::Result<(String, Claims)> {
        self.sign(claims(sub, tid, role, ttl_secs))
    }

    /// Signs a console session: like [`Sessions::mint`], with a fresh CSRF token, and for the
    /// platform operator when `operator` (then `sub` is the admin token's fingerprint and `tid`
    /// is empty).
    pub fn mint_console(
        &self,
        sub: &str,
        tid: &str,
        role: Role,
        ttl_secs: u64,
        operator: bool,
    ) -> anyhow::Result<(String, Claims)> {
        self.sign(Claims {
            csrf: Some(super::api_key::random_token(32)),
            op: operator,
            ..claims(sub, tid, role, ttl_secs)
        })
    }

    fn sign(&self, claims: Claims) -> anyhow::Result<(String, Claims)> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| anyhow::anyhow!("no session key"))?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)?;
        Ok((token, claims))
    }

    /// The claims of a valid token: signed by a listed key (by `kid`) with HS256, issued by us,
    /// not expired (30 s of skew), not issued in the future, and no longer-lived than allowed.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::HS256 {
            return None;
        }
        let kid = header.kid?;
        let key = self.keys.iter().find(|k| k.kid == kid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .ok()?
            .claims;
        let now = now_secs();
        (claims.iat <= now + LEEWAY_SECS && claims.exp <= claims.iat + MAX_TTL_SECS)
            .then_some(claims)
    }
}

fn claims(sub: &str, tid: &str, role: Role, ttl_secs: u64) -> Claims {
    let iat = now_secs();
    Claims {
        iss: ISSUER.into(),
        sub: sub.into(),
        tid: tid.into(),
        role,
        iat,
        exp: iat + ttl_secs.clamp(60, MAX_TTL_SECS),
        jti: crate::ids::new_id("ses"),
        csrf: None,
        op: false,
    }
}

/// Whether a bearer token is shaped like a JWT (three base64url parts), not like an API key.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(pairs: &[(&str, &str)]) -> Sessions {
        let pairs: Vec<_> = pairs
            .iter()
            .map(|(k, s)| (k.to_string(), s.to_string()))
            .collect();
        Sessions::new(Some(&pairs))
    }

    const A: &str = "a-secret-of-at-least-thirty-two-bytes-0001";
    const B: &str = "b-secret-of-at-least-thirty-two-bytes-0002";

    #[test]
    fn a_minted_session_verifies_and_names_its_key() {
        let s = sessions(&[("k1", A)]);
        let (token, claims) = s.mint("key_1", "ten_1", Role::Viewer, 600).unwrap();
        assert!(looks_like_jwt(&token));
        let back = s.verify(&token).expect("valid");
        assert_eq!(
            (back.sub, back.tid, back.role),
            ("key_1".into(), "ten_1".into(), Role::Viewer)
        );
        assert_eq!(back.jti, claims.jti);
    }

    #[test]
    fn rotation_by_kid_keeps_old_sessions_until_the_key_is_dropped() {
        let old = sessions(&[("k1", A)]);
        let (token, _) = old.mint("key_1", "ten_1", Role::Admin, 600).unwrap();
        let rotated = sessions(&[("k2", B), ("k1", A)]);
        assert!(
            rotated.verify(&token).is_some(),
            "the old kid still verifies"
        );
        let (new_token, _) = rotated.mint("key_1", "ten_1", Role::Admin, 600).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&new_token)
                .unwrap()
                .kid
                .as_deref(),
            Some("k2")
        );
        let dropped = sessions(&[("k2", B)]);
        assert!(
            dropped.verify(&token).is_none(),
            "a dropped kid no longer verifies"
        );
        assert!(dropped.verify(&new_token).is_some());
    }

    #[test]
    fn a_console_session_carries_its_csrf_token_and_whether_it_is_the_operators() {
        let s = sessions(&[("k1", A)]);
        let (token, minted) = s
            .mint_console("key_1", "ten_1", Role::Admin, 600, false)
            .unwrap();
        let back = s.verify(&token).expect("valid");
        assert_eq!(back.csrf, minted.csrf);
        assert!(back.csrf.as_deref().is_some_and(|t| t.len() == 32));
        assert!(!back.op);
        let (token, _) = s
            .mint_console("operator:ab", "", Role::Owner, 600, true)
            .unwrap();
        assert!(s.verify(&token).expect("valid").op);
        // A session minted for a bearer (createSession) has neither.
        let (token, _) = s.mint("key_1", "ten_1", Role::Viewer, 600).unwrap();
        let plain = s.verify(&token).expect("valid");
        assert_eq!((plain.csrf, plain.op), (None, false));
    }

    #[test]
    fn other_algorithms_expired_and_forged_tokens_are_refused() {
        let s = sessions(&[("k1", A)]);
        let now = now_secs();
        let claims = Claims {
            iat: now - 7200,
            exp: now - 3600,
            jti: "ses_x".into(),
            ..super::claims("key_1", "ten_1", Role::Owner, 600)
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let expired =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(A.as_bytes()))
                .unwrap();
        assert!(s.verify(&expired).is_none(), "expired");

        let live = Claims {
            iat: now,
            exp: now + 600,
            ..claims.clone()
        };
        let mut hs512 = Header::new(Algorithm::HS512);
        hs512.kid = Some("k1".into());
        let other_alg =
            jsonwebtoken::encode(&hs512, &live, &EncodingKey::from_secret(A.as_bytes())).unwrap();
        assert!(s.verify(&other_alg).is_none(), "HS512 is not accepted");

        let forged =
            jsonwebtoken::encode(&header, &live, &EncodingKey::from_secret(B.as_bytes())).unwrap();
        assert!(s.verify(&forged).is_none(), "signed with another secret");

        // alg "none": header {"alg":"none","kid":"k1"}, no signature.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let unsigned = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","kid":"k1"}"#),
            b64.encode(serde_json::to_vec(&live).unwrap())
        );
        assert!(s.verify(&unsigned).is_none(), "alg none");

        let too_long = Claims {
            exp: now + MAX_TTL_SECS + 3600,
            ..live
        };
        let long =
            jsonwebtoken::encode(&header, &too_long, &EncodingKey::from_secret(A.as_bytes()))
                .unwrap();
        assert!(s.verify(&long).is_none(), "longer-lived than allowed");
    }

    #[test]
    fn keys_setting_is_checked_without_echoing_secrets() {
        assert!(parse_keys("k1:short").unwrap_err().contains("shorter"));
        assert!(!parse_keys("k1:short").unwrap_err().contains("short:"));
        assert!(parse_keys(&format!("k1:{A},k1:{B}")).is_err());
        assert_eq!(parse_keys(&format!("k1:{A}, k2:{B}")).unwrap().len(), 2);
    }
}
