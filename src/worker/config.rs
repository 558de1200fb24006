//! Where the two gRPC channels live: ArmoniK's `ComputePlane__*Channel__*` keys, parsed.

use std::path::PathBuf;

/// Why a channel address or socket type cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The socket type is neither a unix socket nor TCP.
    #[error("unknown socket type `{0}` (expected `UnixDomainSocket` or `Tcp`)")]
    UnknownSocketType(String),
    /// A TCP address that is not `http://host:port`.
    #[error("TCP address `{0}` is not of the form http://host:port")]
    BadTcpAddress(String),
    /// An empty unix socket path.
    #[error("the unix socket path is empty")]
    EmptyPath,
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
    /// Parses an address as ArmoniK configures it: the socket type is matched
    /// case-insensitively (`UnixDomainSocket`/`unixdomainsocket`, `Tcp`/`tcp`), like the C# SDK.
    pub fn parse(address: &str, socket_type: &str) -> Result<Self, ChannelError> {
        match socket_type.to_ascii_lowercase().as_str() {
            "unixdomainsocket" | "unix" | "uds" => {
                if address.is_empty() {
                    return Err(ChannelError::EmptyPath);
                }
                Ok(Self::Unix(PathBuf::from(address)))
            }
            "tcp" => {
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
            other => Err(ChannelError::UnknownSocketType(other.to_owned())),
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
    fn parses_armonik_spellings() {
        assert_eq!(
            ChannelAddress::parse("/cache/armonik_worker.sock", "unixdomainsocket").ok(),
            Some(ChannelAddress::Unix("/cache/armonik_worker.sock".into()))
        );
        assert_eq!(
            ChannelAddress::parse("http://localhost:6666", "Tcp").ok(),
            Some(ChannelAddress::Tcp {
                uri: "http://localhost:6666".into(),
                port: 6666
            })
        );
        assert!(matches!(
            ChannelAddress::parse("localhost:6666", "tcp"),
            Err(ChannelError::BadTcpAddress(_))
        ));
        assert!(matches!(
            ChannelAddress::parse("/x", "pipe"),
            Err(ChannelError::UnknownSocketType(_))
        ));
    }
}
