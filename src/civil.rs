//! Calendar arithmetic in UTC: days since 1970-01-01 ↔ proleptic Gregorian dates, after
//! Howard Hinnant's `days_from_civil` / `civil_from_days`
//! (<https://howardhinnant.github.io/date_algorithms.html>). One copy for every stage that
//! needs it: the JUnit `timestamp` reader, backfill's RFC 3339 times and the terminal
//! renderer. No time-zone data: offsets are applied by the callers.

/// Days since 1970-01-01 of the date `y-m-d` (month 1–12, day 1–31; not range-checked).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of the day `days` since 1970-01-01 (negative before it).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2026-11-26T14:26:54Z` (with `.mmm` when the milliseconds are not zero), UTC.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let frac = if milli == 0 {
        String::new()
    } else {
        format!(".{milli:03}")
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_703_214_052), "2026-11-26T14:26:54.052Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        for ms in [0i64, 1_795_703_214_000, 4_102_444_800_000] {
            let back = crate::read::junit::parse_timestamp(&rfc3339(ms)).unwrap();
            assert_eq!((back * 1000.0) as i64, ms);
        }
    }

    #[test]
    fn known_dates() {
        for (days, ymd) in [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (59, (1970, 3, 1)),
            (10_957, (2000, 1, 1)),
            (11_017, (2000, 3, 1)),
            (20_783, (2026, 11, 26)),
            (-719_468, (0, 3, 1)),
            (2_932_896, (9999, 12, 31)),
        ] {
            assert_eq!(civil_from_days(days), ymd, "{days}");
            assert_eq!(days_from_civil(ymd.0, ymd.1, ymd.2), days, "{ymd:?}");
        }
    }

    #[test]
    fn round_trips_every_day_over_eight_centuries() {
        let mut prev = civil_from_days(-200_000);
        for days in -199_999..200_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            // Consecutive days: the next day of the month, or the first of the next month.
            assert!(
                (y, m, d) == (prev.0, prev.1, prev.2 + 1)
                    || (d == 1 && ((y, m) == (prev.0, prev.1 + 1) || (y, m) == (prev.0 + 1, 1))),
                "{prev:?} -> {:?}",
                (y, m, d)
            );
            prev = (y, m, d);
        }
    }
}
