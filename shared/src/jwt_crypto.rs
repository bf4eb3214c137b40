//! The HMAC half of jsonwebtoken's crypto, and nothing else.
//!
//! jsonwebtoken 10+ needs a crypto provider; its `rust_crypto` feature brings
//! RSA, P-256, P-384 and Ed25519 (with their big-integer and curve crates) to
//! sign one kind of token: the session cookie, an HS256 JWT. This provider
//! signs and verifies HS256/384/512 with the `hmac` and `sha2` versions
//! jsonwebtoken itself names (the crate's own HMAC code does the same: a keyed
//! MAC, verified with `verify_slice`, which is constant-time), and refuses
//! every other algorithm — a session never uses one, and `Validation` already
//! pins HS256 before any key is touched. The JWK helpers answer an error: we
//! read no JWKs.
//!
//! [`install`] sets it as the process default; [`crate::credentials::Sessions::new`]
//! calls it, so every signer and verifier in a service is covered. Installing
//! twice is harmless.

use hmac::{Hmac, KeyInit as _, Mac as _};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use sha2::{Sha256, Sha384, Sha512};

/// One HMAC key for one algorithm: signer and verifier at once.
enum Key {
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
}

impl Key {
    fn new(alg: &Algorithm, secret: &[u8]) -> Result<Key, Error> {
        let bad = |_| Error::from(ErrorKind::InvalidKeyFormat);
        Ok(match alg {
            Algorithm::HS256 => Key::Hs256(Hmac::new_from_slice(secret).map_err(bad)?),
            Algorithm::HS384 => Key::Hs384(Hmac::new_from_slice(secret).map_err(bad)?),
            Algorithm::HS512 => Key::Hs512(Hmac::new_from_slice(secret).map_err(bad)?),
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        })
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            Key::Hs256(_) => Algorithm::HS256,
            Key::Hs384(_) => Algorithm::HS384,
            Key::Hs512(_) => Algorithm::HS512,
        }
    }
}

impl signature::Signer<Vec<u8>> for Key {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(match self {
            Key::Hs256(mac) => mac.clone().chain_update(msg).finalize().into_bytes().to_vec(),
            Key::Hs384(mac) => mac.clone().chain_update(msg).finalize().into_bytes().to_vec(),
            Key::Hs512(mac) => mac.clone().chain_update(msg).finalize().into_bytes().to_vec(),
        })
    }
}

impl signature::Verifier<Vec<u8>> for Key {
    fn verify(&self, msg: &[u8], tag: &Vec<u8>) -> Result<(), signature::Error> {
        let checked = match self {
            Key::Hs256(mac) => mac.clone().chain_update(msg).verify_slice(tag),
            Key::Hs384(mac) => mac.clone().chain_update(msg).verify_slice(tag),
            Key::Hs512(mac) => mac.clone().chain_update(msg).verify_slice(tag),
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Key {
    fn algorithm(&self) -> Algorithm {
        Key::algorithm(self)
    }
}

impl JwtVerifier for Key {
    fn algorithm(&self) -> Algorithm {
        Key::algorithm(self)
    }
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if key.family() != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(Key::new(alg, key.as_bytes())?))
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    if key.family() != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(Key::new(alg, key.try_get_as_bytes()?)?))
}

fn no_jwk<T>() -> Result<T, Error> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

static HMAC_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| no_jwk(),
        rsa_pub_components_from_public_key: |_| no_jwk(),
        ec_pub_components_from_private_key: |_, _| no_jwk(),
        ed_pub_components_from_private_key: |_, _| no_jwk(),
        compute_digest: |_, _| no_jwk(),
    },
};

/// Makes the HMAC provider the process default (idempotent).
pub fn install() {
    // Err only means a provider is installed already: ours, by an earlier call.
    let _ = HMAC_ONLY.install_default();
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
    use serde_json::{Value, json};

    #[test]
    fn signs_and_verifies_hs256_and_refuses_what_it_should() {
        super::install();
        let claims = json!({"sub": "x", "exp": 4_102_444_800u64});
        let key = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        let token = encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
        let good = DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        let data = decode::<Value>(&token, &good, &Validation::new(Algorithm::HS256)).unwrap();
        assert_eq!(data.claims["sub"], "x");

        // The same bytes under another secret, a flipped signature, another algorithm.
        let other = DecodingKey::from_secret(b"another secret, 32 bytes long!!!").unwrap();
        assert!(decode::<Value>(&token, &other, &Validation::new(Algorithm::HS256)).is_err());
        let mut forged = token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert!(decode::<Value>(&forged, &good, &Validation::new(Algorithm::HS256)).is_err());
        let hs512 = encode(&Header::new(Algorithm::HS512), &claims, &key).unwrap();
        assert!(decode::<Value>(&hs512, &good, &Validation::new(Algorithm::HS256)).is_err());
        assert!(encode(&Header::new(Algorithm::RS256), &claims, &key).is_err(), "no RSA here");
    }
}
