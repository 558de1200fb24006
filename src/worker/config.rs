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
    /// A URL given with the unix socket type: the socket type was most likely left at its
    /// default. (A relative path `http:/...` is never what an operator means.)
    #[error("`{0}` is a URL, not a unix socket path (for TCP, set the socket type to Tcp)")]
    UrlForUnixSocket(String),
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
    /// Parses an address as ArmoniK configures it (`ComputePlane__*Channel__Address`).
    ///
    /// # Errors
    /// An empty path, a URL given for a unix socket, or a TCP address not of the form
    /// `http://host:port`.
    pub fn parse(address: &str, socket_type: SocketType) -> Result<Self, ChannelError> {
        match socket_type {
            SocketType::UnixDomainSocket => {
                if address.is_empty() {
                    return Err(ChannelError::EmptyPath);
                }
                if address.contains("://") {
                    return Err(ChannelError::UrlForUnixSocket(address.to_owned()));
                }
                Ok(Self::Unix(PathBuf::from(address)))
            }
            SocketType::Tcp => {
                let bad = || ChannelError::BadTcpAddress(address.to_owned());
                let authority = address
                    .strip_prefix("http://")
                    .ok_or_else(bad)?
                    .trim_end_matches('/');
                let (_, port) = authority.rsplit_once(':').ok_or_else(bad)?;
                let port = port.parse().map_err(|_| bad())?;
                Ok(Self::Tcp {
                    uri: address.trim_end_matches('/').to_owned(),
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
            ChannelAddress::parse("http://localhost:6666/", SocketType::Tcp).ok(),
            Some(ChannelAddress::Tcp {
                uri: "http://localhost:6666".into(),
                port: 6666
            })
        );
        for tcp in [
            "localhost:6666",
            "http://localhost",
            "http://localhost:x",
            "/x.sock",
        ] {
            assert!(
                matches!(
                    ChannelAddress::parse(tcp, SocketType::Tcp),
                    Err(ChannelError::BadTcpAddress(_))
                ),
                "{tcp}"
            );
        }
        for url in [
            "http://localhost:6666",
            "https://agent:443",
            "unix:///x.sock",
        ] {
            assert!(
                matches!(
                    ChannelAddress::parse(url, SocketType::UnixDomainSocket),
                    Err(ChannelError::UrlForUnixSocket(_))
                ),
                "{url}"
            );
        }
        assert!(matches!(
            ChannelAddress::parse("", SocketType::UnixDomainSocket),
            Err(ChannelError::EmptyPath)
        ));
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
