//! The query string the routes read: `bytes` (a size in the grammar of [`memspike_model::size`], from 1
//! to the machine's memory) and `format` (`json` or `text`; else from `Accept`). Parameters
//! are percent-decoded; one given twice is refused; others are ignored.

use hyper::header::{self, HeaderMap};

use super::errors::ApiError;
use memspike_model::size;

/// How an answer is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

/// The query parameters the routes read; others are ignored.
#[derive(Debug, Default)]
pub struct Query {
    bytes: Option<String>,
    format: Option<String>,
}

impl Query {
    /// Percent-decodes the query; a parameter given twice is an error.
    pub fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        let mut q = Query::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let slot = match name.as_ref() {
                "bytes" => &mut q.bytes,
                "format" => &mut q.format,
                _ => continue,
            };
            if slot.is_some() {
                return Err(ApiError::BadRequest(format!(
                    "`{name}` is given more than once"
                )));
            }
            *slot = Some(value.into_owned());
        }
        Ok(q)
    }

    /// `?format=` wins; else `Accept: text/plain` (before any `application/json`) asks for
    /// text; else JSON.
    pub fn format(&self, headers: &HeaderMap) -> Result<Format, ApiError> {
        match self.format.as_deref() {
            Some("json") => return Ok(Format::Json),
            Some("text") => return Ok(Format::Text),
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "`format` must be `json` or `text`, not {other:?}"
                )));
            }
            None => {}
        }
        let accept = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|item| item.split(';').next().unwrap_or("").trim());
        for media in accept {
            match media {
                "text/plain" => return Ok(Format::Text),
                "application/json" => return Ok(Format::Json),
                _ => {}
            }
        }
        Ok(Format::Json)
    }

    /// The `bytes` parameter: a size with an optional unit, from 1 to `max`.
    pub fn bytes(&self, max: u64) -> Result<u64, ApiError> {
        let bad = |m: String| ApiError::BadRequest(m);
        let raw = self
            .bytes
            .as_deref()
            .ok_or_else(|| bad("`bytes` is missing: give a size, e.g. ?bytes=1MiB".into()))?;
        if raw.trim().is_empty() {
            return Err(bad("`bytes` is empty: give a size, e.g. ?bytes=1MiB".into()));
        }
        let n = size::parse(raw).map_err(|e| bad(format!("`bytes`: {e}")))?;
        if n == 0 {
            return Err(bad("`bytes` must be at least 1".into()));
        }
        if n > max {
            return Err(bad(format!(
                "`bytes` = {n} is more than this machine's memory ({max} bytes, {})",
                size::human(max)
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn query_decodes_and_refuses_duplicates() {
        let q = Query::parse(Some("bytes=1%20MiB&x=1")).unwrap();
        assert_eq!(q.bytes(1 << 30).unwrap(), 1 << 20);
        assert!(Query::parse(Some("bytes=1&bytes=2")).is_err());
        let q = Query::parse(None).unwrap();
        assert!(q.bytes(1).unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn accept_picks_the_first_known_type() {
        let q = Query::default();
        let mut h = HeaderMap::new();
        assert_eq!(q.format(&h).unwrap(), Format::Json);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/plain;q=0.9, */*"),
        );
        assert_eq!(q.format(&h).unwrap(), Format::Text);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/plain"),
        );
        assert_eq!(q.format(&h).unwrap(), Format::Json);
    }
}
