//! A transform's deployment: from `transform.yaml` (as `rpk transform
//! deploy` reads it) and command-line flags, flags winning.

use std::collections::BTreeMap;
use std::path::Path;

use admin::{check_environment, check_name, check_topics, EnvVar};
use anyhow::{anyhow, bail, Context, Result};
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
    env.extend(flags.vars);
    let spec = TransformSpec {
        name: flags
            .name
            .or(file.name)
            .unwrap_or_else(|| default_name.to_string()),
        input_topic,
        output_topics,
        env: env.into_iter().collect(),
    };
    check(&spec)?;
    Ok(spec)
}

/// A deploy's rules (`admin::rules`, as Redpanda's controller has them),
/// for every command that takes a deployment: `run`, `test`, `validate`,
/// `bridge` and `up` refuse what a deploy would.
fn check(spec: &TransformSpec) -> Result<()> {
    let env: Vec<EnvVar> = spec
        .env
        .iter()
        .map(|(key, value)| EnvVar {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    check_name(&spec.name)
        .and_then(|()| check_topics(&spec.input_topic, &spec.output_topics))
        .and_then(|()| check_environment(&env))
        .map_err(|e| anyhow!(e.message))
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

    /// What a deploy refuses, `run` and `test` refuse too, with the same
    /// message (`plugin_frontend.cc`, `validate_mutation`).
    #[test]
    fn a_deploy_s_rules_hold_for_every_command() {
        let refused = |input: &str, outputs: &[&str], vars: &[(&str, &str)]| {
            let flags = Overrides {
                input_topic: Some(input.into()),
                output_topics: outputs.iter().map(|t| t.to_string()).collect(),
                vars: vars
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            };
            resolve(None, flags, "t").unwrap_err().to_string()
        };
        assert_eq!(
            refused("in", &["out"], &[("A", "")]),
            "Invalid transform environment: `A` has an empty value"
        );
        assert_eq!(
            refused("in", &["out", "in"], &[]),
            "Invalid create transform configuration: output topic in is the input topic: that is a cycle"
        );
        assert!(refused("in", &["out", "out"], &[]).contains("named twice"));
    }
}
