//! Who may drive the server. The server has no authentication and changes real memory, so two
//! checks stand between it and other web pages a browser on the same machine (or network) may
//! be showing:
//! - **DNS rebinding.** Every request must name this server: the `Host` (or the authority of an
//!   absolute-form target) is the bound address's IP literal and port, a `localhost` name when
//!   bound to loopback or to all addresses, or a name given with `--allow-host`. A page on
//!   `evil.example` whose name was re-pointed at this machine sends `Host: evil.example`.
//! - **Cross-site requests.** The state-changing routes (`/add`, `/rel`, `/gc`, `/reset`, GET
//!   included, as in the seed) refuse what a browser sends on behalf of another site: an
//!   `Origin` that is not this server, or `Sec-Fetch-Site: cross-site` / `same-site`. Clients
//!   that are not browsers send neither; the page's own requests are same-origin.
//!
//! Reading (`/`, `/stats`, `/metrics`) is open to any origin that names this server: it
//! changes nothing and, without CORS headers, another site cannot read the answer.

use std::net::{IpAddr, SocketAddr};

use hyper::{
    Version,
    header::{self, HeaderMap},
    http::uri::{Authority, Uri},
};

use super::errors::ApiError;

/// A name accepted in `Host` besides the bound address (`--allow-host NAME[:PORT]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lower case, without a trailing dot.
    name: String,
    /// `None`: any port.
    port: Option<u16>,
}

impl AllowedHost {
    /// Parses `NAME` or `NAME:PORT` (an IPv6 literal in brackets).
    pub fn parse(text: &str) -> Result<AllowedHost, String> {
        let bad = |why: &str| format!("{text:?} is not a host name with an optional port: {why}");
        let authority: Authority = text.parse().map_err(|_| bad("it does not parse"))?;
        if !plain(&authority) {
            return Err(bad("give NAME or NAME:PORT, e.g. memspike.lan:1112"));
        }
        Ok(AllowedHost {
            name: normalize(authority.host()),
            port: authority.port_u16(),
        })
    }
}

/// The checks, set up once for the bound address.
#[derive(Clone, Debug)]
pub struct Gate {
    bound: SocketAddr,
    allowed: Vec<AllowedHost>,
}

/// Whether an authority is `host` or `host:port` with a numeric port (the `http` crate also
/// accepts user information and ports that are not numbers).
fn plain(a: &Authority) -> bool {
    !a.host().is_empty()
        && !a.as_str().contains('@')
        && (a.as_str() == a.host() || a.port_u16().is_some())
}

/// `host` in lower case, without the trailing dot of a fully qualified name.
fn normalize(host: &str) -> String {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

/// The host and port an authority names (port 80 when it names none: the server speaks plain
/// HTTP).
fn host_port(a: &Authority) -> (String, u16) {
    (normalize(a.host()), a.port_u16().unwrap_or(80))
}

impl Gate {
    pub fn new(bound: SocketAddr, allowed: Vec<AllowedHost>) -> Gate {
        Gate { bound, allowed }
    }

    /// Checks one request: the name it addresses, then (for a route that changes the heap)
    /// whether a browser sent it for another site.
    pub fn check(
        &self,
        version: Version,
        uri: &Uri,
        headers: &HeaderMap,
        changes_state: bool,
    ) -> Result<(), ApiError> {
        let authority = self.authority(version, uri, headers)?;
        let Some(authority) = authority else {
            // HTTP/1.0 without Host: no browser sends that.
            return self.cross_site(headers, None, changes_state);
        };
        let (host, port) = host_port(&authority);
        if !self.names_us(&host, port) {
            return Err(ApiError::Forbidden(format!(
                "this server is {bound}, and the request names {authority:?}: requests must name \
                 it by its address{local} (this stops DNS rebinding); to accept another name, \
                 start memspike with --allow-host {host}",
                bound = self.bound,
                authority = authority.as_str(),
                local = if self.localhost_ok() {
                    " or as localhost"
                } else {
                    ""
                },
            )));
        }
        self.cross_site(headers, Some((&host, port)), changes_state)
    }

    /// The authority the request addresses: an absolute-form target's, else `Host`'s.
    fn authority(
        &self,
        version: Version,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<Authority>, ApiError> {
        if let Some(a) = uri.authority() {
            if uri.scheme_str().is_some_and(|s| s != "http") || !plain(a) {
                return Err(ApiError::Forbidden(format!(
                    "the target {uri} is not a plain http:// address of this server"
                )));
            }
            return Ok(Some(a.clone()));
        }
        let mut hosts = headers.get_all(header::HOST).iter();
        let (Some(host), None) = (hosts.next(), hosts.next()) else {
            let missing = headers.get(header::HOST).is_none();
            return match (missing, version) {
                (true, Version::HTTP_10 | Version::HTTP_09) => Ok(None),
                (true, _) => Err(ApiError::BadRequest(
                    "the Host header is missing: HTTP/1.1 requires it".into(),
                )),
                (false, _) => Err(ApiError::BadRequest(
                    "the Host header is given more than once".into(),
                )),
            };
        };
        let bad = || ApiError::BadRequest(format!("the Host header {host:?} is not host[:port]"));
        let authority = Authority::try_from(host.as_bytes()).map_err(|_| bad())?;
        if !plain(&authority) {
            return Err(bad());
        }
        Ok(Some(authority))
    }

    /// Whether localhost names reach this server (bound to loopback or to every address).
    fn localhost_ok(&self) -> bool {
        self.bound.ip().is_loopback() || self.bound.ip().is_unspecified()
    }

    fn names_us(&self, host: &str, port: u16) -> bool {
        let listed = self
            .allowed
            .iter()
            .any(|a| a.name == host && a.port.is_none_or(|p| p == port));
        if listed {
            return true;
        }
        if port != self.bound.port() {
            return false;
        }
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if let Ok(ip) = literal.unwrap_or(host).parse::<IpAddr>() {
            // A browser sends an IP literal only for a page at that address: no rebinding.
            let bound = self.bound.ip();
            return bound.is_unspecified() || ip == bound;
        }
        (host == "localhost" || host.ends_with(".localhost")) && self.localhost_ok()
    }

    /// Refuses a state-changing request a browser sent for another site.
    fn cross_site(
        &self,
        headers: &HeaderMap,
        ours: Option<(&str, u16)>,
        changes_state: bool,
    ) -> Result<(), ApiError> {
        if !changes_state {
            return Ok(());
        }
        let refuse = |why: String| {
            Err(ApiError::Forbidden(format!(
                "{why}: /add, /rel, /gc and /reset answer only this server's own page and \
                 clients that are not browsers (this stops cross-site request forgery)"
            )))
        };
        for site in headers.get_all("sec-fetch-site") {
            if matches!(site.as_bytes(), b"cross-site" | b"same-site") {
                return refuse(format!(
                    "the browser says another site sent this request (Sec-Fetch-Site: {})",
                    String::from_utf8_lossy(site.as_bytes())
                ));
            }
        }
        for origin in headers.get_all(header::ORIGIN) {
            let text = String::from_utf8_lossy(origin.as_bytes());
            let same = origin
                .to_str()
                .ok()
                .and_then(|o| o.parse::<Uri>().ok())
                .filter(|u| u.scheme_str() == Some("http"))
                .and_then(|u| u.authority().map(host_port))
                .zip(ours)
                .is_some_and(|((h, p), (our_h, our_p))| h == our_h && p == our_p);
            if !same {
                return refuse(format!("the request comes from another origin ({text})"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(bound: &str, allowed: &[&str]) -> Gate {
        let allowed = allowed
            .iter()
            .map(|a| AllowedHost::parse(a).unwrap())
            .collect();
        Gate::new(bound.parse().unwrap(), allowed)
    }

    fn host_ok(g: &Gate, host: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        g.check(Version::HTTP_11, &"/add".parse().unwrap(), &h, true)
            .is_ok()
    }

    #[test]
    fn the_bound_address_decides_which_names_are_ours() {
        let any = gate("0.0.0.0:1112", &[]);
        for ok in [
            "192.168.1.5:1112",
            "127.0.0.1:1112",
            "[::1]:1112",
            "localhost:1112",
        ] {
            assert!(host_ok(&any, ok), "{ok} on 0.0.0.0");
        }
        for no in [
            "192.168.1.5:80",
            "192.168.1.5",
            "memspike.lan:1112",
            "evil.example:1112",
        ] {
            assert!(!host_ok(&any, no), "{no} on 0.0.0.0");
        }
        let lan = gate("192.168.1.5:1112", &["memspike.lan", "Box.Lan.:8080"]);
        assert!(host_ok(&lan, "192.168.1.5:1112"));
        assert!(!host_ok(&lan, "127.0.0.1:1112"), "another literal");
        assert!(!host_ok(&lan, "localhost:1112"), "not loopback");
        assert!(host_ok(&lan, "MEMSPIKE.lan:1112"), "listed, any port");
        assert!(host_ok(&lan, "memspike.lan"), "listed, port 80");
        assert!(host_ok(&lan, "box.lan:8080"), "listed with its port");
        assert!(!host_ok(&lan, "box.lan:1112"), "listed with another port");
        let v6 = gate("[::1]:1112", &[]);
        assert!(host_ok(&v6, "[::1]:1112") && host_ok(&v6, "app.localhost:1112"));
        assert!(!host_ok(&v6, "127.0.0.1:1112"));
    }

    #[test]
    fn allowed_hosts_must_be_names_with_an_optional_port() {
        assert!(AllowedHost::parse("memspike.lan:1112").is_ok());
        assert!(AllowedHost::parse("[::1]").is_ok());
        for bad in ["", "user@host", "a b", "host:port", "http://host/"] {
            let e = AllowedHost::parse(bad).expect_err(bad);
            assert!(e.contains("NAME") || e.contains("parse"), "{bad}: {e}");
        }
    }
}
