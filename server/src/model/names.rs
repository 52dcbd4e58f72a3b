//! Name rules: interface names (the kernel's IFNAMSIZ rules) and object names (namespaces,
//! networks: file names under the netns directory).
//!
//! Both are checked when a request arrives, so a name the kernel would refuse, or one that
//! could escape the netns directory, is INVALID_ARGUMENT with a message that says what to
//! use, instead of a reconcile that fails later.

use super::Invalid;

/// The kernel's limit on an interface name, in bytes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// The limit on an object name (namespace, network), in bytes.
pub const OBJECT_NAME_MAX: usize = 64;

/// Checks an interface name as the kernel would (`dev_valid_name`: 1 to 15 bytes, not "." or
/// "..", no '/', ':' or white space), so a bad name is refused up front rather than failing
/// inside a reconcile, and more strictly where the kernel's rules are not enough: ASCII only
/// (the kernel takes any other byte, then tools print it mangled; the issue saw EINVAL
/// retried forever), no '%' (the kernel reads "eth%d" as a template and picks a name of its
/// own, which weft would then never find), no leading '-' (`ip link show -x`).
pub fn check_ifname(field: &str, name: &str) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err(Invalid::new(field, "an interface name is required"));
    }
    if name.len() > IFNAME_MAX {
        return Err(Invalid::new(
            field,
            format!(
                "interface name {name:?} is {} bytes; the kernel allows at most {IFNAME_MAX}",
                name.len()
            ),
        ));
    }
    if name == "." || name == ".." {
        return Err(Invalid::new(
            field,
            format!("{name:?} is not a valid interface name"),
        ));
    }
    if let Some(c) = name.chars().find(|c| {
        !c.is_ascii() || matches!(c, '/' | ':' | '%') || c.is_whitespace() || c.is_control()
    }) {
        return Err(Invalid::new(
            field,
            format!(
                "interface name {name:?} contains {c:?}; use ASCII letters, digits, '-', '_' or '.'"
            ),
        ));
    }
    if name.starts_with('-') {
        return Err(Invalid::new(
            field,
            format!(
                "interface name {name:?} starts with '-', which `ip` reads as an option; start with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// Checks an object name: 1 to 64 bytes of ASCII letters, digits, '.', '_' and '-', not starting
/// with '.' (it becomes a file name under the netns directory) or '-' (`ip netns exec -rf`
/// and a shell would take it for an option).
pub fn check_object_name(field: &str, name: &str) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err(Invalid::new(field, "a name is required"));
    }
    if name.len() > OBJECT_NAME_MAX {
        return Err(Invalid::new(
            field,
            format!(
                "name is {} bytes; at most {OBJECT_NAME_MAX} are allowed",
                name.len()
            ),
        ));
    }
    if let Some(first @ ('.' | '-')) = name.chars().next() {
        let why = if first == '-' {
            "a shell or `ip netns` would read it as an option"
        } else {
            "it would be a hidden file, or a path"
        };
        return Err(Invalid::new(
            field,
            format!(
                "name {name:?} must not start with {first:?} ({why}); start with a letter, digit or '_'"
            ),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Invalid::new(
            field,
            format!("name {name:?} contains {c:?}; use ASCII letters, digits, '.', '_' or '-'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Interface and object name rules, at their limits.

    use super::*;

    /// Interface names follow the kernel's rules: 1 to 15 bytes, no "/", ":" or white
    /// space, not "..".
    #[test]
    fn ifname_rules_match_the_kernel() {
        assert!(check_ifname("n", "veth1").is_ok());
        assert!(check_ifname("n", "a23456789012345").is_ok());
        assert!(
            check_ifname("n", "a234567890123456")
                .unwrap_err()
                .problem
                .contains("at most 15")
        );
        assert!(check_ifname("n", "").is_err());
        assert!(check_ifname("n", "a/b").is_err());
        assert!(check_ifname("n", "a:b").is_err());
        assert!(check_ifname("n", "a b").is_err());
        assert!(check_ifname("n", "..").is_err());
        assert!(check_ifname("n", ".").is_err());
        assert!(check_ifname("n", "a\tb").is_err());
        let e = check_ifname("n", "vé0").unwrap_err();
        assert_eq!(e.field, "n");
        assert!(e.problem.contains("ASCII"), "{e}");
        assert!(
            check_ifname("n", "br\u{200b}").is_err(),
            "a zero-width space"
        );
        assert!(
            check_ifname("n", "eth%d").is_err(),
            "a kernel name template"
        );
        assert!(
            check_ifname("n", "-rf")
                .unwrap_err()
                .problem
                .contains("option")
        );
        assert!(check_ifname("n", "a-b_c.d").is_ok());
    }

    /// Object names are safe as file names under the netns directory: not empty, no "/", no
    /// leading ".", at most 64 characters.
    #[test]
    fn object_names_are_safe_file_names() {
        assert!(check_object_name("n", "ns-1.a_b").is_ok());
        assert!(check_object_name("n", "").is_err());
        assert!(check_object_name("n", "a/b").is_err());
        assert!(check_object_name("n", ".hidden").is_err());
        assert!(check_object_name("n", &"x".repeat(65)).is_err());
        let e = check_object_name("namespace.name", "-rf").unwrap_err();
        assert_eq!(
            e.to_string(),
            "namespace.name: name \"-rf\" must not start with '-' (a shell or `ip netns` \
             would read it as an option); start with a letter, digit or '_'"
        );
        assert!(check_object_name("n", "-").is_err());
        assert!(check_object_name("n", "a b").is_err());
        assert!(check_object_name("n", "a;rm").is_err());
        assert!(check_object_name("n", "näme").is_err());
        assert!(check_object_name("n", "_a-1").is_ok());
        assert!(check_object_name("n", "a-").is_ok());
    }
}
