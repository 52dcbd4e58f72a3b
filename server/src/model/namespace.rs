//! The Namespace object: a named network namespace weft creates, or one it adopts.
//!
//! A created namespace is a bind mount under the netns directory named after the object, as
//! `ip netns add` makes it; an adopted one is an existing file (`/proc/<pid>/ns/net`, a
//! container runtime's netns file) that weft uses but never deletes.

use std::path::PathBuf;

use super::{Invalid, Labels, Refusal, labels::check_labels, names::check_object_name};

/// What the kernel and the store say about the namespace a CreateNamespace asks to adopt,
/// compared by identity (the nsfs inode), never by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdoptFacts {
    /// It is the host namespace weftd manages (`--host-netns`, or weftd's own).
    pub is_host: bool,
    /// It is the namespace weftd itself runs in.
    pub is_weftd_own: bool,
    /// weft already manages it under this name (created or adopted).
    pub managed_as: Option<String>,
}

/// The desired state of a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceSpec {
    /// Unique name; the file name under the netns directory.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Adopted namespace file; None means weft creates `<netns_dir>/<name>`.
    pub adopted_path: Option<PathBuf>,
}

impl NamespaceSpec {
    /// Checks everything that can be checked without the store or the kernel.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_object_name("namespace.name", &self.name)?;
        check_labels("namespace.labels", &self.labels)?;
        if let Some(p) = &self.adopted_path
            && !p.is_absolute()
        {
            return Err(Invalid::new(
                "namespace.path",
                format!("{} must be an absolute path", p.display()),
            ));
        }
        Ok(())
    }

    /// Whether the namespace at `adopted_path` may be adopted, given what is known of it:
    /// FAILED_PRECONDITION, saying why, for the host namespace (weft acts there already, as
    /// namespace ""; deleting links "in" an adopted copy would touch the host), weftd's own
    /// namespace, and a namespace weft already manages under another name (two objects for
    /// one namespace would fight over its interfaces). The same name is left to the store,
    /// which answers ALREADY_EXISTS.
    pub fn check_adoption(&self, facts: &AdoptFacts) -> Result<(), Refusal> {
        let Some(path) = &self.adopted_path else {
            return Ok(());
        };
        let path = path.display();
        let why = if facts.is_host {
            "the host namespace weftd manages; weft acts there already (namespace \"\" in a \
             request), so it cannot be adopted"
                .to_string()
        } else if facts.is_weftd_own {
            "the namespace weftd itself runs in; adopting it would let requests change weftd's \
             own interfaces"
                .to_string()
        } else {
            match &facts.managed_as {
                Some(other) if *other != self.name => format!(
                    "the namespace weft already manages as {other:?}; use that name instead of \
                     adopting it twice"
                ),
                _ => return Ok(()),
            }
        };
        Err(Refusal::FailedPrecondition(format!(
            "namespace.path: {path} is {why}"
        )))
    }
}

#[cfg(test)]
mod tests {
    //! The adoption rules, one fact at a time.

    use super::*;

    /// Adopting `path` as `name`.
    fn adopt(name: &str, path: &str) -> NamespaceSpec {
        NamespaceSpec {
            name: name.into(),
            labels: Labels::new(),
            adopted_path: Some(path.into()),
        }
    }

    /// The host, weftd's own and a namespace managed under another name are refused, each
    /// saying why; anything else, or the same name (the store's to refuse), passes.
    #[test]
    fn adoption_is_refused_for_what_weft_manages_already() {
        let s = adopt("x", "/proc/1/ns/net");
        let host = AdoptFacts {
            is_host: true,
            is_weftd_own: true,
            ..Default::default()
        };
        let Err(Refusal::FailedPrecondition(m)) = s.check_adoption(&host) else {
            panic!("host adopted")
        };
        assert!(
            m.starts_with("namespace.path: /proc/1/ns/net is the host namespace"),
            "{m}"
        );
        let own = AdoptFacts {
            is_weftd_own: true,
            ..Default::default()
        };
        let Err(Refusal::FailedPrecondition(m)) = s.check_adoption(&own) else {
            panic!("weftd's own adopted")
        };
        assert!(m.contains("weftd itself runs in"), "{m}");
        let managed = AdoptFacts {
            managed_as: Some("web".into()),
            ..Default::default()
        };
        let Err(Refusal::FailedPrecondition(m)) = s.check_adoption(&managed) else {
            panic!("managed twice")
        };
        assert!(m.contains("already manages as \"web\""), "{m}");
        assert!(adopt("web", "/p").check_adoption(&managed).is_ok());
        assert!(s.check_adoption(&AdoptFacts::default()).is_ok());
    }
}
