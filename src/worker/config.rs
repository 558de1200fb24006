//! Where the two gRPC channels live: ArmoniK's `ComputePlane__*Channel__*` keys, parsed.

use std::path::PathBuf;

/// Why a channel address cannot be used with its socket type.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// A TCP address that is not `http://host:port`.
    #[error("TCP address `{0}` is not of the form http://host:port")]
    BadTcpAddress(String),
    /// An empty unix socket path.
    #[error("the unix socket path is empty")]
    EmptyPath,
    /// An `http:` or `https:` address given with the unix socket type: the socket type was
    /// most likely left at its default. (A relative path `http:/...` is never what an
    /// operator means.)
    #[error("`{0}` is a URL, not a unix socket path (for TCP, set the socket type to Tcp)")]
    UrlForUnixSocket(String),
    /// Another URL scheme than `unix:` with the unix socket type, or `unix://` without an
    /// absolute path.
    #[error("`{0}` is not a unix socket path (a path, unix:PATH or unix:///absolute/path)")]
    NotAPath(String),
}

/// How a channel is carried: ArmoniK's `ComputePlane__*Channel__SocketType`, matched in any
/// case as its C# SDK does (`UnixDomainSocket`, and ArmoniK.Infra's `unixdomainsocket`; see
/// the contract's channel table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SocketType {
    /// A unix domain socket file: ArmoniK's default.
    #[value(name = "UnixDomainSocket", alias = "unix", alias = "uds")]
    UnixDomainSocket,
    /// TCP, at an `http://host:port` address.
    #[value(name = "Tcp")]
    Tcp,
}

/// One end of a gRPC channel between ArmoniK's polling agent and this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelAddress {
    /// A unix domain socket file (ArmoniK's default).
    Unix(PathBuf),
    /// A TCP endpoint, kept as the `http://host:port` URI ArmoniK writes.
    Tcp {
        /// The URI as configured.
        uri: String,
        /// The port, for the server side (which listens on every interface, as ArmoniK's
        /// SDK workers do).
        port: u16,
    },
}

impl ChannelAddress {
    /// Parses an address as ArmoniK configures it (`ComputePlane__*Channel__Address`): for a
    /// unix socket a path, also in gRPC's `unix:PATH` and `unix://PATH` forms.
    ///
    /// # Errors
    /// An empty path, a URL given for a unix socket, or a TCP address not of the form
    /// `http://host:port`.
    pub fn parse(address: &str, socket_type: SocketType) -> Result<Self, ChannelError> {
        match socket_type {
            SocketType::UnixDomainSocket => {
                // gRPC's own spellings of a unix socket, `unix:PATH` and `unix://ABSOLUTE_PATH`
                // (which this host writes in its log), the scheme in any case as URIs have it.
                let scheme = address
                    .split_once(':')
                    .map(|(scheme, _)| scheme.to_ascii_lowercase());
                let path = match scheme.as_deref() {
                    Some("unix") => {
                        let rest = &address["unix:".len()..];
                        match rest.strip_prefix("//") {
                            Some(absolute) if absolute.is_empty() || absolute.starts_with('/') => {
                                absolute
                            }
                            Some(_) => return Err(ChannelError::NotAPath(address.to_owned())),
                            None => rest,
                        }
                    }
                    Some("http" | "https") => {
                        return Err(ChannelError::UrlForUnixSocket(address.to_owned()));
                    }
                    // gRPC's other name schemes: none is a file.
                    Some("dns" | "ipv4" | "ipv6" | "unix-abstract" | "vsock" | "xds") => {
                        return Err(ChannelError::NotAPath(address.to_owned()));
                    }
                    _ if address.contains("://") => {
                        return Err(ChannelError::NotAPath(address.to_owned()));
                    }
                    _ => address,
                };
                if path.is_empty() {
                    return Err(ChannelError::EmptyPath);
                }
                Ok(Self::Unix(PathBuf::from(path)))
            }
            SocketType::Tcp => {
                let bad = || ChannelError::BadTcpAddress(address.to_owned());
                let scheme_ends = address
                    .get(..7)
                    .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
                    .ok_or_else(bad)?
                    .len();
                let authority = address[scheme_ends..].trim_end_matches('/');
                let (_, port) = authority.rsplit_once(':').ok_or_else(bad)?;
                let port = port.parse().map_err(|_| bad())?;
                Ok(Self::Tcp {
                    uri: format!("http://{authority}"),
                    port,
                })
            }
        }
    }

    /// The socket type that carries this address.
    pub fn socket_type(&self) -> SocketType {
        match self {
            Self::Unix(_) => SocketType::UnixDomainSocket,
            Self::Tcp { .. } => SocketType::Tcp,
        }
    }
}

impl std::fmt::Display for ChannelAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp { uri, .. } => f.write_str(uri),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_armonik_addresses() {
        assert_eq!(
            ChannelAddress::parse("/cache/armonik_worker.sock", SocketType::UnixDomainSocket).ok(),
            Some(ChannelAddress::Unix("/cache/armonik_worker.sock".into()))
        );
        assert_eq!(
            ChannelAddress::parse("HTTP://localhost:6666/", SocketType::Tcp).ok(),
            Some(ChannelAddress::Tcp {
                uri: "http://localhost:6666".into(),
                port: 6666
            })
        );
        // Each address of a list is refused with the error `expected` says.
        let refused = |socket_type, addresses: &[&str], expected: fn(&ChannelError) -> bool| {
            for address in addresses {
                let parsed = ChannelAddress::parse(address, socket_type);
                assert!(
                    parsed.as_ref().err().is_some_and(expected),
                    "{address}: {parsed:?}"
                );
            }
        };
        let tcp = [
            "localhost:6666",
            "http://localhost",
            "http://localhost:x",
            "/x.sock",
        ];
        refused(SocketType::Tcp, &tcp, |e| {
            matches!(e, ChannelError::BadTcpAddress(_))
        });
        let urls = [
            "http://localhost:6666",
            "https://agent:443",
            "HTTP://x:1",
            "http:/x",
        ];
        refused(SocketType::UnixDomainSocket, &urls, |e| {
            matches!(e, ChannelError::UrlForUnixSocket(_))
        });
        let not_paths = [
            "dns://agent:1",
            "dns:agent",
            "unix-abstract:x",
            "vsock:3:1",
            "unix://rel.sock",
            "ftp://x",
        ];
        refused(SocketType::UnixDomainSocket, &not_paths, |e| {
            matches!(e, ChannelError::NotAPath(_))
        });
        refused(
            SocketType::UnixDomainSocket,
            &["", "unix:", "unix://"],
            |e| matches!(e, ChannelError::EmptyPath),
        );
        // gRPC's spellings, and what this host logs (`Display`), read back.
        let socket = || Some(ChannelAddress::Unix("/cache/a.sock".into()));
        for spelling in [
            "/cache/a.sock",
            "unix:/cache/a.sock",
            "unix:///cache/a.sock",
            "UNIX:/cache/a.sock",
        ] {
            let address = ChannelAddress::parse(spelling, SocketType::UnixDomainSocket);
            assert_eq!(address.ok(), socket(), "{spelling}");
        }
        let logged = socket().map(|a| a.to_string()).unwrap_or_default();
        let address = ChannelAddress::parse(&logged, SocketType::UnixDomainSocket);
        assert_eq!(address.ok(), socket());
        // A relative path with a colon is still a path.
        assert_eq!(
            ChannelAddress::parse("sockets/a:b.sock", SocketType::UnixDomainSocket).ok(),
            Some(ChannelAddress::Unix("sockets/a:b.sock".into()))
        );
    }

    #[test]
    fn socket_types_take_armonik_spellings_in_any_case() {
        use clap::ValueEnum;
        for (spelling, expected) in [
            ("UnixDomainSocket", SocketType::UnixDomainSocket),
            ("unixdomainsocket", SocketType::UnixDomainSocket),
            ("uds", SocketType::UnixDomainSocket),
            ("Tcp", SocketType::Tcp),
            ("TCP", SocketType::Tcp),
        ] {
            assert_eq!(SocketType::from_str(spelling, true), Ok(expected));
        }
        assert!(SocketType::from_str("pipe", true).is_err());
    }
}
