//! Private keys from CI variables, and compact JWS signed with them: GitHub App JWTs today,
//! RFC 7523 `private_key_jwt` client assertions for the OAuth 2.0 provider.
//!
//! A key pasted into a CI variable rarely arrives as the file it was: runners and secret
//! stores turn line ends into CRLF, escape them as a literal `\n` (what
//! actions/create-github-app-token converts back), collapse them to spaces, or users
//! base64-wrap the whole PEM to survive all of that. [`PrivateKey::load`] accepts each of
//! those, and PKCS#1 `BEGIN RSA PRIVATE KEY` (what GitHub issues:
//! ../shared/research/providers.md §1.1 "Keys"), PKCS#8 RSA and PKCS#8 EC P-256 (`BEGIN
//! PRIVATE KEY`). What it refuses it names, with the command that fixes it, and never quotes.
//!
//! Signing uses ring only (one crypto stack for TLS and JWS): RS256 (RSASSA-PKCS1-v1_5),
//! PS256 (RSASSA-PSS, what Entra prefers for certificate assertions, providers.md §3.1) and
//! ES256, whose JWS signature is the fixed 64-byte `r || s` form (RFC 7518 §3.4), which is
//! ring's `ECDSA_P256_SHA256_FIXED_SIGNING`, not DER.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use secrecy::SecretString;
use serde_json::{Map, Value};

/// What went wrong loading a key; the text continues a sentence that starts with the
/// variable's name ("PRIVATE_KEY is a public key…") and never quotes the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The encoding a key was given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `BEGIN RSA PRIVATE KEY` (PKCS#1 RSAPrivateKey), as GitHub issues app keys.
    Pkcs1Rsa,
    /// `BEGIN PRIVATE KEY` holding an RSA key.
    Pkcs8Rsa,
    /// `BEGIN PRIVATE KEY` holding a NIST P-256 key.
    Pkcs8EcP256,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pkcs1Rsa => "PKCS#1 RSA",
            Format::Pkcs8Rsa => "PKCS#8 RSA",
            Format::Pkcs8EcP256 => "PKCS#8 EC P-256",
        })
    }
}

/// A JWS signature algorithm (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (GitHub Apps accept only this).
    Rs256,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// ECDSA P-256 with SHA-256, fixed 64-byte signature.
    Es256,
}

impl Alg {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
            Alg::Es256 => "ES256",
        }
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A private key ready to sign, and every form of it that must be masked.
pub struct PrivateKey {
    pair: Pair,
    format: Format,
    forms: Vec<String>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, redacted)", self.format)
    }
}

/// The JOSE header fields a caller may add to `alg` and `typ`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Header<'a> {
    /// `kid`: which of the client's keys signed (a JWKS key ID).
    pub kid: Option<&'a str>,
    /// `x5t#S256`: the base64url SHA-256 of the certificate's DER ([`thumbprint_s256`]);
    /// Entra identifies a certificate credential by it.
    pub x5t_s256: Option<&'a str>,
}

impl PrivateKey {
    /// Loads a key from a variable's value: PEM (LF or CRLF, or with literal `\n` escapes,
    /// or with its line ends collapsed to spaces), or any of those base64-encoded whole, or
    /// base64 DER.
    pub fn load(value: &str) -> Result<PrivateKey, KeyError> {
        let text = unescape(value.trim());
        if text.contains("-----BEGIN") {
            return from_pem(&text);
        }
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(&compact).ok())
            .ok_or_else(|| {
                KeyError("is neither a PEM key (-----BEGIN RSA PRIVATE KEY----- …) nor base64: paste the whole .pem file the app's settings page downloaded, BEGIN and END lines included.".into())
            })?;
        match std::str::from_utf8(&decoded) {
            Ok(inner) if inner.contains("-----BEGIN") => {
                let mut key = from_pem(&unescape(inner.trim()))?;
                key.forms.push(compact);
                Ok(key)
            }
            // base64 of DER, as some secret stores keep keys.
            _ => {
                let mut key = from_der(&decoded, None).map_err(|_| {
                    KeyError("is base64 but decodes to neither a PEM file nor a private key: give the .pem file itself, or its base64 (base64 -w0 key.pem).".into())
                })?;
                key.forms.push(compact);
                Ok(key)
            }
        }
    }

    /// The encoding it was given in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether it is an RSA key (RS256, PS256) rather than EC (ES256).
    pub fn is_rsa(&self) -> bool {
        matches!(self.pair, Pair::Rsa(_))
    }

    /// Every form of the key that could reach a log: the PEM as normalised, each of its
    /// base64 lines, the base64 body on one line, and a base64 wrapping when one was given.
    /// The BEGIN/END lines are not secret and are not listed.
    pub fn secret_forms(&self) -> &[String] {
        &self.forms
    }

    /// The public key: PKCS#1 RSAPublicKey DER for RSA, the uncompressed point for EC
    /// (what ring's verification API takes).
    pub fn public_key(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(k) => k.public().as_ref().to_vec(),
            Pair::Ec(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `claims` as a compact JWS with `alg` (which must suit the key), `typ: JWT` and
    /// the optional header fields. The result is a credential: register it before logging.
    pub fn sign(
        &self,
        alg: Alg,
        header: Header<'_>,
        claims: &Value,
    ) -> Result<SecretString, String> {
        let mut head = Map::new();
        head.insert("alg".into(), alg.name().into());
        head.insert("typ".into(), "JWT".into());
        if let Some(kid) = header.kid {
            head.insert("kid".into(), kid.into());
        }
        if let Some(x5t) = header.x5t_s256 {
            head.insert("x5t#S256".into(), x5t.into());
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(head).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match (&self.pair, alg) {
            (Pair::Rsa(key), Alg::Rs256 | Alg::Ps256) => {
                let padding: &dyn signature::RsaEncoding = if alg == Alg::Rs256 {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(padding, &rng, input.as_bytes(), &mut out)
                    .map_err(|_| "signing with the RSA key failed".to_owned())?;
                out
            }
            (Pair::Ec(key), Alg::Es256) => key
                .sign(&rng, input.as_bytes())
                .map_err(|_| "signing with the EC key failed".to_owned())?
                .as_ref()
                .to_vec(),
            (_, alg) => {
                return Err(format!(
                    "{} cannot sign with a {} key",
                    alg.name(),
                    self.format
                ));
            }
        };
        Ok(SecretString::from(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// `x5t#S256` for a certificate: base64url (no padding) of SHA-256 of its DER (RFC 7515
/// §4.1.8).
pub fn thumbprint_s256(certificate_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, certificate_der))
}

/// Literal `\n` (and `\r\n`) escapes become line ends when the value has none of its own;
/// CRLF and lone CR become LF.
fn unescape(text: &str) -> String {
    let text = if !text.contains('\n') && text.contains("\\n") {
        text.replace("\\r\\n", "\n").replace("\\n", "\n")
    } else {
        text.to_owned()
    };
    text.replace("\r\n", "\n").replace('\r', "\n")
}

const CONVERT: &str = "openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem";

/// The first PEM block of `text`, read by its label.
fn from_pem(text: &str) -> Result<PrivateKey, KeyError> {
    let start = text.find("-----BEGIN ").expect("checked by the caller") + 11;
    let Some(label_len) = text[start..].find("-----") else {
        return Err(KeyError(
            "has a broken BEGIN line: paste the whole .pem file unchanged.".into(),
        ));
    };
    let label = text[start..start + label_len].trim().to_owned();
    let body_start = start + label_len + 5;
    let end_marker = format!("-----END {label}-----");
    let Some(body_len) = text[body_start..].find(&end_marker) else {
        return Err(KeyError(format!(
            "has no `{end_marker}` line: the value was cut; paste the whole .pem file, END line included."
        )));
    };
    let body = &text[body_start..body_start + body_len];
    match label.as_str() {
        "RSA PRIVATE KEY" | "PRIVATE KEY" => {}
        "ENCRYPTED PRIVATE KEY" => {
            return Err(KeyError(format!(
                "is an encrypted key (BEGIN ENCRYPTED PRIVATE KEY), which cannot be used without its passphrase: decrypt it once with `{CONVERT}` and store the result."
            )));
        }
        "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => {
            return Err(KeyError(format!(
                "is a public key or certificate (BEGIN {label}), not the private key: give the private key (.pem) downloaded from the app's settings page (Private keys > Generate a private key)."
            )));
        }
        "EC PRIVATE KEY" => {
            return Err(KeyError(format!(
                "is a SEC1 EC key (BEGIN EC PRIVATE KEY): convert it to PKCS#8 with `{CONVERT}` and give that (BEGIN PRIVATE KEY)."
            )));
        }
        "OPENSSH PRIVATE KEY" => {
            return Err(KeyError(format!(
                "is an OpenSSH key (BEGIN OPENSSH PRIVATE KEY): convert it with `ssh-keygen -p -m PKCS8 -f key` (it rewrites the file), or `{CONVERT}` on a PEM copy."
            )));
        }
        other => {
            return Err(KeyError(format!(
                "is a PEM block labelled {other:?}, not a private key: give a `BEGIN RSA PRIVATE KEY` (PKCS#1) or `BEGIN PRIVATE KEY` (PKCS#8) file."
            )));
        }
    }
    if body.contains("Proc-Type:") || body.contains("ENCRYPTED") {
        return Err(KeyError(format!(
            "is an encrypted PEM key (Proc-Type: 4,ENCRYPTED), which cannot be used without its passphrase: decrypt it once with `{CONVERT}` and store the result."
        )));
    }
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(&compact).map_err(|_| {
        KeyError(format!(
            "has a `BEGIN {label}` block whose body is not valid base64 (a line cut or a character changed when it was pasted?): paste the .pem file again."
        ))
    })?;
    let mut key = from_der(&der, Some(&label))?;
    let mut forms = vec![text.to_owned(), compact];
    forms.extend(
        body.split(char::is_whitespace)
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    );
    forms.append(&mut key.forms);
    key.forms = forms;
    Ok(key)
}

/// A key from its DER; `label` is the PEM label when there was one.
fn from_der(der: &[u8], label: Option<&str>) -> Result<PrivateKey, KeyError> {
    let key = |pair, format| PrivateKey {
        pair,
        format,
        forms: Vec::new(),
    };
    let pkcs1 = || RsaKeyPair::from_der(der).map(|k| key(Pair::Rsa(k), Format::Pkcs1Rsa));
    let pkcs8_rsa = || RsaKeyPair::from_pkcs8(der).map(|k| key(Pair::Rsa(k), Format::Pkcs8Rsa));
    let pkcs8_ec = || {
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
            &SystemRandom::new(),
        )
        .map(|k| key(Pair::Ec(k), Format::Pkcs8EcP256))
    };
    match label {
        Some("RSA PRIVATE KEY") => pkcs1().map_err(|e| {
            KeyError(format!(
                "has a `BEGIN RSA PRIVATE KEY` block that is not a usable RSA key ({e}; RSA keys must be 2048 to 8192 bits): download a new private key from the app's settings page."
            ))
        }),
        _ => pkcs8_rsa()
            .or_else(|_| pkcs8_ec())
            .or_else(|e| if label.is_none() { pkcs1() } else { Err(e) })
            .map_err(|e| {
                KeyError(format!(
                    "is a PKCS#8 key that is neither RSA (2048 to 8192 bits) nor EC P-256 ({e}): use an RSA key, or an EC key on the P-256 curve."
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::UnparsedPublicKey;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/corpus/keys/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parts(jws: &SecretString) -> (Value, Value, Vec<u8>, String) {
        use secrecy::ExposeSecret;
        let text = jws.expose_secret();
        let pieces: Vec<&str> = text.split('.').collect();
        assert_eq!(pieces.len(), 3, "compact JWS");
        assert!(!text.contains('='), "no padding");
        let json = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        (
            json(pieces[0]),
            json(pieces[1]),
            URL_SAFE_NO_PAD.decode(pieces[2]).unwrap(),
            format!("{}.{}", pieces[0], pieces[1]),
        )
    }

    #[test]
    fn rs256_and_ps256_verify_with_the_public_key() {
        let key = PrivateKey::load(&fixture("app-pkcs1.pem")).unwrap();
        assert_eq!(key.format(), Format::Pkcs1Rsa);
        let claims = serde_json::json!({"iss": "Iv23liTest", "iat": 1, "exp": 2});
        for (alg, verify) in [
            (
                Alg::Rs256,
                &signature::RSA_PKCS1_2048_8192_SHA256 as &dyn signature::VerificationAlgorithm,
            ),
            (Alg::Ps256, &signature::RSA_PSS_2048_8192_SHA256),
        ] {
            let jws = key
                .sign(
                    alg,
                    Header {
                        kid: Some("k1"),
                        x5t_s256: Some("abc"),
                    },
                    &claims,
                )
                .unwrap();
            let (header, body, sig, input) = parts(&jws);
            assert_eq!(header["alg"], alg.name());
            assert_eq!(
                (header["kid"].as_str(), header["x5t#S256"].as_str()),
                (Some("k1"), Some("abc"))
            );
            assert_eq!(body, claims);
            UnparsedPublicKey::new(verify, key.public_key())
                .verify(input.as_bytes(), &sig)
                .unwrap_or_else(|_| panic!("{} verifies", alg.name()));
        }
    }

    #[test]
    fn es256_signatures_are_64_bytes_and_verify() {
        // Generated at test time: ring generates P-256 PKCS#8 itself.
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        for text in [pem, fixture("ec-pkcs8.pem")] {
            let key = PrivateKey::load(&text).unwrap();
            assert_eq!((key.format(), key.is_rsa()), (Format::Pkcs8EcP256, false));
            let jws = key
                .sign(Alg::Es256, Header::default(), &serde_json::json!({"a": 1}))
                .unwrap();
            let (header, _, sig, input) = parts(&jws);
            assert_eq!(
                (header["alg"].as_str(), header.get("kid")),
                (Some("ES256"), None)
            );
            assert_eq!(sig.len(), 64);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, key.public_key())
                .verify(input.as_bytes(), &sig)
                .unwrap();
            assert!(
                key.sign(Alg::Rs256, Header::default(), &Value::Null)
                    .is_err()
            );
        }
    }

    #[test]
    fn every_way_a_key_is_pasted_loads_the_same_key() {
        let pem = fixture("app-pkcs1.pem");
        let public = PrivateKey::load(&pem).unwrap().public_key();
        let collapsed = pem.trim().replace('\n', " ");
        for (how, text) in [
            ("pkcs8", fixture("app-pkcs8.pem")),
            ("crlf", pem.replace('\n', "\r\n")),
            ("escaped", pem.trim().replace('\n', "\\n")),
            ("escaped crlf", pem.trim().replace('\n', "\\r\\n")),
            ("spaces", collapsed),
            ("base64", STANDARD.encode(&pem)),
            (
                "base64 wrapped",
                STANDARD
                    .encode(&pem)
                    .as_bytes()
                    .chunks(76)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            ("indented", format!("  \n{pem}\n\n")),
        ] {
            let key = PrivateKey::load(&text).unwrap_or_else(|e| panic!("{how}: {e}"));
            assert_eq!(key.public_key(), public, "{how}");
            assert!(key.is_rsa());
        }
    }

    #[test]
    fn secret_forms_cover_every_body_line_but_not_the_armor() {
        let pem = fixture("app-pkcs1.pem");
        let key = PrivateKey::load(&pem).unwrap();
        let forms = key.secret_forms();
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(
                forms.iter().any(|f| f == line),
                "line {line:.10}… is listed"
            );
        }
        assert!(
            !forms
                .iter()
                .any(|f| f.starts_with("-----BEGIN") && !f.contains('\n'))
        );
        let wrapped = STANDARD.encode(&pem);
        let key = PrivateKey::load(&wrapped).unwrap();
        assert!(key.secret_forms().contains(&wrapped));
    }

    #[test]
    fn refusals_name_the_format_and_the_fix_without_quoting_the_key() {
        let sec1 = fixture("ec-sec1.pem");
        for (text, want) in [
            (fixture("app-public.pem"), "public key"),
            (fixture("app-encrypted.pem"), "encrypted"),
            (sec1.clone(), "openssl pkcs8 -topk8"),
            (
                fixture("app-pkcs1.pem").replace("-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n"),
                "encrypted PEM",
            ),
            ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n-----END OPENSSH PRIVATE KEY-----".into(), "ssh-keygen"),
            (fixture("app-pkcs1.pem").lines().take(5).collect::<Vec<_>>().join("\n"), "cut"),
            ("not a key at all!".into(), "neither a PEM key"),
            (STANDARD.encode("hello world"), "decodes to neither"),
            ("-----BEGIN RSA PRIVATE KEY-----\nMIIB%%%\n-----END RSA PRIVATE KEY-----".into(), "not valid base64"),
            ("-----BEGIN RSA PRIVATE KEY-----\nMIIBAA==\n-----END RSA PRIVATE KEY-----".into(), "not a usable RSA key"),
        ] {
            let err = PrivateKey::load(&text).unwrap_err().0;
            assert!(err.contains(want), "{want}: {err}");
            for line in text.lines().filter(|l| l.len() > 8 && !l.starts_with("-----") && !l.contains(':')) {
                assert!(!err.contains(line), "quotes the key: {err}");
            }
        }
    }

    #[test]
    fn thumbprints_are_base64url_sha256() {
        // SHA-256("abc"), base64url without padding.
        assert_eq!(
            thumbprint_s256(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }
}
