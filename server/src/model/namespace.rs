//! The Namespace object: a named network namespace weft creates, or one it adopts.
//!
//! A created namespace is a bind mount under the netns directory named after the object, as
//! `ip netns add` makes it; an adopted one is an existing file (`/proc/<pid>/ns/net`, a
//! container runtime's netns file) that weft uses but never deletes.

use std::path::PathBuf;

use super::{Invalid, Labels, labels::check_labels, names::check_object_name};

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
}
