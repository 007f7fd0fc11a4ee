//! The limits every schema boundary shares: how deeply a job's `input` or a
//! function's `output` may nest, and how large one message on a topic may be.
//!
//! They are enforced where data enters — the frontend for inputs, the executor for
//! outputs — so that whatever one service accepts, every later reader can decode:
//! serde_json refuses more than 128 levels, and the envelope around an input or an
//! output (job, spec, event) takes a few of them; librdkafka refuses to produce a
//! message above 1 000 000 bytes by default.

use serde_json::Value;

/// Most levels of arrays and objects inside a job's `input` or a function's `output`.
pub const MAX_VALUE_DEPTH: usize = 64;

/// Largest encoded message on the jobs or results topic (under librdkafka's default
/// `message.max.bytes`, with room for the key and headers).
pub const MAX_MESSAGE_BYTES: usize = 960_000;

/// Why a value or a message is past a shared limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("nested more than {MAX_VALUE_DEPTH} levels deep")]
    TooDeep,
    #[error("{0} bytes as a message; the limit is {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
}

/// Levels of arrays and objects in `value`: 0 for a scalar, 1 for `[1]`.
/// Stops counting past [`MAX_VALUE_DEPTH`] + 1 (iterative: no stack growth).
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        if deepest > MAX_VALUE_DEPTH {
            return deepest;
        }
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// Whether `value` nests at most [`MAX_VALUE_DEPTH`] levels.
pub fn check_depth(value: &Value) -> Result<(), LimitError> {
    if depth(value) > MAX_VALUE_DEPTH {
        Err(LimitError::TooDeep)
    } else {
        Ok(())
    }
}

/// Whether an encoded message of `len` bytes may go on a topic.
pub fn check_message_len(len: usize) -> Result<(), LimitError> {
    if len > MAX_MESSAGE_BYTES {
        Err(LimitError::TooLarge(len))
    } else {
        Ok(())
    }
}

/// A value nested `levels` deep (`[[…[0]…]]`), for tests at and past the limit.
pub fn nested(levels: usize) -> Value {
    (0..levels).fold(Value::from(0), |inner, _| Value::Array(vec![inner]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_containers_and_stops_past_the_limit() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([1, {"a": [2]}])), 3);
        assert_eq!(depth(&nested(MAX_VALUE_DEPTH)), MAX_VALUE_DEPTH);
        assert!(check_depth(&nested(MAX_VALUE_DEPTH)).is_ok());
        assert_eq!(check_depth(&nested(MAX_VALUE_DEPTH + 1)), Err(LimitError::TooDeep));
        assert_eq!(depth(&nested(120)), MAX_VALUE_DEPTH + 1);
    }

    #[test]
    fn a_value_at_the_depth_limit_decodes_inside_every_envelope() {
        // job → spec → input, and event → output, each add levels serde_json counts
        let job = json!({"id": 1, "spec": {"input": nested(MAX_VALUE_DEPTH)}});
        let event = json!({"kind": "finished", "output": nested(MAX_VALUE_DEPTH)});
        for message in [job, event] {
            let bytes = serde_json::to_vec(&message).unwrap();
            assert!(serde_json::from_slice::<Value>(&bytes).is_ok());
        }
        assert!(check_message_len(MAX_MESSAGE_BYTES).is_ok());
        assert_eq!(check_message_len(MAX_MESSAGE_BYTES + 1), Err(LimitError::TooLarge(MAX_MESSAGE_BYTES + 1)));
    }
}
