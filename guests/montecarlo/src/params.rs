//! [`Params`]: what to price and how, with its `key=value` text form.

use std::fmt;
use std::str::FromStr;

/// The largest number of assets in the basket.
pub const MAX_ASSETS: u32 = 64;

/// The kind of option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// A call: pays `max(A − K, 0)`.
    #[default]
    Call,
    /// A put: pays `max(K − A, 0)`.
    Put,
}

impl Kind {
    /// The text form: `call` or `put`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Put => "put",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    /// Parses `call` or `put`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "call" => Ok(Self::Call),
            "put" => Ok(Self::Put),
            _ => Err(format!("bad value for kind: {s:?} (expected call or put)")),
        }
    }
}

/// What to price (a European option on the average of a basket of assets, see the
/// [crate documentation](crate)) and how (number of paths, slices, seed).
///
/// Its text form is whitespace-separated `key=value` pairs, one per field, as
/// [`Display`](fmt::Display) writes them and [`parse`](Params::parse) reads them back
/// exactly:
///
/// ```text
/// assets=1 spot=100 strike=100 rate=0.05 vol=0.2 corr=0.3 maturity=1 paths=1000000 slices=8 seed=42 kind=call
/// ```
///
/// (these are the defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Number of assets in the basket, 1 to [`MAX_ASSETS`].
    pub assets: u32,
    /// Spot price of each asset today, `S₀ > 0`.
    pub spot: f64,
    /// Strike of the option, `K ≥ 0`.
    pub strike: f64,
    /// Risk-free rate, continuously compounded, per year.
    pub rate: f64,
    /// Volatility of each asset, per √year, `σ > 0`.
    pub vol: f64,
    /// Correlation of each pair of assets, `0 ≤ ρ < 1` (irrelevant when `assets = 1`).
    pub corr: f64,
    /// Maturity in years, `T > 0`.
    pub maturity: f64,
    /// Total number of simulated paths, at least `slices`.
    pub paths: u64,
    /// Number of slices the paths are split into (one task each in the pricer), at least 1.
    pub slices: u32,
    /// Seed of the random streams: with the other fields, it determines every slice's result.
    pub seed: u64,
    /// Call or put.
    pub kind: Kind,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            assets: 1,
            spot: 100.0,
            strike: 100.0,
            rate: 0.05,
            vol: 0.2,
            corr: 0.3,
            maturity: 1.0,
            paths: 1_000_000,
            slices: 8,
            seed: 42,
            kind: Kind::Call,
        }
    }
}

/// The keys of the text form, in the order [`Display`](fmt::Display) writes them.
const KEYS: [&str; 11] = [
    "assets", "spot", "strike", "rate", "vol", "corr", "maturity", "paths", "slices", "seed",
    "kind",
];

impl Params {
    /// Parses whitespace-separated `key=value` pairs (keys: `assets spot strike rate vol
    /// corr maturity paths slices seed kind`, each at most once, in any order; missing keys
    /// take their [default](Params::default)), then [validates](Params::validate) the result.
    /// An empty string gives the defaults.
    ///
    /// The error says which pair is wrong and why.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut params = Self::default();
        let mut seen = [false; KEYS.len()];
        for pair in text.split_whitespace() {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not a key=value pair"))?;
            let index = KEYS
                .iter()
                .position(|k| *k == key)
                .ok_or_else(|| format!("unknown key {key:?} (the keys are {})", KEYS.join(", ")))?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(format!("key {key:?} is given twice"));
            }
            match key {
                "assets" => params.assets = parse_value(key, value, "an integer")?,
                "spot" => params.spot = parse_value(key, value, "a number")?,
                "strike" => params.strike = parse_value(key, value, "a number")?,
                "rate" => params.rate = parse_value(key, value, "a number")?,
                "vol" => params.vol = parse_value(key, value, "a number")?,
                "corr" => params.corr = parse_value(key, value, "a number")?,
                "maturity" => params.maturity = parse_value(key, value, "a number")?,
                "paths" => params.paths = parse_value(key, value, "an integer")?,
                "slices" => params.slices = parse_value(key, value, "an integer")?,
                "seed" => params.seed = parse_value(key, value, "an integer")?,
                _ => params.kind = value.parse()?,
            }
        }
        params.validate()?;
        Ok(params)
    }

    /// Checks that the parameters make sense: every number finite, `1 ≤ assets ≤ 64`,
    /// `spot > 0`, `strike ≥ 0`, `vol > 0`, `0 ≤ corr < 1`, `maturity > 0` and
    /// `paths ≥ slices ≥ 1`. [`parse`](Params::parse) calls it; call it yourself on
    /// parameters built in code.
    pub fn validate(&self) -> Result<(), String> {
        let floats = [
            ("spot", self.spot),
            ("strike", self.strike),
            ("rate", self.rate),
            ("vol", self.vol),
            ("corr", self.corr),
            ("maturity", self.maturity),
        ];
        if let Some((key, value)) = floats.iter().find(|(_, v)| !v.is_finite()) {
            return Err(format!("{key} must be a finite number (got {value})"));
        }
        if !(1..=MAX_ASSETS).contains(&self.assets) {
            return Err(format!(
                "assets must be between 1 and {MAX_ASSETS} (got {})",
                self.assets
            ));
        }
        if self.spot <= 0.0 {
            return Err(format!("spot must be > 0 (got {})", self.spot));
        }
        if self.strike < 0.0 {
            return Err(format!("strike must be >= 0 (got {})", self.strike));
        }
        if self.vol <= 0.0 {
            return Err(format!("vol must be > 0 (got {})", self.vol));
        }
        if !(0.0..1.0).contains(&self.corr) {
            return Err(format!("corr must be >= 0 and < 1 (got {})", self.corr));
        }
        if self.maturity <= 0.0 {
            return Err(format!("maturity must be > 0 (got {})", self.maturity));
        }
        if self.slices < 1 {
            return Err("slices must be at least 1 (got 0)".to_owned());
        }
        if self.paths < u64::from(self.slices) {
            return Err(format!(
                "paths must be at least slices (got paths={} slices={})",
                self.paths, self.slices
            ));
        }
        Ok(())
    }

    /// How many paths slice `index` simulates: `paths / slices`, plus one for the first
    /// `paths % slices` slices (0 when `index ≥ slices`). The slices' counts add up to
    /// `paths`.
    pub fn slice_paths(&self, index: u32) -> u64 {
        if self.slices == 0 || index >= self.slices {
            return 0;
        }
        let slices = u64::from(self.slices);
        self.paths / slices + u64::from(u64::from(index) < self.paths % slices)
    }
}

impl FromStr for Params {
    type Err = String;

    /// Same as [`Params::parse`].
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl fmt::Display for Params {
    /// Writes every field as `key=value`, separated by single spaces, in a form
    /// [`Params::parse`] reads back to equal parameters (floats in their shortest exact
    /// decimal form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "assets={} spot={} strike={} rate={} vol={} corr={} maturity={} paths={} slices={} seed={} kind={}",
            self.assets,
            self.spot,
            self.strike,
            self.rate,
            self.vol,
            self.corr,
            self.maturity,
            self.paths,
            self.slices,
            self.seed,
            self.kind
        )
    }
}

/// Parses the value of `key`, or says it is not `expected`.
fn parse_value<T: FromStr>(key: &str, value: &str, expected: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("bad value for {key}: {value:?} (expected {expected})"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert_eq!(Params::parse("").unwrap(), Params::default());
        assert_eq!(Params::parse(" \n\t ").unwrap(), Params::default());
        assert_eq!(
            Params::default().to_string(),
            "assets=1 spot=100 strike=100 rate=0.05 vol=0.2 corr=0.3 maturity=1 \
             paths=1000000 slices=8 seed=42 kind=call"
        );
    }

    #[test]
    fn parse_and_display_round_trip() {
        let p = Params::parse(
            "kind=put  seed=7\tassets=12 spot=98.7 strike=101.25 rate=-0.01 vol=0.35 \
             corr=0.6 maturity=0.5 paths=12345 slices=7",
        )
        .unwrap();
        assert_eq!(p.assets, 12);
        assert_eq!(p.spot, 98.7);
        assert_eq!(p.strike, 101.25);
        assert_eq!(p.rate, -0.01);
        assert_eq!(p.vol, 0.35);
        assert_eq!(p.corr, 0.6);
        assert_eq!(p.maturity, 0.5);
        assert_eq!(p.paths, 12345);
        assert_eq!(p.slices, 7);
        assert_eq!(p.seed, 7);
        assert_eq!(p.kind, Kind::Put);
        assert_eq!(Params::parse(&p.to_string()).unwrap(), p);
        assert_eq!(p.to_string().parse::<Params>().unwrap(), p);

        // Floats that have no short decimal form still round-trip exactly.
        let q = Params {
            spot: 100.0 / 3.0,
            vol: 0.1 + 0.2,
            corr: 1e-300,
            rate: 1.0 / 7.0,
            seed: u64::MAX,
            ..Params::default()
        };
        assert_eq!(Params::parse(&q.to_string()).unwrap(), q);
    }

    #[test]
    fn errors() {
        let err = |text: &str| Params::parse(text).unwrap_err();
        assert_eq!(
            err("color=blue"),
            "unknown key \"color\" (the keys are assets, spot, strike, rate, vol, corr, \
             maturity, paths, slices, seed, kind)"
        );
        assert_eq!(err("paths"), "\"paths\" is not a key=value pair");
        assert_eq!(
            err("paths=1e6"),
            "bad value for paths: \"1e6\" (expected an integer)"
        );
        assert_eq!(err("vol=x"), "bad value for vol: \"x\" (expected a number)");
        assert_eq!(err("vol="), "bad value for vol: \"\" (expected a number)");
        assert_eq!(
            err("kind=Call"),
            "bad value for kind: \"Call\" (expected call or put)"
        );
        assert_eq!(err("seed=1 seed=2"), "key \"seed\" is given twice");
        assert_eq!(err("vol=0"), "vol must be > 0 (got 0)");
        assert_eq!(err("vol=-0.1"), "vol must be > 0 (got -0.1)");
        assert_eq!(err("vol=inf"), "vol must be a finite number (got inf)");
        assert_eq!(err("rate=NaN"), "rate must be a finite number (got NaN)");
        assert_eq!(err("maturity=0"), "maturity must be > 0 (got 0)");
        assert_eq!(err("corr=1"), "corr must be >= 0 and < 1 (got 1)");
        assert_eq!(err("corr=-0.5"), "corr must be >= 0 and < 1 (got -0.5)");
        assert_eq!(err("assets=0"), "assets must be between 1 and 64 (got 0)");
        assert_eq!(err("assets=65"), "assets must be between 1 and 64 (got 65)");
        assert_eq!(
            err("assets=-1"),
            "bad value for assets: \"-1\" (expected an integer)"
        );
        assert_eq!(err("spot=0"), "spot must be > 0 (got 0)");
        assert_eq!(err("strike=-1"), "strike must be >= 0 (got -1)");
        assert_eq!(err("slices=0"), "slices must be at least 1 (got 0)");
        assert_eq!(
            err("paths=3 slices=4"),
            "paths must be at least slices (got paths=3 slices=4)"
        );
        // Limits are inclusive where documented.
        assert!(Params::parse("assets=64 corr=0 paths=4 slices=4 strike=0").is_ok());
    }

    #[test]
    fn slice_paths_split_evenly() {
        let p = Params::parse("paths=10 slices=4").unwrap();
        let counts: Vec<u64> = (0..5).map(|i| p.slice_paths(i)).collect();
        assert_eq!(counts, [3, 3, 2, 2, 0]);
        let p = Params::parse("paths=1000003 slices=7").unwrap();
        let total: u64 = (0..p.slices).map(|i| p.slice_paths(i)).sum();
        assert_eq!(total, p.paths);
        assert_eq!(Params::parse("paths=5 slices=5").unwrap().slice_paths(4), 1);
    }
}
