//! A token just issued may not be known yet to the API that checks it: providers replicate
//! new tokens with a lag, and a validation call sent the moment the token arrives can meet a
//! 401 that a second later would be a 200 (GitHub: octokit retries for about 6 s,
//! octokit/auth-app.js#168; ../shared/research/providers.md §1 and its advice 7, "validate
//! with a short retry window").
//! [`send`] is the one place that waits it out, for every provider's validation call.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;

use super::Fresh;
use crate::error::Error;
use crate::http::{Call, Http, Response};
use crate::report::Reporter;

/// Sends the validation `call`. While the token is [`Fresh::Issued`], a 401 is retried after
/// each of `waits` that still ends before the run's deadline, saying that `who` may not have
/// propagated it yet; a reused token's 401 is final. Returns the last answer, success or not.
pub async fn send(
    call: &Call<'_>,
    fresh: Fresh,
    waits: &[Duration],
    who: &str,
    http: &Http,
    log: &mut Reporter,
) -> Result<Response, Error> {
    let mut left = waits.iter().enumerate();
    loop {
        let response = http.send(call, log).await?;
        let retry = response.status == StatusCode::UNAUTHORIZED && fresh == Fresh::Issued;
        let wait = left
            .next()
            .filter(|(_, w)| retry && Instant::now() + **w < http.deadline());
        let Some((n, wait)) = wait else {
            return Ok(response);
        };
        log.info(format!(
            "The new token was refused (HTTP 401); {who} may not have propagated it yet. Retrying in {:.1} s ({} of {}).",
            wait.as_secs_f64(),
            n + 1,
            waits.len()
        ));
        tokio::time::sleep(*wait).await;
    }
}
