//! What to do about a Bitbucket OAuth error, chosen by the description's wording first,
//! since Bitbucket reuses codes across causes (wrong credentials come back as
//! `unauthorized_client`, not RFC 6749's `invalid_client`; its code for a public consumer is
//! unconfirmed), and the code second. Wordings: ../shared/research/bitbucket-facts.md.

/// The hint for `code` and `description`.
pub fn hint(code: &str, description: &str) -> &'static str {
    let d = description.to_ascii_lowercase();
    if d.contains("callback") {
        "The OAuth consumer has no callback URL. In Workspace settings > OAuth consumers, edit the consumer and set Callback URL to any URL (e.g. https://localhost); client credentials never use it, but Bitbucket requires one."
    } else if d.contains("public") || d.contains("private consumer") {
        "The OAuth consumer is not private. In Workspace settings > OAuth consumers, edit the consumer and tick \"This is a private consumer\"; only private consumers may use the client-credentials grant."
    } else if d.contains("invalid oauth client credentials")
        || d.contains("client credentials missing")
        || d.contains("must be authenticated")
    {
        "The Key or Secret is wrong. Check that CLIENT_ID holds the consumer's Key and CLIENT_SECRET its Secret (Workspace settings > OAuth consumers), with nothing added or cut when they were pasted."
    } else if d.contains("grant type") || code == "unsupported_grant_type" {
        "The endpoint does not accept the client-credentials grant. Check TOKEN_URL; Bitbucket's is https://bitbucket.org/site/oauth2/access_token."
    } else {
        match code {
            "unauthorized_client" | "invalid_client" => {
                "The consumer's credentials or setup were rejected. Check CLIENT_ID and CLIENT_SECRET, that the consumer is marked private, and that it has a callback URL."
            }
            "invalid_scope" => {
                "The consumer is not allowed the requested scopes. Check the consumer's permissions in Workspace settings > OAuth consumers."
            }
            _ => {
                "See Bitbucket's message above; the README's Prerequisites list how the consumer must be set up."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_wording_before_code() {
        assert!(
            hint("unauthorized_client", "Invalid OAuth client credentials")
                .contains("Key or Secret is wrong")
        );
        assert!(
            hint(
                "invalid_request",
                "No callback uri defined for the OAuth client."
            )
            .contains("callback URL")
        );
        assert!(hint("unauthorized_client", "Cannot use client_credentials with a consumer marked as \"public\". Calls for auto generated consumers should use urn:bitbucket:oauth2:jwt instead.").contains("private consumer"));
        assert!(hint("invalid_grant", "Unsupported grant type: None").contains("TOKEN_URL"));
        assert!(hint("unauthorized_client", "").contains("CLIENT_ID and CLIENT_SECRET"));
        assert!(hint("server_error", "x").contains("README"));
    }
}
