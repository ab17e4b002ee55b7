//! Blob ids as hex in the serialized form of git results (recordings read and write it).

pub(super) fn hex(id: &[u8; 20]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex<E: serde::de::Error>(s: &str) -> Result<[u8; 20], E> {
    let bytes = s.as_bytes();
    if bytes.len() != 40 {
        return Err(E::custom(format!("blob id {s:?} is not 40 hex digits")));
    }
    let mut out = [0u8; 20];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).map_err(E::custom)?;
        out[i] = u8::from_str_radix(text, 16)
            .map_err(|_| E::custom(format!("blob id {s:?} is not hex")))?;
    }
    Ok(out)
}

/// `(path, blob id)` lists with the ids as hex.
pub(crate) mod hex_entries {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        v: &[(String, [u8; 20])],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(&str, String)> = v
            .iter()
            .map(|(p, id)| (p.as_str(), super::hex(id)))
            .collect();
        pairs.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, [u8; 20])>, D::Error> {
        let pairs = Vec::<(String, String)>::deserialize(d)?;
        pairs
            .into_iter()
            .map(|(p, id)| Ok((p, super::unhex(&id)?)))
            .collect()
    }
}

/// [`crate::io::Blobs`] with the ids as hex.
pub(crate) mod hex_blobs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::super::Blobs;

    pub(crate) fn serialize<S: Serializer>(v: &Blobs, s: S) -> Result<S::Ok, S::Error> {
        let hexed: Vec<Vec<Option<String>>> = v
            .iter()
            .map(|c| c.iter().map(|w| w.as_ref().map(super::hex)).collect())
            .collect();
        hexed.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Blobs, D::Error> {
        let hexed = Vec::<Vec<Option<String>>>::deserialize(d)?;
        hexed
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .map(|w| w.map(|id| super::unhex(&id)).transpose())
                    .collect()
            })
            .collect()
    }
}
