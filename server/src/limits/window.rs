//! The rate-limit algorithm: a sliding window made of two fixed one-minute windows, the previous one weighted by
//! the part of it that still overlaps the last 60 s. Pure: the caller passes `now` (milliseconds) and owns the
//! state; the in-process limiter keeps it under a lock, the Redis script keeps the same two counts in Redis.
//!
//! Usage at `now`, in "scaled" units (counts times [`WINDOW_MS`], so every comparison is exact integer
//! arithmetic): `previous * (WINDOW_MS - elapsed) + current * WINDOW_MS`, where `elapsed` is the time since the
//! current window began.
//!
//! - Requests (`rpm`) are counted at admission: a request is admitted when usage plus itself stays within the
//!   limit, so no more than `limit` requests are ever admitted in any window, however many arrive at once.
//! - Tokens (`tpm`) are counted at settlement (a call's real usage): a request is admitted while usage is under the
//!   limit (LiteLLM's rule). The overshoot is bounded: requests admitted at once can each add one request's tokens.

/// One minute: the limits are per minute (`rpm`, `tpm`).
pub const WINDOW_MS: u64 = 60_000;

/// The counts of one limited quantity (requests or tokens) of one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    /// `now / WINDOW_MS` of the current window.
    index: u64,
    current: u64,
    previous: u64,
}

/// How much a request needs below the limit: a whole request, or just room for anything (tokens, whose amount is
/// known only at settlement).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Need {
    Requests(u64),
    AnyRoom,
}

impl Need {
    fn scaled(self) -> u128 {
        match self {
            Need::Requests(n) => u128::from(n) * u128::from(WINDOW_MS),
            Need::AnyRoom => 1,
        }
    }
}

impl Window {
    /// The window of `now` holding these counts (as the Redis script returns them).
    pub fn with_counts(now: u64, previous: u64, current: u64) -> Window {
        Window { index: now / WINDOW_MS, current, previous }
    }

    /// Moves to the window of `now`: the current count becomes the previous one, or both restart after a gap.
    pub fn roll(&mut self, now: u64) {
        let index = now / WINDOW_MS;
        if index == self.index {
            return;
        }
        self.previous = if index == self.index + 1 { self.current } else { 0 };
        self.current = 0;
        self.index = index;
    }

    fn scaled(&self, now: u64) -> u128 {
        let elapsed = now % WINDOW_MS;
        u128::from(self.previous) * u128::from(WINDOW_MS - elapsed) + u128::from(self.current) * u128::from(WINDOW_MS)
    }

    /// Whether `need` fits under `limit` at `now` (after [`Window::roll`]).
    pub fn fits(&self, now: u64, need: Need, limit: u64) -> bool {
        self.scaled(now) + need.scaled() <= u128::from(limit) * u128::from(WINDOW_MS)
    }

    pub fn add(&mut self, now: u64, n: u64) {
        self.roll(now);
        self.current = self.current.saturating_add(n);
    }

    /// Usage at `now` in whole units, rounded up (for `x-ratelimit-remaining-*`).
    pub fn used(&self, now: u64) -> u64 {
        let w = u128::from(WINDOW_MS);
        u64::try_from(self.scaled(now).div_ceil(w)).unwrap_or(u64::MAX)
    }

    /// Milliseconds from `now` until `need` fits under `limit` if nothing else arrives; 0 when it fits now. A need
    /// larger than the limit never fits: two windows, the longest the counts take to empty.
    pub fn wait_ms(&self, now: u64, need: Need, limit: u64) -> u64 {
        let w = i128::from(WINDOW_MS);
        let (prev, cur) = (i128::from(self.previous), i128::from(self.current));
        let elapsed = i128::from(now % WINDOW_MS);
        let cap = i128::from(limit) * w - need.scaled() as i128;
        // Within this window: prev * (w - elapsed - d) + cur * w <= cap.
        let room = cap - cur * w;
        if room >= 0 {
            let d = if prev == 0 { 0 } else { (w - elapsed - room / prev).max(0) };
            if d < w - elapsed {
                return d as u64;
            }
        }
        // In the next window the current count is the previous one: cur * (w - d') <= cap.
        if cap < 0 {
            return 2 * WINDOW_MS;
        }
        let d_next = if cur == 0 { 0 } else { (w - cap / cur).max(0) };
        (w - elapsed + d_next) as u64
    }

    /// Milliseconds until the current fixed window ends (`x-ratelimit-reset-*`: the counts then start to age out).
    pub fn reset_ms(now: u64) -> u64 {
        WINDOW_MS - now % WINDOW_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = WINDOW_MS;

    fn window(at: u64, previous: u64, current: u64) -> Window {
        Window { index: at / W, previous, current }
    }

    #[test]
    fn requests_fit_up_to_the_limit_and_not_one_more() {
        // (previous, current, now within the window, limit, fits one more request)
        let cases: &[(u64, u64, u64, u64, bool)] = &[
            (0, 0, 0, 10, true),
            (0, 9, 0, 10, true),
            (0, 10, 0, 10, false),
            (0, 10, W - 1, 10, false),
            (10, 0, 0, 10, false),     // the whole previous window still counts at its start
            (10, 0, W / 2, 10, true),  // half of it: 5 + 1 <= 10
            (10, 5, W / 2, 10, false), // 5 + 5 + 1 > 10
            (10, 4, W / 2, 10, true),  // 5 + 4 + 1 = 10
            (60, 0, 999, 60, false),   // 59.00095 + 1 > 60 (scaled exactly)
            (60, 0, 1000, 60, true),   // 59 + 1 <= 60
            (60, 0, 0, 60, false),
            (0, 0, 0, 0, false), // a zero limit admits nothing
        ];
        for &(previous, current, offset, limit, fits) in cases {
            let now = 5 * W + offset;
            let w = window(now, previous, current);
            assert_eq!(w.fits(now, Need::Requests(1), limit), fits, "{previous} {current} +{offset} /{limit}");
        }
    }

    #[test]
    fn tokens_fit_while_usage_is_under_the_limit() {
        let now = 3 * W;
        assert!(window(now, 0, 999).fits(now, Need::AnyRoom, 1000));
        assert!(!window(now, 0, 1000).fits(now, Need::AnyRoom, 1000));
        assert!(!window(now, 0, 5000).fits(now, Need::AnyRoom, 1000), "one big call overshoots; the next waits");
        assert!(window(now + W / 2, 1000, 499).fits(now + W / 2, Need::AnyRoom, 1000));
    }

    #[test]
    fn windows_roll_over_and_age_out() {
        let mut w = Window::default();
        w.add(10, 7);
        assert_eq!(w.used(10), 7);
        w.roll(W + 10);
        assert_eq!((w.previous, w.current), (7, 0), "the next minute carries the count as previous");
        assert_eq!(w.used(W + W / 2), 4, "half of 7, rounded up");
        w.roll(3 * W);
        assert_eq!((w.previous, w.current), (0, 0), "after a whole idle minute nothing counts");
        w.roll(3 * W + 5);
        assert_eq!(w.index, 3);
    }

    #[test]
    fn waits_are_exact_to_the_millisecond() {
        // (previous, current, now within the window, limit, wait in ms)
        let cases: &[(u64, u64, u64, u64, u64)] = &[
            (0, 3, 0, 10, 0),
            (0, 10, 0, 10, W + W / 10), // next window: 10 * (W - d) <= 9 W  ->  d = W / 10
            (0, 10, W - 1000, 10, 1000 + W / 10),
            (10, 5, W / 2, 10, W / 10), // this window: 10 * (W/2 - d) + 5 W <= 9 W  ->  d = W / 10
            (20, 0, 0, 10, W / 2 + W / 20),
            (0, 1, 0, 1, 2 * W), // a limit of 1: the end of the next window, when this count has aged out
            (0, 0, 0, 0, 2 * W), // never: reported as two windows
        ];
        for &(previous, current, offset, limit, want) in cases {
            let now = 7 * W + offset;
            let w = window(now, previous, current);
            let got = w.wait_ms(now, Need::Requests(1), limit);
            assert_eq!(got, want, "{previous} {current} +{offset} /{limit}");
            if limit > 0 {
                // The wait is the first moment it fits: it fits then, and not a millisecond before.
                let mut later = w;
                later.roll(now + got);
                assert!(later.fits(now + got, Need::Requests(1), limit), "fits after the wait");
                if got > 0 {
                    let mut before = w;
                    before.roll(now + got - 1);
                    assert!(!before.fits(now + got - 1, Need::Requests(1), limit), "not before");
                }
            }
        }
    }
}
