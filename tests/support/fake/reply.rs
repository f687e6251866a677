//! The queue of scripted replies: what a test makes the fake answer instead of Bitbucket's
//! behaviour, checked on drop to have been used whole. The replies themselves and how they
//! are written are the shared [`super::server::reply`].

use std::collections::VecDeque;

pub use super::server::reply::{Fault, Reply};

/// One endpoint's scripted replies, used in order before the fake's own behaviour.
#[derive(Debug, Default)]
pub(super) struct Script {
    queue: VecDeque<Reply>,
}

impl Script {
    pub(super) fn new(replies: &[Reply]) -> Script {
        Script {
            queue: replies.iter().cloned().collect(),
        }
    }

    /// The next scripted reply, if any is left.
    pub(super) fn next(&mut self) -> Option<Reply> {
        self.queue.pop_front()
    }

    /// Replies never used: each is a request the test scripted and the program never made.
    pub(super) fn unused(&self) -> Vec<String> {
        self.queue
            .iter()
            .map(|r| match &r.fault {
                Fault::None => format!("HTTP {}", r.status),
                fault => format!("{fault:?}"),
            })
            .collect()
    }
}
