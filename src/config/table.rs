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

const fn platform(name: &'static str, doc: &'static str) -> Var {
    no_input(var(name, "", Owner::Platform, doc))
}

/// The table, in the order the README documents the variables. One line per variable
/// (rustfmt would spread each over five), so the table reads as a table.
#[rustfmt::skip]
pub const VARIABLES: &[Var] = &[
    var("CLIENT_ID", "", Owner::Common, "The client ID (Bitbucket: the OAuth consumer's Key)."),
    secret(var("CLIENT_SECRET", "", Owner::Common, "The client secret (Bitbucket: the consumer's Secret), as a secured variable.")),
    var("PROVIDER", "bitbucket", Owner::Common, "The token provider: bitbucket, oauth2, entra, auth0, okta or keycloak."),
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
    var("CLIENT_AUTH", "", OAUTH2, "client_secret_basic or client_secret_post (default by profile)."),
    var("INTROSPECTION_URL", "", OAUTH2, "The RFC 7662 introspection endpoint (overrides discovery)."),
    var("JWKS_URL", "", OAUTH2, "The issuer's key set (overrides discovery)."),
    var("TIMEOUT", "30", Owner::Common, "Seconds for the whole run, retries included."),
    var("RETRIES", "3", Owner::Common, "Extra attempts after a transient failure."),
    var("CA_BUNDLE", "", Owner::Common, "A PEM file of extra CA certificates to trust."),
    no_input(var("REUSE", "true", Owner::Common, "Reuse a stored token with enough validity left.")),
    no_input(var("MIN_VALIDITY", "600", Owner::Common, "Seconds a stored token must have left to be reused.")),
    var("DEBUG", "false", Owner::Common, "Log requests and responses, credentials redacted."),
    no_input(var("GIT_HOST", "bitbucket.org", Owner::Command("git-credential"), "The host git-credential answers for.")),
    no_input(var("GIT_USERNAME", "", Owner::Command("git-credential"), "The git username sent with the token (OAuth 2.0 providers).")),
    var("EXPORT_ENV", "false", Owner::GitHub, "Also export the token to later steps through $GITHUB_ENV."),
    platform("BITBUCKET_REPO_FULL_NAME", "Set by Bitbucket Pipelines: the repository being built."),
    platform("BITBUCKET_BUILD_NUMBER", "Set by Bitbucket Pipelines: marks the platform."),
    platform("GITHUB_ACTIONS", "Set by GitHub Actions: marks the platform."),
    platform("GITHUB_OUTPUT", "Set by GitHub Actions: the step outputs file."),
    platform("GITHUB_ENV", "Set by GitHub Actions: the later steps' environment file."),
    platform("GITHUB_STEP_SUMMARY", "Set by GitHub Actions: the step summary file."),
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
