//! The real Scaleway API recordings of `fixtures/scaleway-recordings/`
//! (go-vcr cassettes, see the README there), loaded for contract tests:
//! every interaction with its method, url, request body, response code,
//! headers and body.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The folder holding the cassettes.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/scaleway-recordings")
}

/// One recorded file.
#[derive(Debug, Clone)]
pub struct Cassette {
    /// Path relative to [`dir`], e.g. `scaleway-sdk-go/test-api-create-server.cassette.yaml`.
    pub name: String,
    pub interactions: Vec<Interaction>,
}

/// One request and the answer Scaleway gave.
#[derive(Debug, Clone)]
pub struct Interaction {
    pub method: String,
    /// The full url, `https://api.scaleway.com/...?...`.
    pub url: String,
    /// The path, without host and query.
    pub path: String,
    /// The query pairs, in order, percent-decoded.
    pub query: Vec<(String, String)>,
    /// The request body as sent (empty when none).
    pub request_body: String,
    pub request_headers: BTreeMap<String, Vec<String>>,
    pub code: u16,
    pub headers: BTreeMap<String, Vec<String>>,
    /// The response body as received (empty for a 204 or a 429).
    pub body: String,
}

impl Interaction {
    /// The first value of a response header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The first value of a request header, by case-insensitive name.
    pub fn request_header(&self, name: &str) -> Option<&str> {
        header(&self.request_headers, name)
    }

    /// The value of a query parameter.
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn header<'a>(headers: &'a BTreeMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

/// A path with its zone and ids replaced, to match a call with its
/// recorded counterparts: `/instance/v1/zones/{zone}/servers/{id}`,
/// `…/user_data/{key}`.
pub fn pattern(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut after_zones = false;
    for part in path.split('/') {
        let is_id = part.len() == 36 && part.chars().filter(|c| *c == '-').count() == 4;
        parts.push(if after_zones {
            "{zone}"
        } else if is_id {
            "{id}"
        } else {
            part
        });
        after_zones = part == "zones";
    }
    let joined = parts.join("/");
    match joined.split_once("/user_data/") {
        Some((server, _)) => format!("{server}/user_data/{{key}}"),
        None => joined,
    }
}

#[derive(Deserialize)]
struct RawCassette {
    #[serde(default)]
    interactions: Vec<RawInteraction>,
}

#[derive(Deserialize)]
struct RawInteraction {
    request: RawRequest,
    response: RawResponse,
}

#[derive(Deserialize)]
struct RawRequest {
    method: String,
    url: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Deserialize)]
struct RawResponse {
    code: u16,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    headers: Option<BTreeMap<String, Vec<String>>>,
}

/// Every cassette of [`dir`], sorted by name. Panics on an unreadable file:
/// a broken fixture must fail the test that loads it.
pub fn load_all() -> Vec<Cassette> {
    let root = dir();
    let mut names = Vec::new();
    for group in std::fs::read_dir(&root).unwrap() {
        let group = group.unwrap().path();
        if !group.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&group).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "yaml") {
                names.push(file.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    names.sort();
    names.into_iter().map(|n| load(&n)).collect()
}

/// One cassette, by its name relative to [`dir`].
pub fn load(name: &str) -> Cassette {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    let raw: RawCassette = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    Cassette {
        name: name.to_owned(),
        interactions: raw.interactions.into_iter().map(convert).collect(),
    }
}

fn convert(raw: RawInteraction) -> Interaction {
    let after_host = raw
        .request
        .url
        .split_once("://")
        .map_or(raw.request.url.as_str(), |(_, rest)| rest);
    let path_and_query = after_host.find('/').map_or("/", |i| &after_host[i..]);
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    Interaction {
        method: raw.request.method,
        path: path.to_owned(),
        query: query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect(),
        url: raw.request.url.clone(),
        request_body: raw.request.body.unwrap_or_default(),
        request_headers: raw.request.headers.unwrap_or_default(),
        code: raw.response.code,
        headers: raw.response.headers.unwrap_or_default(),
        body: raw.response.body.unwrap_or_default(),
    }
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cassette_loads_with_its_interactions() {
        let all = load_all();
        assert_eq!(
            all.len(),
            16,
            "{:?}",
            all.iter().map(|c| &c.name).collect::<Vec<_>>()
        );
        for c in &all {
            assert!(!c.interactions.is_empty(), "{}", c.name);
        }
        let list = load("scaleway-sdk-go/test-api-get-server-type.cassette.yaml");
        let first = &list.interactions[0];
        assert_eq!(first.method, "GET");
        assert_eq!(first.path, "/instance/v1/zones/fr-par-1/products/servers");
        assert_eq!(first.query_value("page"), Some("1"));
        assert_eq!(first.code, 200);
        assert_eq!(first.header("x-total-count"), Some("75"));
        assert!(first.body.starts_with("{\"servers\""));
    }

    #[test]
    fn patterns_hide_zones_ids_and_user_data_keys() {
        let id = "e73ba751-d501-46ac-8fcc-5d1d4c2886c4";
        assert_eq!(
            pattern(&format!(
                "/instance/v1/zones/fr-par-1/servers/{id}/user_data/cloud-init"
            )),
            "/instance/v1/zones/{zone}/servers/{id}/user_data/{key}"
        );
        assert_eq!(
            pattern("/marketplace/v2/local-images"),
            "/marketplace/v2/local-images"
        );
    }

    #[test]
    fn query_components_are_percent_decoded() {
        assert_eq!(decode("a%3Db+c"), "a=b c");
        assert_eq!(decode("100%"), "100%");
    }
}
