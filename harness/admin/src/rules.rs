//! What a deploy must follow, as Redpanda's controller validates it
//! (`src/v/cluster/plugin_frontend.cc`, `plugin_frontend::validator::validate_mutation`). The broker answers with a
//! generic message and logs the reason; a harness host says both.

use crate::api::{ApiError, EnvVar};

pub const MAX_ENV_VARS: usize = 128;
pub const MAX_ENV_KEY_BYTES: usize = 128;
pub const MAX_ENV_VALUE_BYTES: usize = 2048;
pub const MAX_NAME_BYTES: usize = 128;
pub const MAX_OUTPUT_TOPICS: usize = 8;

fn control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7f)
}

/// At most 128 variables; keys of 1 to 128 bytes, without `=`, not
/// starting with `REDPANDA_`; values of 1 byte to 2 KiB; no control
/// characters anywhere.
pub fn check_environment(env: &[EnvVar]) -> Result<(), ApiError> {
    let refuse = |why: String| {
        Err(ApiError::bad_request(format!(
            "Invalid transform environment: {why}"
        )))
    };
    if env.len() > MAX_ENV_VARS {
        return refuse(format!("{} variables; at most {MAX_ENV_VARS}", env.len()));
    }
    for EnvVar { key, value } in env {
        if key.is_empty() {
            return refuse("an empty key".into());
        }
        if key.len() > MAX_ENV_KEY_BYTES {
            return refuse(format!(
                "key `{}…` is {} bytes; at most {MAX_ENV_KEY_BYTES}",
                key.chars().take(16).collect::<String>(),
                key.len()
            ));
        }
        if control(key) {
            return refuse(format!("key {key:?} holds a control character"));
        }
        if key.contains('=') {
            return refuse(format!("key `{key}` holds `=`"));
        }
        if key.starts_with("REDPANDA_") {
            return refuse(format!(
                "key `{key}`: variables starting with REDPANDA_ are reserved"
            ));
        }
        if value.is_empty() {
            return refuse(format!("`{key}` has an empty value"));
        }
        if value.len() > MAX_ENV_VALUE_BYTES {
            return refuse(format!(
                "`{key}` has a value of {} bytes; at most {MAX_ENV_VALUE_BYTES}",
                value.len()
            ));
        }
        if control(value) {
            return refuse(format!("`{key}` has a value with a control character"));
        }
    }
    Ok(())
}

/// 1 to 128 bytes, no control characters; nothing else is restricted.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let why = if name.is_empty() {
        "an empty name".to_string()
    } else if name.len() > MAX_NAME_BYTES {
        format!("the name is {} bytes; at most {MAX_NAME_BYTES}", name.len())
    } else if control(name) {
        format!("the name {name:?} holds a control character")
    } else {
        return Ok(());
    };
    Err(invalid_create(&why))
}

/// The outputs: 1 to 8, no topic twice, none equal to the input.
pub fn check_topics(input: &str, outputs: &[String]) -> Result<(), ApiError> {
    if outputs.is_empty() || outputs.len() > MAX_OUTPUT_TOPICS {
        return Err(invalid_create(&format!(
            "{} output topics; a transform has 1 to {MAX_OUTPUT_TOPICS}",
            outputs.len()
        )));
    }
    for (i, topic) in outputs.iter().enumerate() {
        if outputs[..i].contains(topic) {
            return Err(invalid_create(&format!(
                "output topic {topic} is named twice"
            )));
        }
        if topic == input {
            return Err(invalid_create(&format!(
                "output topic {topic} is the input topic: that is a cycle"
            )));
        }
    }
    Ok(())
}

pub(crate) fn invalid_create(why: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid create transform configuration: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, String)]) -> Vec<EnvVar> {
        pairs
            .iter()
            .map(|(k, v)| EnvVar {
                key: k.to_string(),
                value: v.clone(),
            })
            .collect()
    }

    /// The limits of `plugin_frontend.cc`, `validate_mutation`.
    #[test]
    fn environments_as_the_controller_validates_them() {
        let ok = |e: Vec<EnvVar>| check_environment(&e).is_ok();
        assert!(ok(env(&[("A", "b".into())])));
        let many: Vec<EnvVar> = (0..128)
            .map(|i| EnvVar {
                key: format!("K{i}"),
                value: "v".into(),
            })
            .collect();
        assert!(ok(many.clone()));
        let mut too_many = many;
        too_many.push(EnvVar {
            key: "K128".into(),
            value: "v".into(),
        });
        assert!(!ok(too_many));
        assert!(ok(env(&[(&"k".repeat(128), "v".into())])));
        assert!(!ok(env(&[(&"k".repeat(129), "v".into())])));
        assert!(ok(env(&[("K", "v".repeat(2048))])));
        assert!(!ok(env(&[("K", "v".repeat(2049))])));
        for bad in [
            env(&[("", "v".into())]),
            env(&[("A=B", "v".into())]),
            env(&[("REDPANDA_X", "v".into())]),
            env(&[("K", String::new())]),
            env(&[("K\u{1}", "v".into())]),
            env(&[("K", "a\nb".into())]),
        ] {
            let e = check_environment(&bad).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(
                e.message.starts_with("Invalid transform environment"),
                "{e}"
            );
        }
    }

    #[test]
    fn names_and_topics_as_the_controller_validates_them() {
        assert!(check_name(&"n".repeat(128)).is_ok());
        assert!(check_name("émojis and spaces 🚀").is_ok());
        for bad in [String::new(), "n".repeat(129), "a\tb".into()] {
            let e = check_name(&bad).unwrap_err();
            assert!(
                e.message
                    .starts_with("Invalid create transform configuration"),
                "{e}"
            );
        }
        let topics = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
        assert!(check_topics("in", &topics(8)).is_ok());
        assert!(check_topics("in", &topics(9)).is_err());
        assert!(check_topics("in", &[]).is_err());
        assert!(check_topics("in", &["a".into(), "a".into()]).is_err());
        assert!(check_topics("in", &["in".into()]).is_err());
    }
}
