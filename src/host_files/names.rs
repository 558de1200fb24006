//! Names a guest or a client chose, as the host may use them: one plain file name inside a
//! directory handle ([`plain_name`]), or mapped to one for the user's folders
//! ([`safe_file_name`]).

use std::io;

use sha2::{Digest, Sha256};

/// The longest name a Linux file system takes, in bytes.
const NAME_MAX: usize = 255;

/// Bytes of a mapped name kept when it is cut (see [`safe_file_name`]): with the `~` and
/// the 16-digit hash, and a `.` and a 36-character result id after it, well under
/// [`NAME_MAX`].
const MAPPED_NAME_CUT: usize = 180;
/// The longest mapped name left whole.
const MAPPED_NAME_MAX: usize = 200;

/// Checks that `name` (a result id, a cache key) is one plain file name: not empty, not `.`
/// or `..`, without `/` or NUL, at most 255 bytes. Anything else could name another place.
///
/// # Errors
/// `InvalidInput`, saying why.
pub fn plain_name(name: &str) -> io::Result<&str> {
    let why = if name.is_empty() {
        "is empty"
    } else if name == "." || name == ".." {
        "names a directory"
    } else if name.contains('/') {
        "contains `/`"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else if name.len() > NAME_MAX {
        "is longer than 255 bytes"
    } else {
        return Ok(name);
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("`{}` is not a plain file name: it {why}", shown(name)),
    ))
}

/// Bytes of a refused name echoed in its error: a guest may send a name as long as its memory,
/// and escaping it whole would cost the host several times that.
const SHOWN_MAX: usize = 64;

/// `name` as an error message shows it: escaped, and cut after [`SHOWN_MAX`] bytes with its
/// length said.
fn shown(name: &str) -> String {
    if name.len() <= SHOWN_MAX {
        return name.escape_debug().to_string();
    }
    let cut = (0..=SHOWN_MAX)
        .rev()
        .find(|&i| name.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}... ({} bytes)", name[..cut].escape_debug(), name.len())
}

/// The file name under which a result named `name` (chosen by a task or a client: any text)
/// is written to the user's folders (`run --outputs`, `--all-results`).
///
/// ASCII letters and digits, `-`, `_`, `.` and non-ASCII alphanumeric characters are kept;
/// every other byte of the name's UTF-8 (`/`, `%`, spaces, control characters, NUL...) is
/// written `%XX` (uppercase hex); a name that is exactly `.` or `..` becomes `%2E` or
/// `%2E%2E`. A mapped name longer than 200 bytes is cut to its first 180 bytes and followed
/// by `~` and the first 16 hex digits of the SHA-256 of the whole name. The mapping is
/// one-to-one, so distinct names never share a file; an empty name maps to an empty string
/// (callers add the result id).
pub fn safe_file_name(name: &str) -> String {
    if name == "." || name == ".." {
        return "%2E".repeat(name.len());
    }
    let mut mapped = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.')
            || (!c.is_ascii() && c.is_alphanumeric())
        {
            mapped.push(c);
        } else {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                mapped.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    if mapped.len() <= MAPPED_NAME_MAX {
        return mapped;
    }
    let mut cut = MAPPED_NAME_CUT;
    while !mapped.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}~{hash}", &mapped[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_pass() {
        assert!(plain_name("abc").is_ok());
        assert!(plain_name("a.b-c_d").is_ok());
        let long = "x".repeat(256);
        for name in ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\0b", &long] {
            assert!(plain_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn a_refused_name_is_echoed_cut_to_a_bounded_size() {
        // Control characters escape to six times their size: a name as long as a guest's
        // memory must not become a message several times that.
        let huge = format!("a/{}", "\u{1f}".repeat(1 << 20));
        let message = plain_name(&huge).expect_err("not plain").to_string();
        assert!(message.len() < 500, "{} bytes", message.len());
        assert!(
            message.contains(&format!("({} bytes)", huge.len())),
            "{message}"
        );
        // A multi-byte character across the cut is not split.
        let accents = format!("/{}", "é".repeat(100));
        let message = plain_name(&accents).expect_err("not plain").to_string();
        assert!(message.contains("éé... (201 bytes)"), "{message}");
    }

    #[test]
    fn mapped_names_are_plain_readable_and_distinct() {
        assert_eq!(safe_file_name("output"), "output");
        assert_eq!(safe_file_name("a/b"), "a%2Fb");
        assert_eq!(safe_file_name("../../tmp/n1"), "..%2F..%2Ftmp%2Fn1");
        assert_eq!(safe_file_name("/tmp/n2"), "%2Ftmp%2Fn2");
        assert_eq!(safe_file_name("a\0b"), "a%00b");
        assert_eq!(safe_file_name("%41"), "%2541");
        assert_eq!(safe_file_name("."), "%2E");
        assert_eq!(safe_file_name(".."), "%2E%2E");
        assert_eq!(safe_file_name("héllo wörld"), "héllo%20wörld");
        assert_eq!(safe_file_name(""), "");
        let long = "y".repeat(600);
        let mapped = safe_file_name(&long);
        assert_eq!(mapped.len(), 180 + 1 + 16);
        assert!(mapped.starts_with(&"y".repeat(180)));
        assert_ne!(mapped, safe_file_name(&"y".repeat(601)));
        let slashes = "/".repeat(300);
        assert!(safe_file_name(&slashes).len() <= MAPPED_NAME_MAX);
        for name in ["a/b", "x", "..", "%", &long, &slashes, "é/"] {
            let mapped = safe_file_name(name);
            assert!(plain_name(&mapped).is_ok(), "{name:?} -> {mapped:?}");
            assert!(!mapped.starts_with(".."), "{mapped}");
        }
        assert_ne!(safe_file_name("a%2Fb"), safe_file_name("a/b"));
    }
}
