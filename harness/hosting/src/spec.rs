//! A transform's deployment: from `transform.yaml` (as `rpk transform
//! deploy` reads it) and command-line flags, flags winning.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use transform_host::TransformSpec;

/// The fields of rpk's `transform.yaml` that shape a deployment.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TransformYaml {
    pub name: Option<String>,
    pub input_topic: Option<String>,
    #[serde(default)]
    pub output_topics: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl TransformYaml {
    pub fn load(path: &Path) -> Result<TransformYaml> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        TransformYaml::parse(&text).with_context(|| format!("{} is not valid", path.display()))
    }

    pub fn parse(text: &str) -> Result<TransformYaml> {
        serde_yaml::from_str(text).context("a transform.yaml that rpk would not read")
    }
}

/// Flags that override or extend the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub name: Option<String>,
    pub input_topic: Option<String>,
    pub output_topics: Vec<String>,
    pub vars: Vec<(String, String)>,
}

/// Parses `KEY=VALUE`, as `rpk transform deploy --var` does.
pub fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

pub fn resolve(
    file: Option<TransformYaml>,
    flags: Overrides,
    default_name: &str,
) -> Result<TransformSpec> {
    let file = file.unwrap_or_default();
    let input_topic = flags
        .input_topic
        .or(file.input_topic)
        .context("no input topic: pass --input-topic or --config transform.yaml")?;
    let output_topics = if flags.output_topics.is_empty() {
        file.output_topics
    } else {
        flags.output_topics
    };
    if output_topics.is_empty() {
        bail!("no output topics: pass --output-topic (repeatable) or --config transform.yaml");
    }
    let mut env = file.env;
    for (k, v) in flags.vars {
        if k.starts_with("REDPANDA_") {
            bail!("--var {k}: variables starting with REDPANDA_ are reserved");
        }
        env.insert(k, v);
    }
    Ok(TransformSpec {
        name: flags
            .name
            .or(file.name)
            .unwrap_or_else(|| default_name.to_string()),
        input_topic,
        output_topics,
        env: env.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_and_are_checked() {
        let file = TransformYaml {
            input_topic: Some("logs".into()),
            output_topics: vec!["results".into()],
            env: [("WINDOW_SIZE".to_string(), "1m".to_string())].into(),
            ..Default::default()
        };
        let flags = Overrides {
            output_topics: vec!["a".into(), "b".into()],
            vars: vec![("WINDOW_SIZE".into(), "5m".into())],
            ..Default::default()
        };
        let spec = resolve(Some(file), flags, "t").unwrap();
        assert_eq!(spec.output_topics, ["a", "b"]);
        assert_eq!(spec.env, [("WINDOW_SIZE".to_string(), "5m".to_string())]);
        assert_eq!(spec.name, "t");
        let reserved = Overrides {
            input_topic: Some("in".into()),
            output_topics: vec!["out".into()],
            vars: vec![("REDPANDA_INPUT_TOPIC".into(), "x".into())],
            ..Default::default()
        };
        assert!(resolve(None, reserved, "t")
            .unwrap_err()
            .to_string()
            .contains("reserved"));
        assert!(resolve(None, Overrides::default(), "t")
            .unwrap_err()
            .to_string()
            .contains("--input-topic"));
        assert_eq!(parse_var("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_var("=x").is_err());
    }
}
