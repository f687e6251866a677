//! The OAuth 2.0 providers' configuration section: the variables every profile reads, and
//! each profile's own requirements (providers.md §3), all checked before any request.

use std::cell::{Cell, OnceCell};

use secrecy::SecretString;
use url::Url;

use std::cell::RefCell;

use super::{
    ClientAuthMethod, DEFAULT_AUTHORITY_URL, Grant, Impersonation, OAuth2, Profile, Signing,
    Validate,
};
use crate::platform::Platform;
use crate::provider::Git;
use crate::provider::identity::Identity;
use crate::provider::jwt::{Alg, PrivateKey};
use crate::token::parse_list;
use crate::vars::{self, Mode, Problems, Raw, shown};

/// Google's STS unless STS_URL says otherwise.
pub const DEFAULT_STS_URL: &str = "https://sts.googleapis.com/v1/token";
/// Google's IAM Credentials API unless IAM_CREDENTIALS_URL says otherwise.
pub const DEFAULT_IAM_CREDENTIALS_URL: &str = "https://iamcredentials.googleapis.com";
/// The audience Entra's federated credentials require of identity tokens.
pub const ENTRA_FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Reads the section for `profile`.
pub fn parse(profile: Profile, raw: &Raw, mode: Mode, problems: &mut Problems) -> Option<OAuth2> {
    let needs_credentials = mode != Mode::Status;
    let grant = grant(raw, profile, problems)?;
    let method = client_auth(raw, profile, grant, problems)?;
    let (client_id, secret) = client(raw, method, needs_credentials, problems);
    let signing = if method == ClientAuthMethod::PrivateKeyJwt && needs_credentials {
        signing(raw, problems)
    } else {
        Some(None)
    };
    let federated = method == ClientAuthMethod::Federated || grant != Grant::ClientCredentials;
    let identity = if federated && needs_credentials {
        identity(raw, profile, problems)
    } else {
        Some(None)
    };
    let (issuer, token_url) = endpoints(raw, profile, problems);
    let optional_url = |name: &str, problems: &mut Problems| {
        raw.get(name)
            .and_then(|u| vars::parse_url(name, u, problems))
    };
    let introspection_url = optional_url("INTROSPECTION_URL", problems);
    let jwks_url = optional_url("JWKS_URL", problems);
    let scope = scope(raw, profile, problems);
    let audience = audience(raw, profile, problems);
    let resources = resources(raw, profile, problems);
    let known = issuer.is_some() || introspection_url.is_some() || jwks_url.is_some();
    let validate = validate(raw, mode, known, problems);
    let git = git(raw, profile, mode, problems);
    let impersonation = impersonation(raw, profile, problems);
    let (client_id, secret) = (client_id?, secret?);
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    Some(OAuth2 {
        profile,
        basic: (encode(&client_id), SecretString::from(encode(&secret))),
        client_id,
        secret: SecretString::from(secret),
        method,
        issuer,
        token_url,
        introspection_url,
        jwks_url,
        scope: scope?,
        audience: audience?,
        resources: resources?,
        validate: validate?,
        required_scopes: parse_list(raw.get("REQUIRED_SCOPES").unwrap_or("")),
        git,
        metadata: OnceCell::new(),
        scope_assumed: Cell::new(false),
        grant,
        signing: signing?,
        identity: identity?,
        token_types: token_types(raw, profile),
        impersonation: impersonation?,
        platform_is_bitbucket: Platform::detect(raw) == Platform::BitbucketPipelines,
        last_assertion: RefCell::new(None),
    })
}

/// The CI identity token a federated client or an assertion grant presents (Entra's
/// federated credentials require the audience `api://AzureADTokenExchange`).
fn identity(raw: &Raw, profile: Profile, problems: &mut Problems) -> Option<Option<Identity>> {
    let default_audience = (profile == Profile::Entra).then_some(ENTRA_FEDERATION_AUDIENCE);
    Identity::parse(raw, Platform::detect(raw), default_audience, problems).map(Some)
}

/// CLIENT_ID and CLIENT_SECRET, each required when `method` sends it (never for `status`).
fn client(
    raw: &Raw,
    method: ClientAuthMethod,
    needs_credentials: bool,
    problems: &mut Problems,
) -> (Option<String>, Option<String>) {
    let needs_client = needs_credentials && method != ClientAuthMethod::None;
    let needs_secret =
        needs_credentials && matches!(method, ClientAuthMethod::Basic | ClientAuthMethod::Post);
    let client_id = required(
        raw,
        "CLIENT_ID",
        needs_client,
        "set it to the client (application) ID the authorization server issued.",
        problems,
    );
    let secret = required(
        raw,
        "CLIENT_SECRET",
        needs_secret,
        "set it to the client secret, as a secured variable (or use CLIENT_AUTH=private_key_jwt or federated).",
        problems,
    );
    (client_id, secret)
}

/// How git-credential answers: GIT_USERNAME, which an OAuth 2.0 host has no default for.
fn git(raw: &Raw, profile: Profile, mode: Mode, problems: &mut Problems) -> Git {
    let username = raw.get("GIT_USERNAME").map(str::to_owned);
    if mode == Mode::GitCredential && username.is_none() {
        problems.push("GIT_USERNAME", format!("is not set: git-credential with PROVIDER={} needs the username the git host expects with this token (e.g. any non-empty name for Azure DevOps).", profile.id()));
    }
    Git {
        username: username.unwrap_or_default(),
        default_host: None,
    }
}

/// RFC 8693's subject and requested token types (Google's STS needs the requested one).
fn token_types(raw: &Raw, profile: Profile) -> (String, Option<String>) {
    let requested = raw
        .get("REQUESTED_TOKEN_TYPE")
        .map(str::to_owned)
        .or_else(|| (profile == Profile::Google).then(|| ACCESS_TOKEN_TYPE.to_owned()));
    (
        raw.get("SUBJECT_TOKEN_TYPE").unwrap_or(JWT_TYPE).to_owned(),
        requested,
    )
}

fn grant(raw: &Raw, profile: Profile, problems: &mut Problems) -> Option<Grant> {
    match (profile, raw.get("GRANT")) {
        (Profile::Google, None | Some("token_exchange")) => Some(Grant::TokenExchange),
        (Profile::Google, Some(other)) => {
            problems.push(
                "GRANT",
                format!(
                    "is {}, but Google's STS takes only token_exchange: unset GRANT.",
                    shown(other)
                ),
            );
            None
        }
        (_, None | Some("client_credentials")) => Some(Grant::ClientCredentials),
        (_, Some("token_exchange")) => Some(Grant::TokenExchange),
        (_, Some("jwt_bearer")) => Some(Grant::JwtBearer),
        (_, Some(other)) => {
            problems.push(
                "GRANT",
                format!(
                    "({}) is not one of client_credentials, token_exchange, jwt_bearer.",
                    shown(other)
                ),
            );
            None
        }
    }
}

/// Signing material for `private_key_jwt`: PRIVATE_KEY, SIGNING_ALG, KEY_ID, CERTIFICATE,
/// ASSERTION_AUDIENCE. `Some(None)` never: this is called only when the method needs it.
fn signing(raw: &Raw, problems: &mut Problems) -> Option<Option<Signing>> {
    let Some(pem) = raw.get("PRIVATE_KEY") else {
        problems.push("PRIVATE_KEY", "is not set, but CLIENT_AUTH is private_key_jwt: set it to the client's private key (PEM, PKCS#8 RSA or EC P-256, or PKCS#1 RSA), as a secured variable.");
        return None;
    };
    let key = match PrivateKey::load(pem) {
        Ok(key) => key,
        Err(e) => {
            problems.push("PRIVATE_KEY", e.to_string());
            return None;
        }
    };
    let alg = match (raw.get("SIGNING_ALG"), key.is_rsa()) {
        (None, true) | (Some("RS256"), true) => Alg::Rs256,
        (Some("PS256"), true) => Alg::Ps256,
        (None, false) | (Some("ES256"), false) => Alg::Es256,
        (Some(other), rsa) => {
            problems.push(
                "SIGNING_ALG",
                format!(
                    "({}) does not suit the {} key in PRIVATE_KEY: use {}.",
                    shown(other),
                    if rsa { "RSA" } else { "EC" },
                    if rsa { "RS256 or PS256" } else { "ES256" }
                ),
            );
            return None;
        }
    };
    let x5t = match raw.get("CERTIFICATE") {
        None => None,
        Some(pem) => {
            use rustls_pki_types::CertificateDer;
            use rustls_pki_types::pem::PemObject;
            match CertificateDer::from_pem_slice(pem.replace("\\n", "\n").as_bytes()) {
                Ok(der) => Some(crate::provider::jwt::thumbprint_s256(der.as_ref())),
                Err(_) => {
                    problems.push("CERTIFICATE", "is not a PEM certificate (-----BEGIN CERTIFICATE-----): give the certificate uploaded to the app, whose SHA-256 thumbprint goes into the assertion's x5t#S256.");
                    return None;
                }
            }
        }
    };
    Some(Some(Signing {
        key,
        alg,
        kid: raw.get("KEY_ID").map(str::to_owned),
        x5t,
        audience: raw.get("ASSERTION_AUDIENCE").map(str::to_owned),
    }))
}

fn audience(raw: &Raw, profile: Profile, problems: &mut Problems) -> Option<Option<String>> {
    match profile {
        Profile::Google => match raw.get("WORKLOAD_IDENTITY_PROVIDER") {
            Some(wip)
                if wip.starts_with("projects/")
                    && wip.contains("/workloadIdentityPools/")
                    && wip.contains("/providers/") =>
            {
                Some(Some(format!("//iam.googleapis.com/{wip}")))
            }
            Some(wip) => {
                problems.push("WORKLOAD_IDENTITY_PROVIDER", format!("({}) is not of the form projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER.", shown(wip)));
                None
            }
            None => {
                problems.push("WORKLOAD_IDENTITY_PROVIDER", "is not set: set it to the provider's full name, projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER.");
                None
            }
        },
        Profile::Auth0 if raw.get("AUDIENCE").is_none() => {
            problems.push("AUDIENCE", "is not set, and Auth0 requires it for client credentials (its Default Audience does not apply): set it to the API's Identifier (Applications > APIs).");
            None
        }
        _ => Some(raw.get("AUDIENCE").map(str::to_owned)),
    }
}

fn impersonation(
    raw: &Raw,
    profile: Profile,
    problems: &mut Problems,
) -> Option<Option<Impersonation>> {
    let Some(account) = raw
        .get("SERVICE_ACCOUNT")
        .filter(|_| profile == Profile::Google)
    else {
        return Some(None);
    };
    if !account.contains('@') || account.contains(['/', '?', '#', ':']) {
        problems.push("SERVICE_ACCOUNT", format!("({}) is not a service account's e-mail address (NAME@PROJECT.iam.gserviceaccount.com).", shown(account)));
        return None;
    }
    let lifetime = raw
        .get("LIFETIME")
        .map(|_| vars::number(raw, "LIFETIME", 3600, (60, 43_200), "seconds", problems));
    let base = vars::base_url(
        raw,
        "IAM_CREDENTIALS_URL",
        Some(DEFAULT_IAM_CREDENTIALS_URL),
        problems,
    )?;
    Some(Some(Impersonation {
        service_account: account.to_owned(),
        lifetime,
        base,
    }))
}

fn required(
    raw: &Raw,
    name: &str,
    needed: bool,
    missing: &str,
    problems: &mut Problems,
) -> Option<String> {
    if !needed && raw.get(name).is_none() {
        return Some(String::new());
    }
    vars::secret(raw, name, missing, problems)
}

fn client_auth(
    raw: &Raw,
    profile: Profile,
    grant: Grant,
    problems: &mut Problems,
) -> Option<ClientAuthMethod> {
    let has_secret = raw.get("CLIENT_SECRET").is_some();
    let has_key = raw.get("PRIVATE_KEY").is_some();
    match raw.get("CLIENT_AUTH") {
        // A grant that trades the identity token needs a client only when one is configured.
        None if grant != Grant::ClientCredentials
            && !(raw.get("CLIENT_ID").is_some() && (has_secret || has_key)) =>
        {
            Some(ClientAuthMethod::None)
        }
        None if profile == Profile::Google => Some(ClientAuthMethod::None),
        // No stored secret at all: Entra trusts the CI's identity token (issue: federation).
        None if profile == Profile::Entra && !has_secret && !has_key => {
            Some(ClientAuthMethod::Federated)
        }
        None if has_key && !has_secret => Some(ClientAuthMethod::PrivateKeyJwt),
        None => Some(profile.default_client_auth()),
        Some("client_secret_basic") => Some(ClientAuthMethod::Basic),
        Some("client_secret_post") => Some(ClientAuthMethod::Post),
        Some("private_key_jwt") => Some(ClientAuthMethod::PrivateKeyJwt),
        Some("federated") => Some(ClientAuthMethod::Federated),
        Some(other) => {
            problems.push("CLIENT_AUTH", format!("({}) is not a client authentication method: use client_secret_basic, client_secret_post, private_key_jwt or federated.", shown(other)));
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
        Profile::Google => {
            let sts = vars::url(raw, "STS_URL", Some(DEFAULT_STS_URL), problems);
            (None, sts)
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
