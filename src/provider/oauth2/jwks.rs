//! Verifying a JWT access token against the issuer's published keys (JWKS), with ring.
//!
//! Only asymmetric algorithms a client can check are accepted: RS256, PS256 and ES256;
//! `none` and the HS* family (which would need the server's secret, or would let anyone
//! forge a token) are refused. The key is chosen by `kid`; then the signature, `iss`,
//! `exp` (60 s leeway), `nbf` and, when AUDIENCE or RESOURCE is set, `aud` are checked, and
//! each failure names the check. Entra ID tokens for Microsoft Graph carry a `nonce` header
//! and are signed over a hashed nonce, so no client can verify them by design
//! (https://github.com/AzureAD/azure-activedirectory-identitymodel-extensions-for-dotnet/issues/609):
//! their claims are checked and the log says the signature was not.

use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

/// Leeway for `exp` and `nbf`, for clocks a little apart.
pub const LEEWAY_SECS: u64 = 60;

/// What the token must satisfy.
#[derive(Debug, Default)]
pub struct Expect {
    /// Accepted `iss` values; empty when the issuer is unknown (TOKEN_URL without ISSUER).
    pub issuers: Vec<String>,
    /// Values one of which `aud` must contain; empty when none was asked for.
    pub audiences: Vec<String>,
}

/// A token whose checks passed.
#[derive(Debug)]
pub struct Verified {
    /// The claims.
    pub claims: Map<String, Value>,
    /// Whether the signature was checked (false only for Entra's nonce tokens).
    pub signature_checked: bool,
}

fn b64(part: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| "it is not base64url".to_owned())
}

/// A JSON object.
pub type Object = Map<String, Value>;

/// Header, claims and the three parts of a compact JWS, unverified (also for logging the
/// claims of identity tokens).
pub fn decode(token: &str) -> Result<(Object, Object, Vec<&str>), String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("the token is not a JWT (three dot-separated parts)".into());
    }
    let object = |part: &str, what: &str| -> Result<Map<String, Value>, String> {
        match serde_json::from_slice(&b64(part).map_err(|e| format!("its {what}: {e}"))?) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!("its {what} is not a JSON object")),
        }
    };
    Ok((
        object(parts[0], "header")?,
        object(parts[1], "claims")?,
        parts,
    ))
}

/// Verifies `token` against `jwks` at `now` (seconds since the epoch).
pub fn verify(token: &str, jwks: &Value, expect: &Expect, now: u64) -> Result<Verified, String> {
    let (header, claims, parts) = decode(token)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !matches!(alg, "RS256" | "PS256" | "ES256") {
        return Err(format!(
            "signature: alg {} is not accepted (RS256, PS256 and ES256 are; none and HS* never)",
            crate::report::quote_remote(alg, 20)
        ));
    }
    let signature_checked = if header.contains_key("nonce") {
        false
    } else {
        let key = find_key(jwks, header.get("kid").and_then(Value::as_str), alg)?;
        let signed = format!("{}.{}", parts[0], parts[1]);
        let sig = b64(parts[2]).map_err(|e| format!("signature: {e}"))?;
        check_signature(key, alg, signed.as_bytes(), &sig)?;
        true
    };
    check_claims(&claims, expect, now)?;
    Ok(Verified {
        claims,
        signature_checked,
    })
}

fn find_key<'a>(
    jwks: &'a Value,
    kid: Option<&str>,
    alg: &str,
) -> Result<&'a Map<String, Value>, String> {
    let kty = if alg == "ES256" { "EC" } else { "RSA" };
    let keys: Vec<&Map<String, Value>> = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("key: the JWKS has no keys array")?
        .iter()
        .filter_map(Value::as_object)
        .filter(|k| k.get("kty").and_then(Value::as_str) == Some(kty))
        .filter(|k| {
            k.get("use")
                .and_then(Value::as_str)
                .is_none_or(|u| u == "sig")
        })
        .collect();
    let found: Vec<_> = match kid {
        Some(kid) => keys
            .into_iter()
            .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
            .collect(),
        None => keys,
    };
    match (found.as_slice(), kid) {
        ([key], _) => Ok(key),
        ([], Some(kid)) => Err(format!(
            "key: the JWKS has no {kty} key with kid {} (rotated keys are fetched fresh each run; is JWKS_URL this issuer's?)",
            crate::report::quote_remote(kid, 80)
        )),
        ([], None) => Err(format!("key: the JWKS has no {kty} key")),
        (_, _) => Err("key: the token has no kid and the JWKS holds several keys".into()),
    }
}

fn member(key: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = key
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("key: its {name} is missing"))?;
    b64(text).map_err(|e| format!("key: its {name}: {e}"))
}

fn check_signature(
    key: &Map<String, Value>,
    alg: &str,
    signed: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let ok = match alg {
        "ES256" => {
            if key.get("crv").and_then(Value::as_str) != Some("P-256") {
                return Err("key: an ES256 key must be on curve P-256".into());
            }
            let mut point = vec![4u8];
            point.extend(member(key, "x")?);
            point.extend(member(key, "y")?);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(signed, sig)
        }
        _ => {
            let components = RsaPublicKeyComponents {
                n: member(key, "n")?,
                e: member(key, "e")?,
            };
            let params = if alg == "PS256" {
                &signature::RSA_PSS_2048_8192_SHA256
            } else {
                &signature::RSA_PKCS1_2048_8192_SHA256
            };
            components.verify(params, signed, sig)
        }
    };
    ok.map_err(|_| format!("signature: the {alg} signature does not verify with the issuer's key"))
}

fn check_claims(claims: &Map<String, Value>, expect: &Expect, now: u64) -> Result<(), String> {
    if !expect.issuers.is_empty() {
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if !expect.issuers.iter().any(|i| i == iss) {
            return Err(format!(
                "iss: the token's issuer {} is not {}",
                crate::report::quote_remote(iss, 200),
                expect.issuers.join(" or ")
            ));
        }
    }
    let number = |name: &str| claims.get(name).and_then(Value::as_f64).map(|n| n as u64);
    match number("exp") {
        None => return Err("exp: the token has no expiry".into()),
        Some(exp) if exp + LEEWAY_SECS < now => {
            return Err(format!("exp: the token expired {} s ago", now - exp));
        }
        Some(_) => {}
    }
    if let Some(nbf) = number("nbf").filter(|nbf| *nbf > now + LEEWAY_SECS) {
        return Err(format!(
            "nbf: the token is not valid for another {} s (check this machine's clock)",
            nbf - now
        ));
    }
    if !expect.audiences.is_empty() {
        let aud: Vec<&str> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !expect
            .audiences
            .iter()
            .any(|want| aud.contains(&want.as_str()))
        {
            let shown: Vec<String> = aud
                .iter()
                .map(|a| crate::report::quote_remote(a, 100))
                .collect();
            return Err(format!(
                "aud: the token is for [{}], not {}",
                shown.join(", "),
                expect.audiences.join(" or ")
            ));
        }
    }
    Ok(())
}

/// The scopes a JWT carries: `scope` (space-separated, RFC 9068) or `scp` (Entra, Okta: a
/// string or an array).
pub fn scopes(claims: &Map<String, Value>) -> Option<Vec<String>> {
    match claims.get("scope").or_else(|| claims.get("scp"))? {
        Value::String(s) => Some(crate::token::parse_list(s)),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair};

    fn enc(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn es256_token(header: Value, claims: Value) -> (String, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        let signed = format!(
            "{}.{}",
            enc(header.to_string().as_bytes()),
            enc(claims.to_string().as_bytes())
        );
        let sig = key.sign(&rng, signed.as_bytes()).unwrap();
        let point = key.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "x": enc(&point[1..33]), "y": enc(&point[33..])}]});
        (format!("{signed}.{}", enc(sig.as_ref())), jwks)
    }

    const NOW: u64 = 1_800_000_000;

    fn expect() -> Expect {
        Expect {
            issuers: vec!["https://id.example/".into()],
            audiences: vec!["api://x".into()],
        }
    }

    #[test]
    fn a_good_es256_token_passes_and_each_check_is_named() {
        let claims = serde_json::json!({"iss": "https://id.example/", "aud": ["api://x"], "exp": NOW + 300, "nbf": NOW - 5, "scp": "read write"});
        let (token, jwks) = es256_token(serde_json::json!({"alg": "ES256", "kid": "k1"}), claims);
        let verified = verify(&token, &jwks, &expect(), NOW).unwrap();
        assert!(verified.signature_checked);
        assert_eq!(scopes(&verified.claims).unwrap(), ["read", "write"]);
        assert!(
            verify(&token, &jwks, &expect(), NOW + 400)
                .unwrap_err()
                .starts_with("exp:")
        );
        let wrong_aud = Expect {
            audiences: vec!["api://other".into()],
            ..expect()
        };
        assert!(
            verify(&token, &jwks, &wrong_aud, NOW)
                .unwrap_err()
                .starts_with("aud:")
        );
        let wrong_iss = Expect {
            issuers: vec!["https://evil/".into()],
            ..expect()
        };
        assert!(
            verify(&token, &jwks, &wrong_iss, NOW)
                .unwrap_err()
                .starts_with("iss:")
        );
        let mut tampered = token.clone();
        tampered.insert(tampered.find('.').unwrap() + 3, 'A');
        assert!(verify(&tampered, &jwks, &expect(), NOW).is_err());
        let rotated = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k2", "x": "AA", "y": "AA"}]});
        assert!(
            verify(&token, &rotated, &expect(), NOW)
                .unwrap_err()
                .contains("no EC key with kid k1")
        );
    }

    #[test]
    fn none_and_hmac_are_refused() {
        for alg in ["none", "HS256"] {
            let token = format!(
                "{}.{}.",
                enc(serde_json::json!({"alg": alg}).to_string().as_bytes()),
                enc(b"{}")
            );
            assert!(
                verify(&token, &serde_json::json!({"keys": []}), &expect(), NOW)
                    .unwrap_err()
                    .starts_with("signature: alg"),
                "{alg}"
            );
        }
    }

    #[test]
    fn entra_nonce_tokens_get_their_claims_checked_only() {
        let claims =
            serde_json::json!({"iss": "https://id.example/", "aud": "api://x", "exp": NOW + 300});
        let (token, _) = es256_token(
            serde_json::json!({"alg": "ES256", "kid": "k1", "nonce": "n"}),
            claims,
        );
        let verified = verify(&token, &serde_json::json!({"keys": []}), &expect(), NOW).unwrap();
        assert!(!verified.signature_checked);
    }
}
