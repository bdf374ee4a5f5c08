//! All-or-nothing tokenize batches (`atomic: true`): an order whose card number is accepted but
//! whose e-mail is refused must not leave the card number's token behind, since the role that
//! tokenized it (`checkout`) usually may not delete it. Either every item is stored, or none is and
//! no envelope of the batch is consumed: the caller fixes the refused field and submits the same
//! envelopes again.

use fieldseal_vault_store::{InsertOutcome, NewToken, Store, StoreError};

use crate::refusal::{ItemError, Refusal};
use crate::vault::{Caller, Checked, PendingItem, TokenizeItem, Tokenized, Vault, VaultError};

/// Times the batch is tried again with new tokens for the items whose token was taken.
const TAKEN_RETRIES: usize = 15;

impl<S: Store> Vault<S> {
    /// Tokenizes a batch all or nothing; one result per item, in order. If any item is refused,
    /// none is stored: the others answer `batch_aborted` (audited) and their envelopes can be
    /// submitted again. A failure to audit, or an audit chain found broken, fails the request.
    pub async fn tokenize_atomic(
        &self,
        caller: &Caller,
        items: Vec<TokenizeItem>,
    ) -> Result<Vec<Result<Tokenized, ItemError>>, VaultError> {
        let (mut out, mut pending) = self.check_batch(caller, &items).await?;
        if out.iter().any(Option::is_some) {
            self.abort(caller, &mut out, pending).await?;
            return Ok(finish(out));
        }
        let mut last = Vec::new();
        for _attempt in 0..=TAKEN_RETRIES {
            let batch: Vec<NewToken> = pending.iter().map(|(_, _, b)| b.new.clone()).collect();
            let outcomes = match self.store().insert_tokens_atomic(batch).await {
                Ok(o) => o,
                Err(
                    e @ (StoreError::AuditBroken(_)
                    | StoreError::Tampered(_)
                    | StoreError::Incompatible(_)),
                ) => return Err(e.into()),
                // Nothing of the batch was kept: all can be resubmitted.
                Err(e) => {
                    let refusal = Refusal::from_store(&e);
                    for (i, _, _) in pending {
                        out[i] = Some(Err(refusal.clone().into()));
                    }
                    return Ok(finish(out));
                }
            };
            if outcomes.iter().all(|o| o.stored()) {
                for (i, _, built) in pending {
                    out[i] = Some(Ok(built.result));
                }
                return Ok(finish(out));
            }
            if outcomes.contains(&InsertOutcome::Replayed) {
                // The store audited the replays; the rest of the batch is aborted.
                let mut rest = Vec::new();
                for (item, outcome) in pending.into_iter().zip(outcomes) {
                    if outcome == InsertOutcome::Replayed {
                        out[item.0] = Some(Err(Refusal::Replayed.into()));
                    } else {
                        rest.push(item);
                    }
                }
                self.abort(caller, &mut out, rest).await?;
                return Ok(finish(out));
            }
            // Only taken tokens (random or format-preserving collisions): draw those again.
            for ((_, p, built), outcome) in pending.iter_mut().zip(&outcomes) {
                if *outcome == InsertOutcome::TokenTaken {
                    *built = self.build(p)?;
                }
            }
            last = outcomes;
        }
        // No free token for some item after every retry: those are refused, the rest aborted.
        let mut rest = Vec::new();
        for (item, outcome) in pending.into_iter().zip(last) {
            if outcome == InsertOutcome::TokenTaken {
                let (i, p, _) = item;
                let refusal = Refusal::TokenSpaceExhausted;
                if let Checked::Done(r) = self
                    .refuse(caller, Some(p.kind), p.env_detail, refusal)
                    .await?
                {
                    out[i] = Some(r);
                }
            } else {
                rest.push(item);
            }
        }
        self.abort(caller, &mut out, rest).await?;
        Ok(finish(out))
    }

    /// Refuses, audited, every item still pending because another item of its batch was refused.
    async fn abort(
        &self,
        caller: &Caller,
        out: &mut [Option<Result<Tokenized, ItemError>>],
        pending: Vec<PendingItem>,
    ) -> Result<(), VaultError> {
        for (i, p, _) in pending {
            if let Checked::Done(r) = self
                .refuse(caller, Some(p.kind), p.env_detail, Refusal::BatchAborted)
                .await?
                && let Some(slot) = out.get_mut(i)
            {
                *slot = Some(r);
            }
        }
        Ok(())
    }
}

/// Every slot filled (an empty one would be a bug: answered `internal`).
fn finish(out: Vec<Option<Result<Tokenized, ItemError>>>) -> Vec<Result<Tokenized, ItemError>> {
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Refusal::Internal.into())))
        .collect()
}
