//! The library's one public error type. Internally every module has its own
//! error (naming operation, path and field); at the API boundary they become
//! one of a few variants an engine can act on, each keeping the exact text
//! the `capsa` binary prints (runc's wording, where runc has one).

use crate::bundle::BundleError;
use crate::error::Error as Internal;
use crate::rootless::RootlessError;
use crate::state::StateError;

/// Why a [`Runtime`](crate::Runtime) operation failed.
///
/// Match on the variant to decide what to do; print it (`Display`) to tell a
/// person: the text is the one the `capsa` command line prints, which follows
/// runc's messages where runc has one (e.g. `container does not exist`,
/// `container not running`), so logs read the same under either runtime.
///
/// ```
/// use capsa::Error;
///
/// fn is_gone(e: &Error) -> bool {
///     matches!(e, Error::NotFound { .. } | Error::NotRunning { .. })
/// }
/// let e = capsa::parse_signal("SIGNOPE").unwrap_err();
/// assert!(matches!(e, Error::InvalidArgument { .. }));
/// assert!(!is_gone(&e));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// There is no container with this id under the runtime's root.
    NotFound {
        /// The container id asked for.
        id: String,
        /// The full text (`container does not exist`).
        message: String,
    },
    /// A container with this id already exists under the runtime's root.
    AlreadyExists {
        /// The container id asked for.
        id: String,
        /// The full text (`container with given ID already exists`).
        message: String,
    },
    /// The container's configuration (the runtime-spec `Spec`, from
    /// config.json or given in memory) is invalid, unreadable, or asks for
    /// something this host cannot do. Nothing was created.
    InvalidConfig {
        /// The offending field as a runtime-spec JSON path, such as
        /// `process.args` or `linux.resources.memory.limit`; `config.json`
        /// when the file as a whole could not be read or parsed.
        field: String,
        /// The full text, naming the field.
        message: String,
    },
    /// The operation needs a running container (or a live init), and the
    /// container has stopped.
    NotRunning {
        /// The container id.
        id: String,
        /// The full text (`container not running`, or the operation's own).
        message: String,
    },
    /// The container is in a state that does not allow the operation
    /// (starting one that already runs, deleting a running one without
    /// `force`, resuming one that is not paused, ...).
    WrongState {
        /// The container id.
        id: String,
        /// The full text, naming the state.
        message: String,
    },
    /// An argument (an id, an option, a signal name, a resource value) is
    /// not acceptable.
    InvalidArgument {
        /// The full text.
        message: String,
    },
    /// A runc feature capsa does not implement: refused, never ignored.
    Unsupported {
        /// The full text (`... is not supported by capsa`).
        message: String,
    },
    /// Anything else: a system call, a hook, the container's init or the
    /// kernel failed. The text names the operation and the path.
    Failed {
        /// The full text.
        message: String,
    },
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The error's text (what `Display` prints).
    pub fn message(&self) -> &str {
        match self {
            Error::NotFound { message, .. }
            | Error::AlreadyExists { message, .. }
            | Error::InvalidConfig { message, .. }
            | Error::NotRunning { message, .. }
            | Error::WrongState { message, .. }
            | Error::InvalidArgument { message }
            | Error::Unsupported { message }
            | Error::Failed { message } => message,
        }
    }

    /// The exit status the `capsa` binary gives this error (runc exits 1 on
    /// any error).
    pub fn exit_code(&self) -> i32 {
        1
    }

    /// An [`Error::InvalidArgument`] with this text.
    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::InvalidArgument {
            message: message.into(),
        }
    }

    /// An internal error, classified, for the container `id` ("" when the
    /// operation names none).
    pub(crate) fn from_internal(e: Internal, id: &str) -> Error {
        let message = e.to_string();
        classify(&e, id, message)
    }
}

impl From<Internal> for Error {
    fn from(e: Internal) -> Error {
        Error::from_internal(e, "")
    }
}

/// The variant of `e` (with `message`, its full text).
fn classify(e: &Internal, id: &str, message: String) -> Error {
    let id = id.to_string();
    match e {
        Internal::State(StateError::NotExist) => Error::NotFound { id, message },
        Internal::State(StateError::Exists) => Error::AlreadyExists { id, message },
        Internal::State(StateError::InvalidId(_)) => Error::InvalidArgument { message },
        Internal::Bundle(BundleError::Invalid { field, .. }) => Error::InvalidConfig {
            field: field.clone(),
            message,
        },
        Internal::Bundle(BundleError::Parse { msg, .. }) => Error::InvalidConfig {
            field: parse_field(msg),
            message,
        },
        Internal::Bundle(BundleError::Bundle { .. }) => Error::InvalidArgument { message },
        Internal::Rootless(RootlessError::NoCgroupForLimits { field, .. }) => {
            Error::InvalidConfig {
                field: format!("linux.resources.{field}"),
                message,
            }
        }
        Internal::Rootless(RootlessError::CgroupPath { .. }) => Error::InvalidConfig {
            field: "linux.cgroupsPath".into(),
            message,
        },
        Internal::Cgroup(c) => match c.config_field() {
            Some(field) => Error::InvalidConfig { field, message },
            None => Error::Failed { message },
        },
        Internal::NotRunning(_) => Error::NotRunning { id, message },
        Internal::WrongState(_) => Error::WrongState { id, message },
        Internal::Usage(_) => Error::InvalidArgument { message },
        Internal::Unsupported(_) => Error::Unsupported { message },
        // The kind is the first failure's; the text tells both.
        Internal::WithCleanup { primary, .. } => classify(primary, &id, message),
        _ => Error::Failed { message },
    }
}

/// The JSON path a parse error starts with ("process.args: invalid type"),
/// or `config.json` for an error about the file as a whole.
fn parse_field(msg: &str) -> String {
    match msg.split_once(": ") {
        Some((path, _))
            if !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c)) =>
        {
            path.to_string()
        }
        _ => "config.json".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_kept_and_kind_is_classified() {
        let e = Error::from_internal(Internal::State(StateError::NotExist), "c1");
        assert_eq!(e.to_string(), "container does not exist");
        assert!(matches!(&e, Error::NotFound { id, .. } if id == "c1"));
        let e = Error::from_internal(
            Internal::Bundle(BundleError::Invalid {
                field: "process.args".into(),
                msg: "args must not be empty".into(),
            }),
            "c1",
        );
        assert_eq!(
            e.to_string(),
            "config.json: process.args: args must not be empty"
        );
        assert!(matches!(&e, Error::InvalidConfig { field, .. } if field == "process.args"));
        let e = Error::from_internal(Internal::NotRunning("container not running".into()), "c");
        assert!(matches!(e, Error::NotRunning { .. }));
        let wrapped = Internal::WithCleanup {
            primary: Box::new(Internal::State(StateError::Exists)),
            cleanup: "x".into(),
        };
        let e = Error::from_internal(wrapped, "c");
        assert!(matches!(e, Error::AlreadyExists { .. }));
        assert!(e.to_string().ends_with("(and cleaning up failed: x)"));
    }

    #[test]
    fn parse_errors_name_the_json_path() {
        assert_eq!(parse_field("process.args: invalid type"), "process.args");
        assert_eq!(
            parse_field("linux.namespaces[0].type: bad"),
            "linux.namespaces[0].type"
        );
        assert_eq!(
            parse_field("no such file or directory (os error 2)"),
            "config.json"
        );
        assert_eq!(
            parse_field("expected value at line 1 column 1"),
            "config.json"
        );
    }
}
