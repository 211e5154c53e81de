//! Authentication: argon2id password hashes (bounded concurrency, off the async
//! workers) and HS256 JWTs with an expiry. A token's subject is the username; its `role`
//! claim is `USER` or `ADMIN`.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::config::HashingConfig;
use crate::error::AuthError;

/// The claims of a shop token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    /// Issued at and expiry, seconds since the Unix epoch.
    pub iat: u64,
    pub exp: u64,
}

/// Who is calling, from a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub username: String,
    pub role: String,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == crate::users::ROLE_ADMIN
    }
}

/// Hashes and verifies passwords with a bounded number running at once.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    slots: Arc<Semaphore>,
}

impl Passwords {
    pub fn new(config: &HashingConfig) -> Result<Self, String> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| format!("argon2 parameters: {e}"))?;
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(config.concurrent_max.max(1))),
        })
    }

    fn argon(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        let _slot = self.slots.acquire().await.map_err(|_| AuthError::Closed)?;
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
                .map_err(|e| AuthError::Hashing(e.to_string()))?;
            Self::argon(params)
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| AuthError::Hashing(e.to_string()))
        })
        .await
        .map_err(|e| AuthError::Hashing(e.to_string()))?
    }

    /// Whether `password` matches `phc`; the hash's own parameters are used.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, AuthError> {
        let _slot = self.slots.acquire().await.map_err(|_| AuthError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&phc).map_err(|e| AuthError::Hashing(e.to_string()))?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
        .map_err(|e| AuthError::Hashing(e.to_string()))?
    }
}

/// Issues and checks tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_s: u64,
}

impl Tokens {
    pub fn new(secret: &[u8], ttl_s: u64) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_s,
        }
    }

    pub fn ttl_s(&self) -> u64 {
        self.ttl_s
    }

    pub fn issue(&self, username: &str, role: &str, now_s: u64) -> Result<String, AuthError> {
        let claims = Claims {
            sub: username.to_owned(),
            role: role.to_owned(),
            iat: now_s,
            exp: now_s + self.ttl_s,
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .map_err(|e| AuthError::Token(e.to_string()))
    }

    /// The caller a token names, if it is valid and not expired.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        Ok(Caller {
            username: data.claims.sub,
            role: data.claims.role,
        })
    }
}

pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_they_expire_and_only_with_the_secret() {
        let tokens = Tokens::new(&[7u8; 32], 60);
        let now = now_s();
        let t = tokens.issue("alice", "USER", now).unwrap();
        let caller = tokens.verify(&t).unwrap();
        assert_eq!(
            (caller.username.as_str(), caller.role.as_str()),
            ("alice", "USER")
        );
        let expired = tokens.issue("alice", "USER", now - 120).unwrap();
        assert!(matches!(
            tokens.verify(&expired),
            Err(AuthError::InvalidToken(_))
        ));
        let other = Tokens::new(&[8u8; 32], 60);
        assert!(other.verify(&t).is_err());
        assert!(tokens.verify("not.a.token").is_err());
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let p = Passwords::new(&HashingConfig::fast_insecure()).unwrap();
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify("correct horse".into(), h.clone()).await.unwrap());
        assert!(!p.verify("wrong horse!".into(), h).await.unwrap());
    }
}
