//! Rounding as the API contract defines it (Python's `round`), and the few
//! divisions that feed it. Every division here guards its zero denominator, so no
//! NaN or infinity can reach a response.

/// Rounds to `decimals` places, to nearest with ties to even, on the exact binary
/// value of `x`, exactly as Python's `round(x, decimals)`.
///
/// Rust's float formatting rounds the exact value half-to-even, so formatting and
/// parsing back is exact; `(x * 100.0).round() / 100.0` is not, because the
/// multiplication itself rounds (0.015 × 100 is exactly 1.5 as a float although
/// 0.015 is stored below 0.015).
pub fn round_dp(x: f64, decimals: usize) -> f64 {
    // Parsing what `format!` printed cannot fail for a finite float; NaN and the
    // infinities print as text that parses back to themselves.
    format!("{x:.decimals$}").parse::<f64>().unwrap_or(x)
}

/// `count / total × 100` rounded to 2 decimals, in Python's order of operations;
/// 0 when `total` is 0.
pub fn percentage(count: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    round_dp((count as f64 / total as f64) * 100.0, 2)
}

/// Mean of a sum of `unit`-scaled integers (1e6 for microseconds → seconds, 1e9 for
/// nano units), unrounded, with a single float division; `None` when `n` is 0.
pub fn scaled_mean(sum: i128, n: u64, unit: f64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    Some(sum as f64 / (n as f64 * unit))
}

/// Microseconds per second, as the divisor of [`scaled_mean`].
pub const SECONDS: f64 = 1e6;
/// Nano units per unit, as the divisor of [`scaled_mean`].
pub const NANOS: f64 = 1e9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_ties_go_to_even() {
        // 0.125 and 0.375 are exact in binary: true ties.
        assert_eq!(round_dp(0.125, 2), 0.12);
        assert_eq!(round_dp(0.375, 2), 0.38);
        assert_eq!(round_dp(0.5, 0), 0.0);
        assert_eq!(round_dp(1.5, 0), 2.0);
        assert_eq!(round_dp(2.5, 0), 2.0);
    }

    #[test]
    fn decimal_looking_ties_follow_the_binary_value() {
        // 2.675 is stored as 2.67499999999999982236431605997495353221893310546875.
        assert_eq!(round_dp(2.675, 2), 2.67);
        // 1.0005 is stored as 1.000499999999999989341858963598497211933135986328125.
        assert_eq!(round_dp(1.0005, 3), 1.0);
    }

    #[test]
    fn beats_multiply_round_divide() {
        // 0.015 is stored as 0.01499999999999999944..., so Python gives 0.01, but the
        // product 0.015 * 100.0 rounds to exactly 1.5, which `round` takes up to 2.
        let naive = (0.015_f64 * 100.0).round() / 100.0;
        assert_eq!(naive, 0.02);
        assert_eq!(round_dp(0.015, 2), 0.01);
    }

    #[test]
    fn negatives_round_symmetrically() {
        assert_eq!(round_dp(-0.125, 2), -0.12);
        assert_eq!(round_dp(-2.675, 2), -2.67);
    }

    #[test]
    fn percentage_guards_an_empty_total() {
        assert_eq!(percentage(0, 0), 0.0);
        // 1/3 = 0.333..., × 100 = 33.333... → 33.33.
        assert_eq!(percentage(1, 3), 33.33);
        // 2/3 × 100 = 66.666... → 66.67.
        assert_eq!(percentage(2, 3), 66.67);
        assert_eq!(percentage(3, 3), 100.0);
    }

    #[test]
    fn percentage_rounds_an_exact_tie_to_even() {
        // 1/8 × 100 = 12.5 exactly; 1/800 × 100 = 0.125 in exact maths, but the float
        // quotient 0.00125 is stored above it: 0.00125000000000000002602...; × 100
        // gives 0.125 exactly (the product rounds), so the result is the tie → 0.12.
        assert_eq!(percentage(1, 8), 12.5);
        assert_eq!(percentage(1, 800), 0.12);
    }

    #[test]
    fn scaled_mean_divides_once_and_guards_zero() {
        assert_eq!(scaled_mean(0, 0, SECONDS), None);
        // 3_000_000 µs over 2 samples = 1.5 s.
        assert_eq!(scaled_mean(3_000_000, 2, SECONDS), Some(1.5));
        // -1.5e9 nano over 3 = -0.5.
        assert_eq!(scaled_mean(-1_500_000_000, 3, NANOS), Some(-0.5));
    }
}
