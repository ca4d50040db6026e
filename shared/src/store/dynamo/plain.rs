//! A write of one item as a plain conditional `UpdateItem` instead of a transaction: what recording a
//! single device's check needs. It costs 1 write unit per KB where a transaction costs 2, and it joins
//! no transaction, so it cannot cancel one; it still fails only when its own item's condition does or
//! a transaction on that same item is in flight.

use super::usage::Capacity;
use super::{backend, expr, image, DynamoStore, CONSUMED};
use crate::store::write::Write;
use crate::store::Rejection;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, Update};

impl DynamoStore {
    /// Applies `write`, which must be one update, as one conditional `UpdateItem`. Applying it twice
    /// leaves what applying it once does, so an unknown outcome is retried as it is.
    pub(super) async fn update_alone(&self, write: &Write) -> Result<(), Rejection> {
        let update = match write.items.as_slice() {
            [item] => expr::update(&self.table, item),
            _ => None,
        };
        let Some(Update {
            key,
            update_expression,
            table_name,
            condition_expression,
            expression_attribute_names,
            expression_attribute_values,
            ..
        }) = update
        else {
            return Err(Rejection::Store(crate::store::StoreError::Invalid(
                "a plain update takes exactly one update item".into(),
            )));
        };
        let out = self
            .client
            .update_item()
            .table_name(table_name)
            .set_key(Some(key))
            .update_expression(update_expression)
            .set_condition_expression(condition_expression)
            .set_expression_attribute_names(expression_attribute_names)
            .set_expression_attribute_values(expression_attribute_values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(CONSUMED)
            .send()
            .await
            .map_err(|e| self.rejection(e, write))?;
        self.usage.consumed(Capacity::Write, out.consumed_capacity());
        Ok(())
    }

    /// What a failed `UpdateItem` means, as [`super::rejection_from`] says it for transactions.
    fn rejection(&self, err: SdkError<UpdateItemError>, write: &Write) -> Rejection {
        use UpdateItemError as E;
        match &err {
            SdkError::ServiceError(e) => match e.err() {
                E::ConditionalCheckFailedException(failed) => {
                    let current = image(&write.items[0].item, failed.item.as_ref());
                    Rejection::for_item(write, 0, current)
                }
                // A transaction on this item is in flight: this update did not happen.
                E::TransactionConflictException(_) | E::ReplicatedWriteConflictException(_) => {
                    self.usage.conflict();
                    Rejection::Conflict
                }
                E::ProvisionedThroughputExceededException(_)
                | E::RequestLimitExceeded(_)
                | E::ThrottlingException(_) => Rejection::Conflict,
                E::InternalServerError(_) => Rejection::Unknown(Box::new(err)),
                _ => Rejection::Store(backend("UpdateItem", &self.table)(err)),
            },
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                Rejection::Unknown(Box::new(err))
            }
            _ => Rejection::Store(backend("UpdateItem", &self.table)(err)),
        }
    }
}
