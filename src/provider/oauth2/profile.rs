//! The identity-provider profiles: thin layers over generic OAuth 2.0 that add defaults,
//! required variables, request rules and error hints. Chosen explicitly by PROVIDER, never
//! guessed from a URL.
//!
//! Facts and exact error bodies: ../shared/research/providers.md §3 (Entra: the v2
//! client-credentials and error-code references; Auth0, Okta and Keycloak: the issue threads
//! cited there). Entra's hints are chosen by `error_codes`, never by the description's
//! wording, because Microsoft says the wording changes and codes are the contract.

use super::ClientAuthMethod;
use crate::provider::oauth::OAuthError;

/// One identity provider's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Any RFC 6749 authorization server.
    Generic,
    /// Microsoft Entra ID (v2 endpoints).
    Entra,
    /// Auth0.
    Auth0,
    /// Okta (custom or org authorization servers).
    Okta,
    /// Keycloak.
    Keycloak,
    /// Google's Security Token Service (workload identity federation).
    Google,
}

impl Profile {
    /// The PROVIDER value.
    pub fn id(self) -> &'static str {
        match self {
            Profile::Generic => "oauth2",
            Profile::Entra => "entra",
            Profile::Auth0 => "auth0",
            Profile::Okta => "okta",
            Profile::Keycloak => "keycloak",
            Profile::Google => "google",
        }
    }

    /// How the log names the server.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Generic => "The authorization server",
            Profile::Entra => "Entra ID",
            Profile::Auth0 => "Auth0",
            Profile::Okta => "Okta",
            Profile::Keycloak => "Keycloak",
            Profile::Google => "Google's STS",
        }
    }

    /// The profile for a PROVIDER value.
    pub fn from_id(id: &str) -> Option<Profile> {
        [
            Profile::Generic,
            Profile::Entra,
            Profile::Auth0,
            Profile::Okta,
            Profile::Keycloak,
            Profile::Google,
        ]
        .into_iter()
        .find(|p| p.id() == id)
    }

    /// The client authentication unless CLIENT_AUTH says otherwise: Entra and Auth0 document
    /// the secret in the form (Entra: "must be URL-encoded"; Auth0's examples), the rest
    /// follow RFC 6749 §2.3.1, which servers MUST support.
    pub fn default_client_auth(self) -> ClientAuthMethod {
        match self {
            Profile::Entra | Profile::Auth0 => ClientAuthMethod::Post,
            Profile::Google => ClientAuthMethod::None,
            _ => ClientAuthMethod::Basic,
        }
    }

    /// What to do about `error`, naming the variable to change; `secret_needs_encoding` says
    /// whether the secret has characters servers disagree on in Basic credentials.
    pub fn hint(
        self,
        error: &OAuthError,
        codes: &[u64],
        method: ClientAuthMethod,
        secret_needs_encoding: bool,
    ) -> String {
        let d = error
            .description
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        let specific = match self {
            Profile::Entra => entra(codes),
            Profile::Auth0 => auth0(&error.code, &d),
            Profile::Okta => okta(&error.code, &d, method),
            Profile::Keycloak => keycloak(&d),
            // Google's STS errors that are not a trust mismatch (grant.rs owns Google).
            Profile::Google => super::grant::google_hint(&error.code),
            Profile::Generic => None,
        };
        if let Some(hint) = specific {
            return hint.to_owned();
        }
        match error.code.as_str() {
            "invalid_client" | "unauthorized_client" if method == ClientAuthMethod::Basic && secret_needs_encoding => {
                "The client was not authenticated. CLIENT_SECRET has characters outside A-Z a-z 0-9 . _ ~ -, and servers disagree on how Basic credentials encode them (RFC 6749 §2.3.1 says form-encode them first; Keycloak before 17, Gluu and others do not): try CLIENT_AUTH=client_secret_post, or check CLIENT_ID and CLIENT_SECRET.".to_owned()
            }
            "invalid_client" => format!("The client was not authenticated. Check CLIENT_ID and CLIENT_SECRET (or PRIVATE_KEY), and that CLIENT_AUTH ({}) is a method the client is registered for.", method.id()),
            "unauthorized_client" => "The client may not use the client-credentials grant. Enable it for the client (a machine-to-machine / service-account application), or check CLIENT_ID.".to_owned(),
            "invalid_scope" => "The server refused the requested scopes. Check SCOPE against the scopes the client is granted.".to_owned(),
            "invalid_target" => "The server refused the requested resource. Check RESOURCE (RFC 8707 resource indicators).".to_owned(),
            "unsupported_grant_type" => "The endpoint does not accept the client-credentials grant. Check TOKEN_URL or ISSUER.".to_owned(),
            "access_denied" => "The server denied the request. Check that the client is allowed to access AUDIENCE or RESOURCE.".to_owned(),
            _ => "See the server's message above; check CLIENT_ID, CLIENT_SECRET, SCOPE and TOKEN_URL or ISSUER.".to_owned(),
        }
    }
}

/// Entra's `error_codes` (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
fn entra(codes: &[u64]) -> Option<&'static str> {
    codes.iter().find_map(|code| {
        Some(match code {
            7000215 => "CLIENT_SECRET holds the secret's ID, not its value. In App registrations > Certificates & secrets, copy the Value column (shown only when the secret is created; add a new secret if it is hidden).",
            7000222 => "The client secret has expired. Add a new secret in App registrations > Certificates & secrets and update CLIENT_SECRET (or use a certificate: CLIENT_AUTH=private_key_jwt).",
            700016 => "No application with this CLIENT_ID exists in the tenant TENANT_ID. Check CLIENT_ID (the Application (client) ID, not the object ID) and TENANT_ID (the app's home tenant, or one where it is consented).",
            90002 => "The tenant does not exist. Check TENANT_ID (the Directory (tenant) ID GUID, or a verified domain).",
            1002012 => "Client credentials need exactly one scope of the form <resource>/.default. Set SCOPE to e.g. https://graph.microsoft.com/.default or api://<app-id>/.default.",
            901002 => "Entra's v2 endpoint does not take a resource parameter. Unset RESOURCE and set SCOPE to <resource>/.default instead.",
            9001023 => "The client-credentials grant needs a tenant-specific endpoint. Set TENANT_ID to your tenant's GUID or domain, not common, organizations or consumers.",
            700027 => "The client assertion's signature did not validate. Check that the certificate whose thumbprint CERTIFICATE gives is the one uploaded to the app, and that PRIVATE_KEY is its key.",
            70011 => "The scope is invalid. Set SCOPE to one <resource>/.default, e.g. https://graph.microsoft.com/.default.",
            _ => return None,
        })
    })
}

fn auth0(code: &str, d: &str) -> Option<&'static str> {
    Some(if d.contains("client-grant") {
        "The application is not authorized for this API. In Auth0, open Applications > APIs > (the API whose Identifier is AUDIENCE) > Machine to Machine Applications, authorize this application and grant its permissions."
    } else if d.contains("service not enabled within domain") {
        "Auth0 knows no API with this identifier. Set AUDIENCE to the API's Identifier exactly (Applications > APIs); for the Management API use https://TENANT.auth0.com/api/v2/ on the canonical domain, not a custom domain."
    } else if d.contains("grant type 'client_credentials' not allowed") {
        "The application CLIENT_ID names may not use the client-credentials grant. In Auth0, open the application > Advanced Settings > Grant Types and enable Client Credentials (a Machine to Machine application has it), or set CLIENT_ID to a Machine to Machine application's."
    } else if code == "access_denied" && d.trim() == "unauthorized" {
        "Auth0 did not accept the credentials. Check CLIENT_ID and CLIENT_SECRET (the application's Client ID and Client Secret, Settings tab)."
    } else {
        return None;
    })
}

fn okta(code: &str, d: &str, method: ClientAuthMethod) -> Option<&'static str> {
    Some(
        if d.contains("client secret supplied for a confidential client is invalid") {
            if method == ClientAuthMethod::Basic {
                "Okta did not accept the secret. Check CLIENT_SECRET; if it is right, the application may be registered for client_secret_post: set CLIENT_AUTH=client_secret_post."
            } else {
                "Okta did not accept the secret. Check CLIENT_SECRET; if it is right, the application may be registered for client_secret_basic: set CLIENT_AUTH=client_secret_basic."
            }
        } else if d.contains("custom scopes are not allowed") {
            "This is Okta's org authorization server, which grants only Okta API scopes. Set ISSUER to a custom authorization server (https://ORG.okta.com/oauth2/default or another), or SCOPE to okta.* scopes."
        } else if d.contains("default scopes")
            || (code == "invalid_scope" && d.contains("'scope' must be provided"))
        {
            "The authorization server has no default scopes, so one must be asked for. Set SCOPE to a scope the server defines (Security > API > Authorization Servers > Scopes)."
        } else {
            return None;
        },
    )
}

fn keycloak(d: &str) -> Option<&'static str> {
    Some(
        if d.contains("client not enabled to retrieve service account") {
            "The client has no service account. In Keycloak, open Clients > (CLIENT_ID) > Settings > Capability config and turn on Client authentication and Service accounts roles."
        } else if d.contains("invalid client or invalid client credentials")
            || d.contains("invalid client secret")
        {
            "Keycloak did not accept the credentials. Check CLIENT_ID and CLIENT_SECRET (Clients > (client) > Credentials), and that ISSUER names the client's realm."
        } else if d.contains("client_assertion_type is missing") {
            "The client authenticates with a signed JWT. Set CLIENT_AUTH=private_key_jwt and PRIVATE_KEY, or switch the client's authenticator to Client Id and Secret."
        } else if d.contains("token audience doesn't match") {
            "Keycloak refused the assertion's audience. Set ASSERTION_AUDIENCE to the realm's issuer (the ISSUER value)."
        } else {
            return None;
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str, description: &str) -> OAuthError {
        OAuthError {
            code: code.into(),
            description: Some(description.into()),
        }
    }

    #[test]
    fn entra_hints_follow_codes_not_wording() {
        let e = error("invalid_client", "AADSTS7000222: something reworded");
        assert!(
            Profile::Entra
                .hint(&e, &[7000215], ClientAuthMethod::Post, false)
                .contains("the secret's ID, not its value")
        );
        assert!(
            Profile::Entra
                .hint(&e, &[7000222], ClientAuthMethod::Post, false)
                .contains("expired")
        );
        for code in [700016, 90002, 1002012, 901002, 9001023] {
            assert!(
                !Profile::Entra
                    .hint(&e, &[code], ClientAuthMethod::Post, false)
                    .starts_with("See the server's"),
                "{code}"
            );
        }
    }

    #[test]
    fn basic_encoding_hint_only_for_secrets_that_need_it() {
        let e = error("invalid_client", "bad");
        assert!(
            Profile::Generic
                .hint(&e, &[], ClientAuthMethod::Basic, true)
                .contains("CLIENT_AUTH=client_secret_post")
        );
        assert!(
            !Profile::Generic
                .hint(&e, &[], ClientAuthMethod::Basic, false)
                .contains("disagree")
        );
    }

    #[test]
    fn profile_wordings() {
        let hint =
            |p: Profile, code, d| p.hint(&error(code, d), &[], ClientAuthMethod::Basic, false);
        assert!(hint(Profile::Auth0, "access_denied", "Client is not authorized to access \"https://t/api/v2/\". You need to create a \"client-grant\" associated to this API.").contains("Machine to Machine Applications"));
        assert!(
            hint(
                Profile::Auth0,
                "access_denied",
                "Service not enabled within domain: https://x"
            )
            .contains("AUDIENCE")
        );
        assert!(
            hint(
                Profile::Auth0,
                "unauthorized_client",
                "Grant type 'client_credentials' not allowed for the client."
            )
            .contains("Grant Types")
        );
        assert!(hint(Profile::Auth0, "access_denied", "Unauthorized").contains("CLIENT_SECRET"));
        assert!(
            hint(
                Profile::Okta,
                "invalid_client",
                "The client secret supplied for a confidential client is invalid."
            )
            .contains("client_secret_post")
        );
        assert!(
            hint(
                Profile::Okta,
                "invalid_scope",
                "Custom scopes are not allowed for this request."
            )
            .contains("custom authorization server")
        );
        assert!(hint(Profile::Okta, "invalid_scope", "The authorization server resource does not have any configured default scopes, 'scope' must be provided.").contains("Set SCOPE"));
        assert!(
            hint(
                Profile::Keycloak,
                "unauthorized_client",
                "Client not enabled to retrieve service account"
            )
            .contains("Service accounts roles")
        );
        assert!(
            hint(
                Profile::Keycloak,
                "unauthorized_client",
                "Invalid client or Invalid client credentials"
            )
            .contains("Credentials")
        );
    }
}
