//! Lists from an agent, refused while they are parsed once they hold more
//! than a capture may: a hostile agent cannot hand the report a hundred
//! thousand packets to pair (the reply line alone may be 16 MiB).

use serde::Deserialize;

/// The most packets or state changes one capture keeps, and the most the
/// orchestrator accepts from an agent.
pub const MAX_RECORDS: usize = 10_000;

/// A list of at most [`MAX_RECORDS`] items, for `#[serde(deserialize_with)]`.
pub fn at_most_max_records<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_RECORDS} records")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX_RECORDS {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_RECORDS} records in one capture"
                    )));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Bounded(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct CaptureRecord {
        #[serde(deserialize_with = "at_most_max_records")]
        #[allow(dead_code)]
        packets: Vec<serde_json::Value>,
    }

    #[test]
    fn a_record_with_more_than_the_cap_is_refused_when_parsed() {
        let packet = r#"{"t_us":1,"outgoing":true,"src":"10.0.0.1","dst":"10.0.0.2","sport":1,"dport":2,"flags":"ACK","seq":1,"ack":1,"len":0}"#;
        let many = |n: usize| format!(r#"{{"packets":[{}]}}"#, vec![packet; n].join(","));
        assert!(serde_json::from_str::<CaptureRecord>(&many(MAX_RECORDS)).is_ok());
        let error = serde_json::from_str::<CaptureRecord>(&many(MAX_RECORDS + 1)).unwrap_err();
        assert!(
            error.to_string().contains("more than 10000 records"),
            "{error}"
        );
    }
}
