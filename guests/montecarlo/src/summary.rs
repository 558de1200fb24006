//! [`Summary`] of simulated payoffs, its text form, and the [`Estimate`] it gives.

use crate::Params;

/// The two-sided 97.5% quantile of the standard normal distribution, `Φ⁻¹(0.975)`.
const Z_975: f64 = 1.959_963_984_540_054;

/// The sufficient statistics of a set of samples of the discounted payoff: their count,
/// sum and sum of squares. Summaries of disjoint sets of samples [merge](Summary::merge) by
/// addition, so slices can be simulated anywhere and combined in any order.
///
/// Its text form ([`to_text`](Summary::to_text)) is one line,
/// `n=<count> sum=<sum> sum_sq=<sum of squares>`, with the floats in their shortest exact
/// decimal form, so it reads back ([`from_text`](Summary::from_text)) to the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    /// Number of samples.
    pub n: u64,
    /// Sum of the samples.
    pub sum: f64,
    /// Sum of the squares of the samples.
    pub sum_sq: f64,
}

impl Summary {
    /// Adds one sample.
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
    }

    /// Adds the samples of `other` to these.
    pub fn merge(&mut self, other: &Summary) {
        self.n += other.n;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }

    /// The Monte Carlo estimate: the sample mean, its standard error `s/√n` (where `s²` is
    /// the unbiased sample variance) and the 95% confidence interval `mean ± 1.96·s/√n`
    /// (normal approximation).
    ///
    /// With `n = 0` every value is NaN; with `n = 1` the standard error and the interval are
    /// NaN (a single sample says nothing about the variance).
    pub fn estimate(&self) -> Estimate {
        let n = self.n as f64;
        let price = self.sum / n;
        // (Σx² − (Σx)²/n) / (n − 1), clamped at 0 against rounding when the samples are
        // (nearly) all equal.
        let variance = ((self.sum_sq - self.sum * price) / (n - 1.0)).max(0.0);
        let std_error = if self.n < 2 {
            f64::NAN
        } else {
            (variance / n).sqrt()
        };
        Estimate {
            price,
            std_error,
            ci95_low: price - Z_975 * std_error,
            ci95_high: price + Z_975 * std_error,
            n: self.n,
        }
    }

    /// The text form: `n=<n> sum=<sum> sum_sq=<sum_sq>` (no newline), floats written with
    /// `{:?}` (shortest decimal form that reads back to the same `f64`).
    pub fn to_text(&self) -> String {
        format!("n={} sum={:?} sum_sq={:?}", self.n, self.sum, self.sum_sq)
    }

    /// Reads the text form back: the three `key=value` pairs `n`, `sum`, `sum_sq`, each
    /// exactly once, in any order, separated by whitespace (surrounding whitespace, such as
    /// a final newline, is allowed). The error says what is wrong.
    pub fn from_text(text: &str) -> Result<Summary, String> {
        let (mut n, mut sum, mut sum_sq) = (None, None, None);
        for pair in text.split_whitespace() {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("bad summary: {pair:?} is not a key=value pair"))?;
            let duplicate = match key {
                "n" => n.replace(parse_value(key, value)?).is_some(),
                "sum" => sum.replace(parse_value(key, value)?).is_some(),
                "sum_sq" => sum_sq.replace(parse_value(key, value)?).is_some(),
                _ => {
                    return Err(format!(
                        "bad summary: unknown key {key:?} (expected n, sum and sum_sq)"
                    ));
                }
            };
            if duplicate {
                return Err(format!("bad summary: key {key:?} is given twice"));
            }
        }
        match (n, sum, sum_sq) {
            (Some(n), Some(sum), Some(sum_sq)) => Ok(Summary { n, sum, sum_sq }),
            _ => Err(format!(
                "bad summary: {text:?} lacks one of n, sum and sum_sq (expected \
                 `n=<count> sum=<float> sum_sq=<float>`)"
            )),
        }
    }
}

/// Parses the value of summary key `key`.
fn parse_value<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("bad summary: bad value for {key}: {value:?}"))
}

/// A Monte Carlo price estimate (see [`Summary::estimate`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The estimated price: the mean of the discounted payoffs.
    pub price: f64,
    /// The standard error of `price`.
    pub std_error: f64,
    /// Lower bound of the 95% confidence interval, `price − 1.96·std_error`.
    pub ci95_low: f64,
    /// Upper bound of the 95% confidence interval, `price + 1.96·std_error`.
    pub ci95_high: f64,
    /// Number of simulated paths.
    pub n: u64,
}

impl Estimate {
    /// The one-line report the pricer writes as its result (no newline), floats with 6
    /// decimals, the other fields from `params`:
    ///
    /// ```text
    /// price=10.459257 std_error=0.014743 ci95=[10.430361,10.488153] paths=1000000 slices=8 assets=1 kind=call
    /// ```
    pub fn report_line(&self, params: &Params) -> String {
        format!(
            "price={:.6} std_error={:.6} ci95=[{:.6},{:.6}] paths={} slices={} assets={} kind={}",
            self.price,
            self.std_error,
            self.ci95_low,
            self.ci95_high,
            self.n,
            params.slices,
            params.assets,
            params.kind
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn summary_of(samples: &[f64]) -> Summary {
        let mut s = Summary::default();
        for &x in samples {
            s.add(x);
        }
        s
    }

    #[test]
    fn estimate_of_known_samples() {
        // Mean 5, unbiased variance 32/7 ≈ 4.571, standard error √(32/7/8) ≈ 0.756.
        let e = summary_of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).estimate();
        assert_eq!(e.n, 8);
        assert_eq!(e.price, 5.0);
        let se = (32.0f64 / 7.0 / 8.0).sqrt();
        assert!((e.std_error - se).abs() < 1e-15);
        assert!((e.ci95_low - (5.0 - 1.959_963_984_540_054 * se)).abs() < 1e-14);
        assert!((e.ci95_high - (5.0 + 1.959_963_984_540_054 * se)).abs() < 1e-14);
        // Constant samples: (almost) zero variance, never negative (NaN) through rounding.
        for x in [0.1, 1.0 / 3.0, 123.456] {
            let e = summary_of(&[x; 1000]).estimate();
            assert!(e.std_error >= 0.0 && e.std_error < 1e-6, "{e:?}");
        }
        // Too few samples.
        assert!(summary_of(&[1.0]).estimate().std_error.is_nan());
        assert!(Summary::default().estimate().price.is_nan());
    }

    #[test]
    fn merge_adds() {
        let mut a = summary_of(&[1.0, 2.0]);
        a.merge(&summary_of(&[3.0]));
        assert_eq!(a, summary_of(&[1.0, 2.0, 3.0]));
        a.merge(&Summary::default());
        assert_eq!(a.n, 3);
    }

    #[test]
    fn text_round_trip() {
        let s = Summary {
            n: 125_000,
            sum: 1_306_322.123_456_789_1,
            sum_sq: 0.1 + 0.2,
        };
        assert_eq!(
            s.to_text(),
            "n=125000 sum=1306322.1234567892 sum_sq=0.30000000000000004"
        );
        assert_eq!(Summary::from_text(&s.to_text()).unwrap(), s);
        for sum in [0.0, 1e-300, 5e-324, 1.0 / 3.0, 1e300, f64::MAX] {
            let s = Summary {
                n: u64::MAX,
                sum,
                sum_sq: sum * 7.0,
            };
            let back = Summary::from_text(&s.to_text()).unwrap();
            assert_eq!(back.sum.to_bits(), s.sum.to_bits());
            assert_eq!(back.sum_sq.to_bits(), s.sum_sq.to_bits());
            assert_eq!(back.n, s.n);
        }
        // Any order, any whitespace.
        assert_eq!(
            Summary::from_text(" sum_sq=4.0\tsum=2 n=1\n").unwrap(),
            Summary {
                n: 1,
                sum: 2.0,
                sum_sq: 4.0
            }
        );
    }

    #[test]
    fn text_errors() {
        let err = |text: &str| Summary::from_text(text).unwrap_err();
        assert_eq!(
            err("n=1 sum=2"),
            "bad summary: \"n=1 sum=2\" lacks one of n, sum and sum_sq \
             (expected `n=<count> sum=<float> sum_sq=<float>`)"
        );
        assert!(err("").starts_with("bad summary: \"\" lacks one of"));
        assert_eq!(
            err("n=1 sum=2 sum_sq=x"),
            "bad summary: bad value for sum_sq: \"x\""
        );
        assert_eq!(
            err("n=-1 sum=2 sum_sq=4"),
            "bad summary: bad value for n: \"-1\""
        );
        assert_eq!(
            err("n=1 n=1 sum=2 sum_sq=4"),
            "bad summary: key \"n\" is given twice"
        );
        assert_eq!(
            err("n=1 sum=2 sum_sq=4 mean=2"),
            "bad summary: unknown key \"mean\" (expected n, sum and sum_sq)"
        );
        assert_eq!(
            err("price=10.45"),
            "bad summary: unknown key \"price\" (expected n, sum and sum_sq)"
        );
        assert_eq!(err("n 1"), "bad summary: \"n\" is not a key=value pair");
    }

    #[test]
    fn report_line_format() {
        let e = Estimate {
            price: 10.450_123_4,
            std_error: 0.014_702_2,
            ci95_low: 10.421_308_1,
            ci95_high: 10.478_938_7,
            n: 1_000_000,
        };
        let params = Params::parse("assets=3 slices=8 kind=put").unwrap();
        assert_eq!(
            e.report_line(&params),
            "price=10.450123 std_error=0.014702 ci95=[10.421308,10.478939] paths=1000000 \
             slices=8 assets=3 kind=put"
        );
    }
}
