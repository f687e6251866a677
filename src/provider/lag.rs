//! A token just issued may not be known yet to the API that checks it: identity providers
//! and GitHub replicate new tokens with a lag, and a validation call sent the moment the
//! token arrives can meet a 401 that a second later would be a 200 (actions/
//! create-github-app-token#74 for GitHub; Bitbucket's and Entra's own advice to retry).
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
