//! Times where the CA keeps them as whole seconds since the Unix epoch: the request database,
//! the stores' JSON files, the numbers in messages and in the tools' JSON. The API speaks
//! [`SystemTime`]; this is the one place that converts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second X.509 can write (9999-12-31 23:59:59 UTC): later seconds stand for it.
const LAST_SECOND: u64 = 253_402_300_799;

/// Whole seconds since the Unix epoch; 0 before it.
pub(crate) fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The time `seconds` after the Unix epoch, at most the last second X.509 can write.
pub(crate) fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds.min(LAST_SECOND))
}

/// `t` to the whole second (as certificates and the database keep it); the epoch before it.
pub(crate) fn whole(t: SystemTime) -> SystemTime {
    at(seconds(t))
}

/// `days` days after `t`, to the whole second, at most the last second X.509 can write.
pub(crate) fn days_after(t: SystemTime, days: u32) -> SystemTime {
    at(seconds(t).saturating_add(u64::from(days) * 86_400))
}

/// A time as people read it in every message: `2027-12-05 20:09 UTC` (to the minute; a time
/// X.509 cannot write reads as the last one it can).
pub(crate) fn human(t: SystemTime) -> String {
    match der::DateTime::from_system_time(at(seconds(t))) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minutes()
        ),
        Err(_) => "9999-12-31 23:59 UTC".to_owned(),
    }
}

/// RFC 3339 in UTC to the second (`2027-12-05T20:09:00Z`), as `--json` writes times.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    match der::DateTime::from_system_time(at(seconds(t))) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minutes(),
            d.seconds()
        ),
        Err(_) => "9999-12-31T23:59:59Z".to_owned(),
    }
}

/// Serde (serialization only) for a time shown to scripts: RFC 3339 in UTC.
pub(crate) mod as_rfc3339 {
    use std::time::SystemTime;

    use serde::Serializer;

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }
}

/// As [`as_rfc3339`], for an optional time (`null` when absent).
pub(crate) mod option_as_rfc3339 {
    use std::time::SystemTime;

    use serde::Serializer;

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&super::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }
}

/// Serde for a time kept as whole seconds since the Unix epoch (`#[serde(with = ...)]`).
pub(crate) mod as_seconds {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(super::seconds(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        u64::deserialize(d).map(super::at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_trip_and_saturate() {
        assert_eq!(seconds(at(0)), 0);
        assert_eq!(seconds(at(1_795_363_447)), 1_795_363_447);
        assert_eq!(seconds(at(u64::MAX)), LAST_SECOND);
        assert_eq!(seconds(UNIX_EPOCH - Duration::from_secs(1)), 0);
        let t = at(1_795_363_447) + Duration::from_millis(999);
        assert_eq!(whole(t), at(1_795_363_447));
        assert_eq!(days_after(at(0), 2), at(172_800));
        assert_eq!(seconds(days_after(at(LAST_SECOND), u32::MAX)), LAST_SECOND);
    }

    #[test]
    fn human_times_read_as_utc_minutes() {
        assert_eq!(human(at(0)), "1970-01-01 00:00 UTC");
        assert_eq!(human(at(1_828_037_340)), "2027-12-05 20:09 UTC");
        assert_eq!(human(at(LAST_SECOND)), "9999-12-31 23:59 UTC");
        assert_eq!(rfc3339(at(1_828_037_340)), "2027-12-05T20:09:00Z");
    }
}
