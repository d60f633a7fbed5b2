//! The Prometheus text exposition format (version 0.0.4): family headers, samples, and the
//! escaping of label values and help text (rule names and program names are data, and a
//! quote or a newline in one must not break the exposition).

use std::{borrow::Cow, fmt::Write as _};

use super::families::Family;

/// The exposition under construction.
#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

impl Text {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            out: String::with_capacity(bytes),
        }
    }

    /// `# HELP` and `# TYPE` of `family`: written even when no sample follows, so that every
    /// family the agent serves is visible from the first scrape.
    pub fn family(&mut self, family: &Family) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            self.out,
            "# HELP {name} {help}\n# TYPE {name} {kind}",
            name = family.name,
            help = escape_help(family.help),
            kind = family.kind.name(),
        );
    }

    /// One sample of `family`, with label values in the order of `family.labels`.
    pub fn sample(&mut self, family: &Family, values: &[&str], value: impl Value) {
        debug_assert_eq!(family.labels.len(), values.len(), "{}", family.name);
        self.sample_named(family.name, family.labels, values, value);
    }

    /// A sample of a metric named apart from its family (label names given).
    pub fn sample_named(
        &mut self,
        name: &str,
        labels: &[&str],
        values: &[&str],
        value: impl Value,
    ) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().zip(values).enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write(&mut self.out);
        self.out.push('\n');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample value: integers as they are, floats in decimal.
pub trait Value {
    fn write(&self, out: &mut String);
}

impl Value for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

/// A label value: `\`, `"` and a newline escaped as `\\`, `\"` and `\n`.
pub fn escape_label(value: &str) -> Cow<'_, str> {
    escape(value, true)
}

/// Help text: `\` and a newline escaped as `\\` and `\n` (quotes stay).
pub fn escape_help(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

fn escape(text: &str, quotes: bool) -> Cow<'_, str> {
    let special = |c: char| c == '\\' || c == '\n' || (quotes && c == '"');
    if !text.contains(special) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{super::families::FINDINGS, *};

    #[test]
    fn label_values_are_escaped() {
        let mut text = Text::default();
        text.sample(&FINDINGS, &["a\"b\\c\nd", "high"], 3);
        assert_eq!(
            text.finish(),
            "vigil_findings_total{rule=\"a\\\"b\\\\c\\nd\",severity=\"high\"} 3\n"
        );
        assert!(matches!(
            escape_label("plain-rule.name_1"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_help("a \"quoted\" \\ line\nnext"),
            "a \"quoted\" \\\\ line\\nnext"
        );
    }

    #[test]
    fn floats_are_decimal() {
        let mut text = Text::default();
        text.sample_named("x_seconds_total", &[], &[], 0.000_000_15_f64);
        assert_eq!(text.finish(), "x_seconds_total 0.00000015\n");
    }
}
