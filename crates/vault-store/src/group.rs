//! Group commit, shared by the backends: the two writes every checkout makes (tokenize and
//! reveal) are queued as [`Job`]s, and one writer commits every job waiting at that moment in one
//! transaction, then answers each ([`answer`]). Under load many small commits become a few larger
//! ones; a lone request waits for nothing.

use crate::audit::AuditDraft;
use crate::{InsertOutcome, NewToken, StoreError};

/// One request's write, and where to send its outcome.
#[derive(Debug)]
pub enum Job {
    /// Reveals: audit entries, and card security code tokens to consume (`(index into audit,
    /// token)`, as [`crate::Store::record_reveals`] takes them).
    Reveals {
        /// The entries to append.
        audit: Vec<AuditDraft>,
        /// The tokens to consume.
        consume: Vec<(usize, String)>,
        /// Where the outcome goes.
        done: tokio::sync::oneshot::Sender<Result<Vec<bool>, StoreError>>,
    },
    /// A tokenize request's tokens ([`crate::Store::insert_tokens`], or
    /// [`crate::Store::insert_tokens_atomic`] when `atomic`).
    Tokens {
        /// The tokens to store.
        items: Vec<NewToken>,
        /// Every item or none: if one is a replay or its token is taken, the job stores nothing
        /// (the replays' refusals are still audited), whatever the other jobs of its group do.
        atomic: bool,
        /// Where the outcome goes.
        done: tokio::sync::oneshot::Sender<Result<Vec<InsertOutcome>, StoreError>>,
    },
}

/// What a job produced inside the group's transaction.
#[derive(Debug)]
pub enum Done {
    /// Per consumed token, whether this request consumed it.
    Reveals(Vec<bool>),
    /// Per item, what happened.
    Tokens(Vec<InsertOutcome>),
}

/// Most requests committed in one group transaction.
pub const MAX_GROUP: usize = 256;

/// Sends each job its outcome. A failed group committed nothing: every request in it fails, none
/// discloses or stores anything.
pub fn answer(jobs: Vec<Job>, outcome: Result<Vec<Done>, StoreError>) {
    fn fail(job: Job, e: StoreError) {
        match job {
            Job::Reveals { done, .. } => drop(done.send(Err(e))),
            Job::Tokens { done, .. } => drop(done.send(Err(e))),
        }
    }
    match outcome {
        Ok(all) => {
            for (job, done) in jobs.into_iter().zip(all) {
                match (job, done) {
                    (Job::Reveals { done: tx, .. }, Done::Reveals(r)) => drop(tx.send(Ok(r))),
                    (Job::Tokens { done: tx, .. }, Done::Tokens(r)) => drop(tx.send(Ok(r))),
                    (job, _) => fail(job, StoreError::Database("writer mixed up jobs".into())),
                }
            }
        }
        Err(e) => {
            for job in jobs {
                fail(job, e.clone());
            }
        }
    }
}
