//! Samples, percentiles and the markdown tables the bench prints.

use std::time::Duration;

/// Latencies of one operation.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    values: Vec<Duration>,
}

impl Samples {
    /// The latencies timed by `tasks`, each task's in its order, the tasks' in the order they
    /// finish. At the first failure the rest are aborted (dropping the set aborts them); `who`
    /// names a task in the error when one panicked.
    pub async fn gather(
        mut tasks: tokio::task::JoinSet<anyhow::Result<Vec<Duration>>>,
        who: &str,
    ) -> anyhow::Result<Samples> {
        let mut out = Samples::default();
        while let Some(done) = tasks.join_next().await {
            for d in done.map_err(|e| anyhow::anyhow!("{who} task panicked: {e}"))?? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Records one latency.
    pub fn push(&mut self, d: Duration) {
        self.values.push(d);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there is no sample.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The `q`-quantile (0..=1) by nearest rank; zero without samples.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.values.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.values.clone();
        v.sort();
        let rank = (q * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    /// The median.
    pub fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    /// The sum of all samples.
    pub fn total(&self) -> Duration {
        self.values.iter().sum()
    }

    /// The largest sample.
    pub fn max(&self) -> Duration {
        self.values.iter().max().copied().unwrap_or_default()
    }
}

/// Milliseconds with a precision that suits the value.
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Seconds, two decimals.
pub fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// `a / b` as "12.3×", or "–" when `b` is zero.
pub fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        return "–".into();
    }
    let r = a.as_secs_f64() / b.as_secs_f64();
    if r < 10.0 {
        format!("{r:.2}×")
    } else {
        format!("{r:.1}×")
    }
}

/// A markdown table.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as markdown, columns padded so it also reads well as plain text.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![3; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = w - c.chars().count();
                s.push(' ');
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
                s.push_str(" |");
            }
            s.push('\n');
            s
        };
        let mut out = line(&self.header);
        out.push('|');
        for w in &width {
            out.push_str(&format!(" {} |", "-".repeat(*w)));
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut s = Samples::default();
        for v in 1..=100 {
            s.push(ms_(v));
        }
        assert_eq!(s.p50(), ms_(50));
        assert_eq!(s.p99(), ms_(99));
        assert_eq!(s.quantile(1.0), ms_(100));
        assert_eq!(s.total(), ms_(5050));
        let mut one = Samples::default();
        one.push(ms_(7));
        assert_eq!(one.p50(), ms_(7));
        assert_eq!(one.p99(), ms_(7));
        assert_eq!(Samples::default().p50(), Duration::ZERO);
    }

    #[test]
    fn formats() {
        assert_eq!(ms(Duration::from_micros(1234)), "1.23");
        assert_eq!(ms(Duration::from_micros(12345)), "12.3");
        assert_eq!(ratio(ms_(30), ms_(3)), "10.0×");
        assert_eq!(ratio(ms_(3), ms_(2)), "1.50×");
        assert_eq!(ratio(ms_(3), Duration::ZERO), "–");
        let mut t = Table::new(["a", "bb"]);
        t.row(["1", "2"]);
        assert_eq!(t.render(), "| a   | bb  |\n| --- | --- |\n| 1   | 2   |\n");
    }
}
