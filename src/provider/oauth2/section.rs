//! The OAuth 2.0 providers' configuration section: the variables every profile reads, and
//! each profile's own requirements (providers.md §3), all checked before any request.

use std::cell::{Cell, OnceCell};

use secrecy::SecretString;
use url::Url;

use super::{ClientAuthMethod, DEFAULT_AUTHORITY_URL, OAuth2, Profile, Validate};
use crate::provider::Git;
use crate::token::parse_list;
use crate::vars::{self, Mode, Problems, Raw, shown, whitespace_slip};

/// Reads the section for `profile`.
pub fn parse(profile: Profile, raw: &Raw, mode: Mode, problems: &mut Problems) -> Option<OAuth2> {
    let needs_credentials = mode != Mode::Status;
    let client_id = required(
        raw,
        "CLIENT_ID",
        needs_credentials,
        "set it to the client (application) ID the authorization server issued.",
        problems,
    );
    let secret = required(
        raw,
        "CLIENT_SECRET",
        needs_credentials,
        "set it to the client secret, as a secured variable.",
        problems,
    );
    let method = client_auth(raw, profile, problems);
    let (issuer, token_url) = endpoints(raw, profile, problems);
    let introspection_url = raw
        .get("INTROSPECTION_URL")
        .and_then(|u| vars::parse_url("INTROSPECTION_URL", u, problems));
    let jwks_url = raw
        .get("JWKS_URL")
        .and_then(|u| vars::parse_url("JWKS_URL", u, problems));
    let scope = scope(raw, profile, problems);
    let audience = raw.get("AUDIENCE").map(str::to_owned);
    if profile == Profile::Auth0 && audience.is_none() {
        problems.push("AUDIENCE", "is not set, and Auth0 requires it for client credentials (its Default Audience does not apply): set it to the API's Identifier (Applications > APIs).");
    }
    let resources = resources(raw, profile, problems);
    let known = issuer.is_some() || introspection_url.is_some() || jwks_url.is_some();
    let validate = validate(raw, mode, known, problems);
    let required_scopes = parse_list(raw.get("REQUIRED_SCOPES").unwrap_or(""));
    let git_username = raw.get("GIT_USERNAME").map(str::to_owned);
    if mode == Mode::GitCredential && git_username.is_none() {
        problems.push("GIT_USERNAME", format!("is not set: git-credential with PROVIDER={} needs the username the git host expects with this token (e.g. any non-empty name for Azure DevOps).", profile.id()));
    }
    let (client_id, secret) = (client_id?, secret?);
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    Some(OAuth2 {
        profile,
        basic: (encode(&client_id), SecretString::from(encode(&secret))),
        client_id,
        secret: SecretString::from(secret),
        method: method?,
        issuer,
        token_url,
        introspection_url,
        jwks_url,
        scope: scope?,
        audience,
        resources: resources?,
        validate: validate?,
        required_scopes,
        git: Git {
            username: git_username.unwrap_or_default(),
            default_host: None,
        },
        metadata: OnceCell::new(),
        scope_assumed: Cell::new(false),
    })
}

fn required(
    raw: &Raw,
    name: &str,
    needed: bool,
    missing: &str,
    problems: &mut Problems,
) -> Option<String> {
    match raw.get(name) {
        None if !needed => Some(String::new()),
        None => {
            problems.push(name, format!("is not set: {missing}"));
            None
        }
        Some(value) => {
            if let Some(slip) = whitespace_slip(value) {
                problems.push(
                    name,
                    format!("{slip}: a copy-paste slip? Set it to the value exactly."),
                );
            }
            Some(value.to_owned())
        }
    }
}

fn client_auth(raw: &Raw, profile: Profile, problems: &mut Problems) -> Option<ClientAuthMethod> {
    match raw.get("CLIENT_AUTH") {
        None => Some(profile.default_client_auth()),
        Some("client_secret_basic") => Some(ClientAuthMethod::Basic),
        Some("client_secret_post") => Some(ClientAuthMethod::Post),
        Some(other) => {
            problems.push("CLIENT_AUTH", format!("({}) is not a client authentication method: use client_secret_basic or client_secret_post.", shown(other)));
            None
        }
    }
}

/// ISSUER and TOKEN_URL, or Entra's pair derived from AUTHORITY_URL and TENANT_ID.
fn endpoints(raw: &Raw, profile: Profile, problems: &mut Problems) -> (Option<Url>, Option<Url>) {
    let issuer = raw
        .get("ISSUER")
        .and_then(|u| vars::parse_url("ISSUER", u, problems));
    let token_url = raw
        .get("TOKEN_URL")
        .and_then(|u| vars::parse_url("TOKEN_URL", u, problems));
    match profile {
        Profile::Entra => {
            let authority =
                vars::base_url(raw, "AUTHORITY_URL", Some(DEFAULT_AUTHORITY_URL), problems);
            let tenant = match raw.get("TENANT_ID") {
                None => {
                    problems.push("TENANT_ID", "is not set: set it to the Directory (tenant) ID of the app registration (a GUID, or a verified domain).");
                    None
                }
                Some(t)
                    if ["common", "organizations", "consumers"]
                        .contains(&t.to_ascii_lowercase().as_str()) =>
                {
                    problems.push("TENANT_ID", format!("is {}, but the client-credentials grant needs one tenant (Entra answers AADSTS9001023): set it to your tenant's GUID or domain.", shown(t)));
                    None
                }
                Some(t)
                    if t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c)) =>
                {
                    Some(t)
                }
                Some(t) => {
                    problems.push(
                        "TENANT_ID",
                        format!("({}) is not a tenant ID or domain.", shown(t)),
                    );
                    None
                }
            };
            let (Some(authority), Some(tenant)) = (authority, tenant) else {
                return (issuer, token_url);
            };
            let base = authority.as_str().trim_end_matches('/');
            let derived_issuer = Url::parse(&format!("{base}/{tenant}/v2.0")).ok();
            let derived_token = Url::parse(&format!("{base}/{tenant}/oauth2/v2.0/token")).ok();
            (issuer.or(derived_issuer), token_url.or(derived_token))
        }
        Profile::Generic => {
            if issuer.is_none()
                && token_url.is_none()
                && raw.get("ISSUER").is_none()
                && raw.get("TOKEN_URL").is_none()
            {
                problems.push("ISSUER", "is not set, nor TOKEN_URL: set ISSUER to the authorization server's issuer (for discovery), or TOKEN_URL to its token endpoint.");
            }
            (issuer, token_url)
        }
        Profile::Auth0 | Profile::Okta | Profile::Keycloak => {
            if raw.get("ISSUER").is_none() {
                let example = match profile {
                    Profile::Auth0 => "https://TENANT.auth0.com/",
                    Profile::Okta => "https://ORG.okta.com/oauth2/default",
                    _ => "https://HOST/realms/REALM",
                };
                problems.push(
                    "ISSUER",
                    format!(
                        "is not set: set it to the {} issuer, e.g. {example}.",
                        profile.name()
                    ),
                );
            }
            (issuer, token_url)
        }
    }
}

fn scope(raw: &Raw, profile: Profile, problems: &mut Problems) -> Option<Vec<String>> {
    let scope = parse_list(raw.get("SCOPE").unwrap_or(""));
    if profile == Profile::Entra {
        let ok = scope.len() == 1 && scope[0].ends_with("/.default");
        if !ok {
            problems.push("SCOPE", format!(
                "{}: Entra's client-credentials grant takes exactly one scope of the form <resource>/.default (AADSTS1002012), e.g. https://graph.microsoft.com/.default or api://<app-id>/.default.",
                if scope.is_empty() { "is not set".to_owned() } else { format!("is {}", shown(&scope.join(" "))) }
            ));
            return None;
        }
    }
    Some(scope)
}

fn resources(raw: &Raw, profile: Profile, problems: &mut Problems) -> Option<Vec<String>> {
    let text = raw.get("RESOURCE").unwrap_or("");
    if profile == Profile::Entra && !text.is_empty() {
        problems.push("RESOURCE", "is set, but Entra's v2 endpoint refuses the resource parameter (AADSTS901002): unset it and put <resource>/.default in SCOPE.");
        return None;
    }
    let mut ok = true;
    let list: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    for r in &list {
        // RFC 8707 §2: an absolute URI without a fragment.
        if Url::parse(r).map_or(true, |u| u.fragment().is_some()) {
            problems.push("RESOURCE", format!("has {}, which is not an absolute URI without a fragment (RFC 8707): list resource URIs separated by spaces.", shown(r)));
            ok = false;
        }
    }
    ok.then_some(list)
}

fn validate(raw: &Raw, mode: Mode, known: bool, problems: &mut Problems) -> Option<Validate> {
    let url = raw
        .get("VALIDATE_URL")
        .map(|u| vars::parse_url("VALIDATE_URL", u, problems));
    if mode == Mode::Status {
        return Some(Validate::Off);
    }
    let value = raw.get("VALIDATE").map(str::to_ascii_lowercase);
    let mode_default = if mode == Mode::GitCredential && url.is_none() {
        "false"
    } else {
        "true"
    };
    match value.as_deref().unwrap_or(mode_default) {
        "false" | "0" | "no" => Some(Validate::Off),
        "true" | "1" | "yes" => match url {
            Some(url) => url.map(Validate::Api),
            None if known => Some(Validate::Auto),
            None => {
                problems.push("VALIDATE", "is true but there is nothing to validate against: set VALIDATE_URL to an API URL the token can read, ISSUER (discovery finds the introspection endpoint or the keys), INTROSPECTION_URL or JWKS_URL; or VALIDATE=false.");
                None
            }
        },
        "api" => {
            match url {
                Some(url) => url.map(Validate::Api),
                None => {
                    problems.push("VALIDATE", "is api but VALIDATE_URL is not set: set it to an API URL the token can read.");
                    None
                }
            }
        }
        "introspect" => Some(Validate::Introspect),
        "jwks" => Some(Validate::Jwks),
        other => {
            problems.push(
                "VALIDATE",
                format!(
                    "({}) is not one of true, false, api, introspect, jwks.",
                    shown(other)
                ),
            );
            None
        }
    }
}
