//! The fakes' drop check (as xh's `tests/server/mod.rs` does it): a fake dropped with a
//! scripted reply unused fails the test, since the test then proved less than it says, and so
//! does one whose handler panicked, since the client may have survived that by retrying.

/// The problem of scripted replies for `endpoint` left unused, if any are.
pub fn unused(endpoint: &str, unused: &[String]) -> Option<String> {
    (!unused.is_empty()).then(|| {
        format!(
            "scripted {endpoint} replies never used: {} ({}). The program made fewer \
             requests than the test scripted: script only the replies it uses, and assert \
             the request count",
            unused.len(),
            unused.join(", ")
        )
    })
}

/// Fails the test when a scripted reply went `unused` (each entry from [`unused`]) or the
/// server reported `panics` ([`super::http::Server::stop`]), listing the `METHOD path` of
/// every request `received`. A test already failing gets the report on stderr instead: a
/// second panic while unwinding would abort the whole test binary.
pub fn report(
    fake: &str,
    unused: impl IntoIterator<Item = Option<String>>,
    panics: Vec<String>,
    received: impl Iterator<Item = String>,
) {
    let mut problems: Vec<String> = unused.into_iter().flatten().chain(panics).collect();
    if problems.is_empty() {
        return;
    }
    let received: Vec<String> = received.collect();
    problems.push(format!("requests received: {received:?}"));
    let report = format!("fake {fake}: {}", problems.join("\n  "));
    if std::thread::panicking() {
        eprintln!("{report}");
    } else {
        panic!("{report}");
    }
}
