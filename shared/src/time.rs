//! Instants as milliseconds since the Unix epoch, and the one date format the wire allows for them:
//! `YYYY-MM-DDTHH:MM:SS.sssZ` (clients re-derive `license_signature` from that exact string). Parsing
//! and formatting are the `time` crate's: catalog dates come from vendors, and a hand-written parser
//! of untrusted text is one slicing bug away from a panic.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

const MS_PER_DAY: i64 = 86_400_000;
const NS_PER_MS: i128 = 1_000_000;

/// `0000-01-01T00:00:00.000Z`, the earliest instant the wire format can write with a 4-digit year.
pub const MIN_MILLIS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z`, the latest.
pub const MAX_MILLIS: i64 = 253_402_300_799_999;

const WIRE: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
const DATE: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");
// A date-time with `T` or a space between date and time, and an optional fraction of any length
// (truncated to milliseconds); the three differ only in how the offset is written.
const ZULU: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day][first [T] [ ]][hour]:[minute]:[second][optional [.[subsecond]]]Z");
const LOCAL: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day][first [T] [ ]][hour]:[minute]:[second][optional [.[subsecond]]]");
const OFFSET: &[BorrowedFormatItem<'_>] = format_description!(
    "[year]-[month]-[day][first [T] [ ]][hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory]:[offset_minute]"
);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(d.as_millis() as i64),
            Err(e) => Self(-(e.duration().as_millis() as i64)),
        }
    }

    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floored): DynamoDB's TTL unit.
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn plus_days(self, days: i64) -> Self {
        Self(self.0.saturating_add(days.saturating_mul(MS_PER_DAY)))
    }

    /// Moved by `months` calendar months (UTC), the day clamped to the target month's length; unmoved
    /// where the result would leave what `time` represents.
    pub fn plus_months(self, months: i64) -> Self {
        let Some(d) = self.to_utc() else { return self };
        let total = i64::from(d.year()) * 12 + i64::from(u8::from(d.month())) - 1 + months;
        let (year, month) = (total.div_euclid(12), total.rem_euclid(12) + 1);
        let (Ok(year), Ok(month)) = (i32::try_from(year), time::Month::try_from(month as u8)) else {
            return self;
        };
        let day = d.day().min(month.length(year));
        Date::from_calendar_date(year, month, day)
            .ok()
            .and_then(|date| Self::from_utc(date.with_time(d.time()).assume_utc()))
            .unwrap_or(self)
    }

    /// The instant as a UTC date-time; `None` outside what `time` represents.
    pub fn to_utc(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * NS_PER_MS).ok()
    }

    /// A date-time to the millisecond, floored (not truncated toward zero), so a fraction before 1970
    /// keeps its millisecond.
    pub fn from_utc(t: OffsetDateTime) -> Option<Self> {
        i64::try_from(t.unix_timestamp_nanos().div_euclid(NS_PER_MS))
            .ok()
            .map(Self)
    }

    /// Parses the wire format and the looser ISO-8601 forms a vendor may write in a catalog:
    /// `2026-01-31`, `2026-01-31T10:00:00Z`, `2026-01-31T10:00:00.5+02:00`; no offset means UTC.
    /// Anything else, and instants outside years 0000–9999 (which the wire format cannot write), is
    /// `None`.
    pub fn parse_iso(s: &str) -> Option<Self> {
        // `time` reads an optional sign before the year; the wire format has none.
        if !s.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let instant = if let Ok(t) = PrimitiveDateTime::parse(s, ZULU) {
            t.assume_utc()
        } else if let Ok(t) = OffsetDateTime::parse(s, OFFSET) {
            t
        } else if let Ok(t) = PrimitiveDateTime::parse(s, LOCAL) {
            t.assume_utc()
        } else {
            Date::parse(s, DATE).ok()?.midnight().assume_utc()
        };
        let t = Self::from_utc(instant)?;
        (MIN_MILLIS..=MAX_MILLIS).contains(&t.0).then_some(t)
    }
}

impl fmt::Display for Timestamp {
    /// Always `YYYY-MM-DDTHH:MM:SS.sssZ`, UTC, three fraction digits. Instants outside years
    /// 0000–9999 (only reachable through arithmetic, never through parsing) print as the nearest end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let instant = Self(self.0.clamp(MIN_MILLIS, MAX_MILLIS)).to_utc().ok_or(fmt::Error)?;
        let text = instant.format(WIRE).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// On the wire an ISO 8601 date-time in UTC with milliseconds (`Display`).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_iso(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid date-time `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_three_fraction_digits() {
        assert_eq!(Timestamp::from_millis(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp::from_millis(1_700_000_000_123).to_string(),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            Timestamp::from_millis(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn parses_wire_and_catalog_forms() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        assert_eq!(Timestamp::parse_iso("2023-11-14T22:13:20.123Z"), Some(t));
        assert_eq!(Timestamp::parse_iso("2023-11-15T00:13:20.123+02:00"), Some(t));
        assert_eq!(
            Timestamp::parse_iso("2023-11-14").unwrap().to_string(),
            "2023-11-14T00:00:00.000Z"
        );
        assert_eq!(Timestamp::parse_iso("2023-02-29"), None);
        assert_eq!(Timestamp::parse_iso("2023-11-14T25:00:00Z"), None);
        assert_eq!(Timestamp::parse_iso("garbage"), None);
    }

    #[test]
    fn rejects_what_the_old_parser_panicked_on_and_other_near_misses() {
        for s in [
            "2023-11-14T22:13:20+0é00",
            "2023-11-14T22:13:20.5+0é:00",
            "2023-11-14Té2:13:20Z",
            "2023-11-14T22:13:20.é",
            "+2023-11-14",
            "-0001-01-01",
            "2023-11-14T22:13:60Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+2:00",
            "9999-12-31T23:59:59-01:00",
            "",
        ] {
            assert_eq!(Timestamp::parse_iso(s), None, "{s:?}");
        }
        assert_eq!(
            Timestamp::parse_iso("2023-11-14 22:13:20.1239")
                .map(|t| t.to_string())
                .as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(
            Timestamp::parse_iso("1969-12-31T23:59:59.9999Z"),
            Some(Timestamp::from_millis(-1))
        );
    }

    #[test]
    fn out_of_range_instants_print_as_the_nearest_end() {
        assert_eq!(Timestamp::from_millis(i64::MAX).to_string(), "9999-12-31T23:59:59.999Z");
        assert_eq!(Timestamp::from_millis(i64::MIN).to_string(), "0000-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp::from_millis(MIN_MILLIS).to_string(),
            "0000-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn round_trips() {
        for ms in [MIN_MILLIS, -86_400_001, 0, 1, MAX_MILLIS] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(Timestamp::parse_iso(&t.to_string()), Some(t));
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_iso_never_panics_on_any_string(s in "\\PC*") {
            let _ = Timestamp::parse_iso(&s);
        }

        /// Strings shaped like dates, with multi-byte characters where the digits and separators go:
        /// the inputs a byte-slicing parser trips over.
        #[test]
        fn parse_iso_never_panics_on_near_dates(
            s in "[0-9é+]{4}-[0-9é]{2}-[0-9]{2}([T é][0-9é]{2}:[0-9]{2}:[0-9é]{2}([.][0-9é]{0,4})?([Zz+é-][0-9é:]{0,6})?)?"
        ) {
            if let Some(t) = Timestamp::parse_iso(&s) {
                proptest::prop_assert!((MIN_MILLIS..=MAX_MILLIS).contains(&t.millis()));
            }
        }

        #[test]
        fn formatted_values_round_trip(ms in MIN_MILLIS..=MAX_MILLIS) {
            let t = Timestamp::from_millis(ms);
            let text = t.to_string();
            proptest::prop_assert_eq!(text.len(), 24, "{}", text);
            proptest::prop_assert_eq!(Timestamp::parse_iso(&text), Some(t));
            let back: Timestamp = serde_json::from_value(serde_json::to_value(t).unwrap()).unwrap();
            proptest::prop_assert_eq!(back, t);
        }

        /// The same instant written with an offset parses to the same millisecond.
        #[test]
        fn offsets_round_trip(ms in 0..=MAX_MILLIS - MS_PER_DAY, minutes in -(23 * 60 + 59)..=(23 * 60 + 59i64)) {
            let t = Timestamp::from_millis(ms);
            let local = Timestamp::from_millis(ms + minutes * 60_000).to_string();
            let sign = if minutes < 0 { '-' } else { '+' };
            let (h, m) = (minutes.abs() / 60, minutes.abs() % 60);
            let text = format!("{}{sign}{h:02}:{m:02}", local.trim_end_matches('Z'));
            proptest::prop_assert_eq!(Timestamp::parse_iso(&text), Some(t), "{}", text);
        }
    }
}
