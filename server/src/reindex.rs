//! `license-server reindex`: gives the items of a DynamoDB table written before the listing indexes
//! existed (or before an index learned their kind) their index attributes, so the Management API's
//! lists and searches find them (`DynamoStore::reindex`, docs/data-model.md, *Listing and search*).
//! Idempotent: a second run changes nothing. The embedded store lists from its own tables and has
//! nothing to backfill.

use crate::stores::StoreArgs;
use clap::Args;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Args, Debug)]
pub struct ReindexArgs {
    #[command(flatten)]
    pub store: StoreArgs,
}

impl ReindexArgs {
    /// Runs the backfill; what to print.
    pub async fn run(self) -> Result<String, Error> {
        let Some(store) = self.store.dynamodb().await else {
            return Ok(format!(
                "{} answers every listing from its own tables: nothing to reindex\n",
                self.store.describe()
            ));
        };
        let r = store.reindex().await?;
        Ok(format!(
            "{}: scanned {} items; indexed {}, already indexed {}, changed meanwhile (left as they are) {}, \
             unreadable (left as they are, see the log) {}\n",
            self.store.describe(),
            r.scanned,
            r.indexed,
            r.complete,
            r.changed_meanwhile,
            r.unreadable
        ))
    }
}
