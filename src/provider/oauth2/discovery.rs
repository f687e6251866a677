//! Authorization-server metadata from ISSUER: OIDC Discovery first
//! (`{ISSUER}/.well-known/openid-configuration`, one trailing `/` of ISSUER removed, OIDC
//! Discovery §4), then on 404 RFC 8414's form, which inserts the well-known segment between
//! host and path (`https://HOST/.well-known/oauth-authorization-server/PATH`, RFC 8414 §3).
//! The document's `issuer` must equal ISSUER (one trailing slash ignored on both sides):
//! a document that names another issuer is someone else's, and its endpoints are not used.
//! No credentials are sent; the same retries, deadline and body cap apply.

use serde_json::Value;
use url::Url;

use crate::error::Error;
use crate::http::{Auth, Call, Http};
use crate::report::{Reporter, quote_remote};
use crate::vars::is_loopback;

/// What the metadata says, the endpoints already checked.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// `issuer`, as the document spells it.
    pub issuer: String,
    /// `token_endpoint`.
    pub token_endpoint: Option<Url>,
    /// `introspection_endpoint` (RFC 7662).
    pub introspection_endpoint: Option<Url>,
    /// `jwks_uri`.
    pub jwks_uri: Option<Url>,
    /// `revocation_endpoint` (RFC 7009).
    pub revocation_endpoint: Option<Url>,
    /// `token_endpoint_auth_methods_supported` (absent: RFC 8414 says client_secret_basic).
    pub auth_methods: Option<Vec<String>>,
}

/// The two well-known URLs for `issuer`, in the order they are tried.
pub fn well_known(issuer: &Url) -> (Url, Url) {
    let base = issuer.as_str().strip_suffix('/').unwrap_or(issuer.as_str());
    let oidc = Url::parse(&format!("{base}/.well-known/openid-configuration"))
        .expect("an issuer URL plus a path is a URL");
    let mut rfc = issuer.clone();
    let path = issuer.path().trim_end_matches('/');
    rfc.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    (oidc, rfc)
}

/// Fetches and checks the metadata for `issuer`. `lenient_issuer` accepts a document whose
/// issuer differs (Entra names its tenant by GUID when TENANT_ID is a domain).
pub async fn discover(
    issuer: &Url,
    lenient_issuer: bool,
    http: &Http,
    log: &mut Reporter,
) -> Result<Metadata, Error> {
    let (oidc, rfc) = well_known(issuer);
    log.info(format!("Discovering the authorization server: GET {oidc}"));
    let mut response = http
        .send(
            &Call::get("discovery request", &oidc, "ISSUER", Auth::None),
            log,
        )
        .await?;
    let mut used = oidc;
    if response.status.as_u16() == 404 {
        log.info(format!(
            "No OpenID configuration there (HTTP 404); trying RFC 8414: GET {rfc}"
        ));
        response = http
            .send(
                &Call::get("discovery request", &rfc, "ISSUER", Auth::None),
                log,
            )
            .await?;
        used = rfc;
    }
    if !response.status.is_success() {
        return Err(Error::provider(format!(
            "Discovery at {used} answered HTTP {}: {}. Check ISSUER (it is the issuer identifier, e.g. https://HOST/realms/REALM), or set TOKEN_URL (and JWKS_URL or INTROSPECTION_URL) to skip discovery.",
            response.status,
            response.quoted_body(200)
        )));
    }
    let json: Value = serde_json::from_slice(&response.body).map_err(|e| {
        Error::provider(format!(
            "The discovery document at {used} is not JSON ({e}). Check ISSUER."
        ))
    })?;
    parse(&json, issuer, lenient_issuer).map_err(|why| {
        Error::provider(format!(
            "The discovery document at {used} is unusable: {why}."
        ))
    })
}

/// Checks a discovery document against `issuer`.
pub fn parse(json: &Value, issuer: &Url, lenient_issuer: bool) -> Result<Metadata, String> {
    let said = json
        .get("issuer")
        .and_then(Value::as_str)
        .ok_or("it has no issuer")?;
    let trim = |s: &str| s.strip_suffix('/').unwrap_or(s).to_owned();
    if !lenient_issuer && trim(said) != trim(issuer.as_str()) {
        return Err(format!(
            "it names the issuer {}, not ISSUER ({issuer}); set ISSUER to the server's exact issuer identifier",
            quote_remote(said, 200)
        ));
    }
    let endpoint = |field: &str| -> Result<Option<Url>, String> {
        let Some(text) = json.get(field).and_then(Value::as_str) else {
            return Ok(None);
        };
        let url = Url::parse(text).map_err(|e| format!("its {field} is not a URL ({e})"))?;
        let allowed = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
        if !allowed || !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "its {field} {} is not an https URL without credentials",
                quote_remote(text, 200)
            ));
        }
        Ok(Some(url))
    };
    let auth_methods = json
        .get("token_endpoint_auth_methods_supported")
        .and_then(Value::as_array)
        .map(|methods| {
            methods
                .iter()
                .filter_map(Value::as_str)
                .map(|m| quote_remote(m, 60))
                .collect()
        });
    Ok(Metadata {
        issuer: said.to_owned(),
        token_endpoint: endpoint("token_endpoint")?,
        introspection_endpoint: endpoint("introspection_endpoint")?,
        jwks_uri: endpoint("jwks_uri")?,
        revocation_endpoint: endpoint("revocation_endpoint")?,
        auth_methods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_well_known_forms() {
        let (oidc, rfc) = well_known(&Url::parse("https://id.example/realms/ci/").unwrap());
        assert_eq!(
            oidc.as_str(),
            "https://id.example/realms/ci/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc.as_str(),
            "https://id.example/.well-known/oauth-authorization-server/realms/ci"
        );
        let (oidc, rfc) = well_known(&Url::parse("https://t.auth0.com/").unwrap());
        assert_eq!(
            oidc.as_str(),
            "https://t.auth0.com/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc.as_str(),
            "https://t.auth0.com/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn issuer_must_match_modulo_one_slash() {
        let issuer = Url::parse("https://t.auth0.com").unwrap();
        let doc = serde_json::json!({"issuer": "https://t.auth0.com/", "token_endpoint": "https://t.auth0.com/oauth/token"});
        assert_eq!(
            parse(&doc, &issuer, false)
                .unwrap()
                .token_endpoint
                .unwrap()
                .as_str(),
            "https://t.auth0.com/oauth/token"
        );
        let other = serde_json::json!({"issuer": "https://evil.example/"});
        assert!(
            parse(&other, &issuer, false)
                .unwrap_err()
                .contains("not ISSUER")
        );
        let plain = serde_json::json!({"issuer": "https://t.auth0.com/", "token_endpoint": "http://t.auth0.com/t"});
        assert!(
            parse(&plain, &issuer, false)
                .unwrap_err()
                .contains("not an https URL")
        );
    }
}
