//! Every variable the program reads, in one table: its name, whether the GitHub action has
//! an input for it, its documented default, who reads it, whether it holds a secret, and
//! one line of documentation. Reading the environment, masking, `exec`'s scrubbing,
//! `--help`, and the tests that keep pipe.yml, action.yml and the README in step all derive
//! from this table (ripgrep's `flags/defs.rs` is the model: one definition per flag).

/// Who reads a variable; this decides where it is documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Every provider and command (pipe.yml, action.yml, README).
    Common,
    /// One provider's section (pipe.yml, action.yml, README).
    Provider(&'static str),
    /// One subcommand only (README; not the pipe).
    Command(&'static str),
    /// The GitHub action only (action.yml, README).
    GitHub,
    /// Set by the platform or the machine, not by the user.
    Platform,
}

/// One variable.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    /// The variable, as the user writes it.
    pub name: &'static str,
    /// Whether action.yml has an input for it (named in lower case).
    pub input: bool,
    /// The default as documented, or "" for none.
    pub default: &'static str,
    /// Who reads it.
    pub owner: Owner,
    /// Whether its value is a credential: masked from the start, never echoed, and removed
    /// from `exec`'s child.
    pub secret: bool,
    /// One line of documentation.
    pub doc: &'static str,
}

impl Var {
    /// The GitHub action input's name, when it has one.
    pub fn input_name(&self) -> Option<String> {
        self.input.then(|| self.name.to_ascii_lowercase())
    }

    /// Whether pipe.yml declares it (what a Bitbucket pipe user may set).
    pub fn in_pipe_yml(&self) -> bool {
        matches!(self.owner, Owner::Common | Owner::Provider(_))
    }
}

const fn var(name: &'static str, default: &'static str, owner: Owner, doc: &'static str) -> Var {
    Var {
        name,
        input: true,
        default,
        owner,
        secret: false,
        doc,
    }
}

const fn secret(mut v: Var) -> Var {
    v.secret = true;
    v
}

const fn no_input(mut v: Var) -> Var {
    v.input = false;
    v
}

const BITBUCKET: Owner = Owner::Provider("bitbucket");
/// Read by the generic OAuth 2.0 provider and every identity-provider profile over it.
const OAUTH2: Owner = Owner::Provider("oauth2");

/// Read by the GitHub App installation-token provider.
const GITHUB_APP: Owner = Owner::Provider("github-app");

const fn platform(name: &'static str, doc: &'static str) -> Var {
    no_input(var(name, "", Owner::Platform, doc))
}

/// The table, in the order the README documents the variables. One line per variable
/// (rustfmt would spread each over five), so the table reads as a table.
#[rustfmt::skip]
pub const VARIABLES: &[Var] = &[
    var("CLIENT_ID", "", Owner::Common, "The client ID (Bitbucket: the OAuth consumer's Key)."),
    secret(var("CLIENT_SECRET", "", Owner::Common, "The client secret (Bitbucket: the consumer's Secret), as a secured variable.")),
    var("PROVIDER", "bitbucket", Owner::Common, "The token provider: bitbucket, oauth2, entra, auth0, okta, keycloak, google or github-app."),
    var("OUTPUT_FILE", "oauth-token.env", Owner::Common, "The dotenv file to write."),
    var("TOKEN_VARIABLE", "BITBUCKET_ACCESS_TOKEN", Owner::Common, "The variable name used in the file."),
    var("REPOSITORY", "$BITBUCKET_REPO_FULL_NAME", BITBUCKET, "workspace/repo-slug read by the validation call."),
    var("VALIDATE", "true", Owner::Common, "Make the validation API call (OAuth 2.0: also api, introspect, jwks)."),
    var("VALIDATE_URL", "", Owner::Common, "A full API URL for the validation call."),
    var("REQUIRED_SCOPES", "", Owner::Common, "Scopes the token must carry."),
    var("TOKEN_URL", "https://bitbucket.org/site/oauth2/access_token", Owner::Common, "The token endpoint."),
    var("API_URL", "https://api.bitbucket.org/2.0", BITBUCKET, "The REST API base."),
    var("ISSUER", "", OAUTH2, "The authorization server's issuer, for discovery."),
    var("TENANT_ID", "", Owner::Provider("entra"), "The Entra ID tenant (GUID or domain)."),
    var("AUTHORITY_URL", "https://login.microsoftonline.com", Owner::Provider("entra"), "The Entra ID authority (sovereign clouds differ)."),
    var("SCOPE", "", OAUTH2, "Scopes to request, separated by spaces or commas."),
    var("AUDIENCE", "", OAUTH2, "The audience parameter (required by Auth0)."),
    var("RESOURCE", "", OAUTH2, "RFC 8707 resource URIs, separated by spaces."),
    var("CLIENT_AUTH", "", OAUTH2, "client_secret_basic, client_secret_post, private_key_jwt or federated (default by profile)."),
    secret(var("PRIVATE_KEY", "", Owner::Common, "A private key (PEM; \\n escapes or base64 accepted), as a secured variable.")),
    var("SIGNING_ALG", "", OAUTH2, "private_key_jwt: RS256 (RSA default), PS256 or ES256 (EC default)."),
    var("KEY_ID", "", OAUTH2, "private_key_jwt: the kid header."),
    var("CERTIFICATE", "", OAUTH2, "private_key_jwt: the certificate (PEM) whose thumbprint goes in x5t#S256 (Entra)."),
    var("ASSERTION_AUDIENCE", "", OAUTH2, "private_key_jwt: the assertion's aud (default: the token endpoint)."),
    var("GRANT", "client_credentials", OAUTH2, "client_credentials, token_exchange (RFC 8693) or jwt_bearer (RFC 7523)."),
    var("SUBJECT_TOKEN_TYPE", "urn:ietf:params:oauth:token-type:jwt", OAUTH2, "token_exchange: the subject token's type."),
    var("REQUESTED_TOKEN_TYPE", "", OAUTH2, "token_exchange: the type asked for."),
    var("OIDC_TOKEN_SOURCE", "auto", OAUTH2, "Where the CI identity token comes from: auto, github, bitbucket, gitlab or file."),
    var("OIDC_AUDIENCE", "", OAUTH2, "The audience the identity token must carry (entra: api://AzureADTokenExchange)."),
    var("OIDC_TOKEN_VARIABLE", "OIDC_TOKEN", OAUTH2, "GitLab: the variable id_tokens: names."),
    var("OIDC_TOKEN_FILE", "", OAUTH2, "A file holding the identity token, re-read on each use."),
    var("WORKLOAD_IDENTITY_PROVIDER", "", Owner::Provider("google"), "projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER."),
    var("STS_URL", "https://sts.googleapis.com/v1/token", Owner::Provider("google"), "Google's STS token URL."),
    var("SERVICE_ACCOUNT", "", Owner::Provider("google"), "A service account to impersonate (e-mail)."),
    var("IAM_CREDENTIALS_URL", "https://iamcredentials.googleapis.com", Owner::Provider("google"), "The IAM Credentials API base."),
    var("LIFETIME", "", Owner::Provider("google"), "Seconds the impersonated token lives (60-43200)."),
    var("INTROSPECTION_URL", "", OAUTH2, "The RFC 7662 introspection endpoint (overrides discovery)."),
    var("JWKS_URL", "", OAUTH2, "The issuer's key set (overrides discovery)."),
    var("APP_ID", "", GITHUB_APP, "The GitHub App's Client ID (Iv23…) or numeric App ID."),
    var("OWNER", "", GITHUB_APP, "The account whose installation to use (default: the current repository's)."),
    var("REPOSITORIES", "", GITHUB_APP, "Repository names the token covers (default: the current one, or all of OWNER's)."),
    var("PERMISSIONS", "", GITHUB_APP, "Permissions to request, e.g. contents:write,pull_requests:read."),
    var("INSTALLATION_ID", "", GITHUB_APP, "The installation to use, skipping the lookup."),
    var("GITHUB_API_URL", "https://api.github.com", GITHUB_APP, "GitHub's REST API (GHES: https://HOST/api/v3)."),
    var("TIMEOUT", "30", Owner::Common, "Seconds for the whole run, retries included."),
    var("RETRIES", "3", Owner::Common, "Extra attempts after a transient failure."),
    var("CA_BUNDLE", "", Owner::Common, "A PEM file of extra CA certificates to trust."),
    no_input(var("REUSE", "true", Owner::Common, "Reuse a stored token with enough validity left.")),
    no_input(var("MIN_VALIDITY", "600", Owner::Common, "Seconds a stored token must have left to be reused.")),
    var("DEBUG", "false", Owner::Common, "Log requests and responses, credentials redacted."),
    no_input(var("GIT_HOST", "bitbucket.org", Owner::Command("git-credential"), "The host git-credential answers for (github-app: the API's host, github.com for api.github.com).")),
    no_input(var("GIT_USERNAME", "", Owner::Command("git-credential"), "The git username sent with the token (OAuth 2.0 providers).")),
    var("EXPORT_ENV", "false", Owner::GitHub, "Also export the token to later steps through $GITHUB_ENV."),
    platform("BITBUCKET_REPO_FULL_NAME", "Set by Bitbucket Pipelines: the repository being built."),
    platform("BITBUCKET_BUILD_NUMBER", "Set by Bitbucket Pipelines: marks the platform."),
    platform("GITHUB_ACTIONS", "Set by GitHub Actions: marks the platform."),
    platform("GITHUB_OUTPUT", "Set by GitHub Actions: the step outputs file."),
    platform("GITHUB_ENV", "Set by GitHub Actions: the later steps' environment file."),
    platform("GITHUB_STEP_SUMMARY", "Set by GitHub Actions: the step summary file."),
    platform("GITHUB_REPOSITORY", "Set by GitHub Actions: owner/repo being built (github-app's default repository)."),
    platform("GITHUB_REPOSITORY_OWNER", "Set by GitHub Actions: the owner of the repository being built."),
    platform("GITLAB_CI", "Set by GitLab CI: marks the platform."),
    platform("NO_COLOR", "Turns the log's colours off (https://no-color.org)."),
    platform("XDG_CACHE_HOME", "Where git-credential caches tokens."),
    platform("HOME", "Where git-credential caches tokens without XDG_CACHE_HOME."),
    platform("HTTPS_PROXY", "The proxy for https requests (also https_proxy)."),
    platform("https_proxy", "As HTTPS_PROXY."),
    platform("ALL_PROXY", "The proxy when HTTPS_PROXY is unset (also all_proxy)."),
    platform("all_proxy", "As ALL_PROXY."),
    platform("NO_PROXY", "Hosts that bypass the proxy (also no_proxy)."),
    platform("no_proxy", "As NO_PROXY."),
    platform("ACTIONS_ID_TOKEN_REQUEST_URL", "Set by GitHub Actions with id-token: write: where identity tokens are minted."),
    secret(platform("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "Set by GitHub Actions with id-token: write: the bearer for that request.")),
    secret(platform("BITBUCKET_STEP_OIDC_TOKEN", "Set by Bitbucket Pipelines with oidc: true: the step's identity token.")),
    secret(platform("OIDC_TOKEN", "GitLab: the identity token id_tokens: names OIDC_TOKEN (the default).")),
];

/// The entry for `name`.
pub fn find(name: &str) -> Option<&'static Var> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// The variables pipe.yml declares, in order.
pub fn pipe_variables() -> Vec<&'static str> {
    VARIABLES
        .iter()
        .filter(|v| v.in_pipe_yml())
        .map(|v| v.name)
        .collect()
}

/// action.yml's inputs and the variables they set, in order.
pub fn github_inputs() -> Vec<(String, &'static str)> {
    VARIABLES
        .iter()
        .filter_map(|v| v.input_name().map(|i| (i, v.name)))
        .collect()
}

/// The variables holding credentials.
pub fn secrets() -> impl Iterator<Item = &'static str> {
    VARIABLES.iter().filter(|v| v.secret).map(|v| v.name)
}
