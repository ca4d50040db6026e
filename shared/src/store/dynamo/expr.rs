//! Renders a [`Write`] into the items of one `TransactWriteItems`: each [`Cond`] becomes a condition
//! expression, each [`Effect`] an update clause, with every attribute name and value bound through
//! placeholders (so reserved words such as `user` never matter).

use super::codec;
use super::keys::{self, n, s, ItemMap, PK};
use crate::store::write::{Action, Attr, Cond, Effect, Item, ItemWrite, OnUpsert, Val, Write};
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::collections::HashMap;

/// Placeholders of one item's expressions.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

fn value_of(v: &Val) -> AttributeValue {
    match v {
        Val::Bool(b) => AttributeValue::Bool(*b),
        Val::Int(i) => n(*i),
        Val::Str(t) => s(t),
        Val::Set(items) => AttributeValue::L(items.iter().map(s).collect()),
        Val::Counts(counts) => AttributeValue::M(counts.iter().map(|(k, v)| (k.clone(), n(*v))).collect()),
    }
}

impl Expr {
    fn name(&mut self, a: Attr) -> String {
        self.raw_name(a.name())
    }

    fn raw_name(&mut self, name: &str) -> String {
        let placeholder = format!("#{}", self.names.len());
        if let Some((k, _)) = self.names.iter().find(|(_, v)| v.as_str() == name) {
            return k.clone();
        }
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    fn value(&mut self, v: AttributeValue) -> String {
        let placeholder = format!(":{}", self.values.len());
        self.values.insert(placeholder.clone(), v);
        placeholder
    }

    fn cond(&mut self, c: &Cond) -> String {
        match c {
            Cond::Exists => format!("attribute_exists({PK})"),
            Cond::Missing => format!("attribute_not_exists({PK})"),
            Cond::Absent(a) => format!("attribute_not_exists({})", self.name(*a)),
            Cond::Eq(a, v) => format!("{} = {}", self.name(*a), self.value(value_of(v))),
            Cond::Lt(a, b) => format!("{} < {}", self.name(*a), self.name(*b)),
            Cond::Gt(a, x) => format!("{} > {}", self.name(*a), self.value(n(*x))),
            Cond::Contains(a, v) => format!("contains({}, {})", self.name(*a), self.value(s(v))),
            // A comparison with a missing attribute is false, and a counter never written is 0: so
            // `NOT c > b` (missing or ≤ b) where 0 is within the bound, else `c <= b`. The short
            // forms keep 100 counters' conditions well within DynamoDB's 4 KB per expression.
            Cond::AtMost(c, bound) => {
                let (name, value) = (self.raw_name(&c.name()), self.value(n(*bound)));
                if *bound >= 0 {
                    format!("NOT {name} > {value}")
                } else {
                    format!("{name} <= {value}")
                }
            }
            Cond::AtLeast(c, bound) => {
                let (name, value) = (self.raw_name(&c.name()), self.value(n(*bound)));
                if *bound <= 0 {
                    format!("NOT {name} < {value}")
                } else {
                    format!("{name} >= {value}")
                }
            }
            Cond::StoredAtMost(c, bound) => format!("{} <= {}", self.raw_name(&c.name()), self.value(n(*bound))),
            Cond::StoredAtLeast(c, bound) => format!("{} >= {}", self.raw_name(&c.name()), self.value(n(*bound))),
            Cond::NoCounter(c) => format!("attribute_not_exists({})", self.raw_name(&c.name())),
            Cond::PeriodIs(c, None) => format!("attribute_not_exists({})", self.raw_name(&c.period_name())),
            Cond::PeriodIs(c, Some(start)) => {
                format!("{} = {}", self.raw_name(&c.period_name()), self.value(n(*start)))
            }
            Cond::Not(inner) => format!("NOT ({})", self.cond(inner)),
            Cond::Or(cs) => cs
                .iter()
                .map(|c| format!("({})", self.cond(c)))
                .collect::<Vec<_>>()
                .join(" OR "),
        }
    }

    fn conditions(&mut self, cs: &[Cond]) -> Option<String> {
        (!cs.is_empty()).then(|| {
            cs.iter()
                .map(|c| format!("({})", self.cond(c)))
                .collect::<Vec<_>>()
                .join(" AND ")
        })
    }

    fn update(&mut self, effects: &[Effect]) -> String {
        let (mut set, mut add) = (Vec::new(), Vec::new());
        for e in effects {
            match e {
                Effect::Add(a, x) => add.push(format!("{} {}", self.name(*a), self.value(n(*x)))),
                Effect::Count(c, x) => add.push(format!("{} {}", self.raw_name(&c.name()), self.value(n(*x)))),
                Effect::SetCount(c, x) => set.push(format!("{} = {}", self.raw_name(&c.name()), self.value(n(*x)))),
                Effect::SetPeriod(c, t) => {
                    set.push(format!("{} = {}", self.raw_name(&c.period_name()), self.value(n(*t))))
                }
                Effect::Set(a, v) => set.push(format!("{} = {}", self.name(*a), self.value(value_of(v)))),
                Effect::SetDetail(k, v) => set.push(format!(
                    "{}.{} = {}",
                    self.raw_name("details"),
                    self.raw_name(k),
                    self.value(codec::detail_value(v))
                )),
            }
        }
        let mut parts = Vec::new();
        if !set.is_empty() {
            parts.push(format!("SET {}", set.join(", ")));
        }
        if !add.is_empty() {
            parts.push(format!("ADD {}", add.join(", ")));
        }
        parts.join(" ")
    }

    /// The update of an [`Action::Upsert`]: every attribute of the new item set, what
    /// [`Attr::on_upsert_named`] keeps only where the stored item has none (so an item created here
    /// starts from the given value).
    fn upsert(&mut self, item: ItemMap) -> String {
        let set: Vec<String> = item
            .into_iter()
            .filter(|(name, _)| name != PK && name != keys::SK)
            .map(|(name, v)| {
                let (placeholder, value) = (self.raw_name(&name), self.value(v));
                match Attr::on_upsert_named(&name) {
                    OnUpsert::KeepStored => format!("{placeholder} = if_not_exists({placeholder}, {value})"),
                    OnUpsert::Replace | OnUpsert::KeepUnlessGiven => format!("{placeholder} = {value}"),
                }
            })
            .collect();
        format!("SET {}", set.join(", "))
    }

    fn names(&mut self) -> Option<HashMap<String, String>> {
        Some(std::mem::take(&mut self.names)).filter(|m| !m.is_empty())
    }

    fn values(&mut self) -> Option<HashMap<String, AttributeValue>> {
        Some(std::mem::take(&mut self.values)).filter(|m| !m.is_empty())
    }
}

/// The table key of an item.
pub fn key(item: &Item) -> ItemMap {
    match item {
        Item::ApiKey(id) => keys::api_key(id),
        Item::OAuthClient(id) => keys::oauth_client(id),
        Item::CustomerAccount(company, code) => keys::customer_account(company, code),
        Item::User(company, user) => keys::user(company, user),
        Item::Customer(company, email) => keys::customer(company, email),
        Item::Audit(company, id) => keys::audit(company, id),
        Item::Product(company, code) => keys::product(company, code),
        Item::Company(company) => keys::company(company),
        Item::License(addr) => keys::license(addr),
        Item::Device(addr, hw) => keys::device(addr, hw),
        Item::Seat(addr, user) => keys::seat(addr, user),
        Item::Released(addr, hw) => keys::released(addr, hw),
        Item::Request(addr, request) => keys::request(addr, request),
        Item::Trial(company, product, hw) => keys::trial(company, product, hw),
        Item::ManagementKey(company, id) => keys::management_key(company, id),
        Item::Idempotency(company, key) => keys::idempotency(company, key),
    }
}

const BUILT: &str = "table, key and expressions are set";

/// What every action shares: the table, the condition with its placeholders, and the item returned
/// when the condition fails (so the caller re-decides without another read). The SDK's four builders
/// are distinct types with the same methods, hence a macro.
macro_rules! conditional {
    ($builder:expr, $table:expr, $condition:expr, $x:expr) => {
        $builder
            .table_name($table)
            .set_condition_expression($condition)
            .set_expression_attribute_names($x.names())
            .set_expression_attribute_values($x.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect(BUILT)
    };
}

fn transact_item(table: &str, w: &ItemWrite) -> Result<TransactWriteItem, StoreError> {
    let mut x = Expr::default();
    let condition = x.conditions(&w.conditions);
    let key = || Some(key(&w.item));
    let b = TransactWriteItem::builder();
    let item = match &w.action {
        Action::Check => b.condition_check(conditional!(
            ConditionCheck::builder().set_key(key()),
            table,
            condition,
            x
        )),
        Action::Update(effects) => {
            let expression = x.update(effects);
            let update = Update::builder().set_key(key()).update_expression(expression);
            b.update(conditional!(update, table, condition, x))
        }
        Action::Put(image) => {
            let item = codec::encode(&w.item, image)?;
            b.put(conditional!(Put::builder().set_item(Some(item)), table, condition, x))
        }
        Action::Upsert(image) => {
            let expression = x.upsert(codec::encode(&w.item, image)?);
            let update = Update::builder().set_key(key()).update_expression(expression);
            b.update(conditional!(update, table, condition, x))
        }
        Action::Delete => b.delete(conditional!(Delete::builder().set_key(key()), table, condition, x)),
    };
    Ok(item.build())
}

/// An item's update on its own (see `dynamo::plain`); `None` when its action is not an update (only
/// puts and upserts can fail to encode, so an update never meets the error).
pub fn update(table: &str, w: &ItemWrite) -> Option<Update> {
    transact_item(table, w).ok()?.update
}

pub fn transact_items(table: &str, write: &Write) -> Result<Vec<TransactWriteItem>, StoreError> {
    write.items.iter().map(|w| transact_item(table, w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_render_with_placeholders() {
        let mut x = Expr::default();
        let c = x.conditions(&[
            Cond::Exists,
            Cond::Lt(Attr::TimesActivated, Attr::MaxActivations),
            Cond::Or(vec![Cond::Missing, !Cond::Contains(Attr::Blacklist, "hw".into())]),
            Cond::Eq(Attr::Enabled, Val::Bool(true)),
        ]);
        assert_eq!(
            c.as_deref(),
            Some(
                "(attribute_exists(PK)) AND (#0 < #1) AND ((attribute_not_exists(PK)) OR (NOT (contains(#2, :0)))) AND (#3 = :1)"
            )
        );
        assert_eq!(x.names.len(), 4);
        assert_eq!(x.values.len(), 2);
    }

    /// DynamoDB refuses any expression over 4 KB: a deactivation reporting the 100 features a file
    /// may carry (with the license's own counter) stays well within it, whichever way each counter
    /// goes, also when every counter starts a new period.
    #[test]
    fn the_largest_consumption_report_fits_the_expression_limits() {
        use crate::plan::{Charge, Counter, DeactivationPlan, LicenseAddr, WriteToken};
        use crate::time::Timestamp;
        let addr = LicenseAddr::Id {
            company: crate::ids::CompanyId::parse("c").unwrap(),
            product: crate::ids::ProductCode::parse("p").unwrap(),
            id: 1,
        };
        let counters = std::iter::once(Counter::Consumptions)
            .chain((0..100).map(|i| Counter::Feature(format!("a-feature-code-as-long-as-a-vendor-likes-{i}"))));
        let charge = |(i, counter): (usize, Counter)| {
            let b = i64::MAX - i as i64;
            let t = Some(Timestamp::from_millis(b));
            let stored = matches!(counter, Counter::Feature(_)).then_some(i % 2 == 0);
            // (at_most, at_least, period_start, period_read, restart)
            let kinds = [
                (Some(b), None, None, None, None),
                (None, Some(-b), None, None, None),
                (Some(-b), None, t, t, Some(-b)),
                (None, Some(b), t, None, None),
            ];
            let (at_most, at_least, period_start, period_read, restart) = kinds[i % 4];
            Charge {
                counter,
                amount: -b,
                at_most,
                at_least,
                stored,
                period_start,
                period_read,
                restart,
            }
        };
        for shift in 0..4 {
            let plan = DeactivationPlan {
                addr: addr.clone(),
                license_id: 1,
                hardware_id: crate::ids::HardwareId::parse("hw").unwrap(),
                device_activations: 1,
                release_slot: true,
                seat: None,
                at: Timestamp::from_millis(0),
                charges: counters
                    .clone()
                    .enumerate()
                    .map(|(i, c)| charge((i + shift, c)))
                    .collect(),
                once: None,
            };
            let write = plan.write(&WriteToken::new());
            let license = write.items.iter().find(|w| matches!(w.item, Item::License(_))).unwrap();
            let mut x = Expr::default();
            let condition = x.conditions(&license.conditions).unwrap();
            let Action::Update(effects) = &license.action else {
                panic!("an update")
            };
            let update = x.update(effects);
            for (what, expression) in [("condition", &condition), ("update", &update)] {
                assert!(expression.len() <= 3000, "{what}: {} bytes", expression.len());
                assert!(
                    operators(expression) <= 250,
                    "{what}: {} operators",
                    operators(expression)
                );
            }
        }
    }

    /// Operators and functions as DynamoDB counts them against its 300 per expression.
    fn operators(expression: &str) -> usize {
        const COUNTED: &[&str] = &[
            "AND",
            "OR",
            "NOT",
            "=",
            "<>",
            "<",
            "<=",
            ">",
            ">=",
            "BETWEEN",
            "IN",
            "attribute_exists",
            "attribute_not_exists",
            "contains",
            "begins_with",
            "size",
            "if_not_exists",
        ];
        expression
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
            .filter(|t| COUNTED.contains(t))
            .count()
    }

    #[test]
    fn a_name_used_twice_gets_one_placeholder() {
        let mut x = Expr::default();
        let u = x.update(&[
            Effect::Add(Attr::TimesActivated, 1),
            Effect::Set(Attr::LastSeenAt, Val::Str("t".into())),
        ]);
        let c = x.conditions(&[Cond::Gt(Attr::TimesActivated, 0)]);
        assert_eq!(u, "SET #1 = :1 ADD #0 :0");
        assert_eq!(c.as_deref(), Some("(#0 > :2)"));
    }
}
