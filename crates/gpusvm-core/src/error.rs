//! Errors: one type, holding a Linux errno.
//!
//! C header: [`include/uapi/asm-generic/errno-base.h`], [`include/linux/errno.h`].
//!
//! Upstream reports failures as negative errno values, and callers of `drm_gpusvm` branch on them
//! (`-EOPNOTSUPP` means "evict and retry", `-EFAULT` "retry the fault", ...). The core therefore
//! keeps errno as its error currency, the way `kernel::error::Error` does: an [`Error`] is a
//! non-zero errno, [`Error::to_errno`] gives the negative value upstream returns, and the
//! [`code`] module names every value the core produces. Backend errors (an `hmm_range_fault`
//! failure, say) pass through unchanged with [`Error::from_errno`].

use core::fmt;
use core::num::NonZeroI32;

/// A Linux errno. The wrapped value is always in `1..=MAX_ERRNO`.
///
/// # Invariants
///
/// `self.0` is positive and at most [`Error::MAX_ERRNO`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error(NonZeroI32);

/// The core's result type.
pub type Result<T = ()> = core::result::Result<T, Error>;

macro_rules! declare_codes {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {
        /// The errno values the core returns, named as in C.
        pub mod code {
            use super::Error;
            $(
                $(#[$doc])*
                pub const $name: Error = Error::from_const($value);
            )*
        }

        const NAMES: &[(i32, &str)] = &[$(($value, stringify!($name)),)*];
    };
}

declare_codes! {
    /// Operation not permitted: a write fault on a read-only mapping.
    EPERM = 1;
    /// No such entry: no VMA at the address.
    ENOENT = 2;
    /// Interrupted while waiting.
    EINTR = 4;
    /// I/O error: the VMA is `VM_IO`/`VM_PFNMAP` (no struct pages to mirror).
    EIO = 5;
    /// Out of memory: an allocation failed.
    ENOMEM = 12;
    /// Permission denied: the range cannot satisfy the access (driver level, e.g. atomics).
    EACCES = 13;
    /// Bad address: the mm is gone, a page could not be faulted, or the pages are unmapped.
    EFAULT = 14;
    /// Device or resource busy: collisions outlasted the retry budget, or a migration raced.
    EBUSY = 16;
    /// No such device: the device backing a pagemap was removed.
    ENODEV = 19;
    /// Invalid argument.
    EINVAL = 22;
    /// Out of range: an address computation would overflow.
    ERANGE = 34;
    /// Try again: the commit found invalid pages; redo the fault.
    EAGAIN = 11;
    /// Timer expired: `range_evict` ran out of its budget.
    ETIME = 62;
    /// Operation not supported: disallowed page mixing; the driver should evict and retry.
    EOPNOTSUPP = 95;
}

impl Error {
    /// The largest errno value (`MAX_ERRNO` in `include/linux/err.h`).
    pub const MAX_ERRNO: i32 = 4095;

    const fn from_const(errno: i32) -> Self {
        let errno = if errno > 0 && errno <= Self::MAX_ERRNO {
            errno
        } else {
            22
        };
        match NonZeroI32::new(errno) {
            // INVARIANT: `errno` is in `1..=MAX_ERRNO` by the clamp above.
            Some(v) => Error(v),
            // Not reachable: `errno` is positive.
            None => Error(NonZeroI32::MAX),
        }
    }

    /// Wraps an errno, positive (`EINVAL`) or negative (`-EINVAL`), as backends report it.
    ///
    /// Values outside `1..=MAX_ERRNO` in magnitude are not errors in the kernel's sense; they
    /// become `EINVAL` so that a misbehaving backend cannot smuggle in a success code.
    pub fn from_errno(errno: i32) -> Self {
        let magnitude = errno.checked_abs().unwrap_or(0);
        match NonZeroI32::new(magnitude) {
            // INVARIANT: `magnitude` is in `1..=MAX_ERRNO`.
            Some(v) if magnitude <= Self::MAX_ERRNO => Error(v),
            _ => code::EINVAL,
        }
    }

    /// The negative errno, as upstream returns it (`-22` for `EINVAL`).
    pub fn to_errno(self) -> i32 {
        // By the type invariant the value is in `1..=MAX_ERRNO`, so negation cannot overflow.
        -self.0.get()
    }

    /// The C name of the errno (`"EINVAL"`), or `None` for a backend value the core never uses.
    pub fn name(self) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|(value, _)| *value == self.0.get())
            .map(|(_, name)| *name)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "errno {}", self.0.get()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.to_errno()),
            None => write!(f, "errno {}", self.to_errno()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_match_linux() {
        assert_eq!(code::EPERM.to_errno(), -1);
        assert_eq!(code::ENOENT.to_errno(), -2);
        assert_eq!(code::EINTR.to_errno(), -4);
        assert_eq!(code::EAGAIN.to_errno(), -11);
        assert_eq!(code::ENOMEM.to_errno(), -12);
        assert_eq!(code::EACCES.to_errno(), -13);
        assert_eq!(code::EFAULT.to_errno(), -14);
        assert_eq!(code::EBUSY.to_errno(), -16);
        assert_eq!(code::ENODEV.to_errno(), -19);
        assert_eq!(code::EINVAL.to_errno(), -22);
        assert_eq!(code::ERANGE.to_errno(), -34);
        assert_eq!(code::ETIME.to_errno(), -62);
        assert_eq!(code::EOPNOTSUPP.to_errno(), -95);
    }

    #[test]
    fn from_errno_accepts_both_signs_and_rejects_non_errors() {
        assert_eq!(Error::from_errno(-14), code::EFAULT);
        assert_eq!(Error::from_errno(14), code::EFAULT);
        assert_eq!(Error::from_errno(0), code::EINVAL);
        assert_eq!(Error::from_errno(i32::MIN), code::EINVAL);
        assert_eq!(Error::from_errno(4096), code::EINVAL);
        assert_eq!(Error::from_errno(-4095).to_errno(), -4095);
        assert_eq!(Error::from_errno(-4095).name(), None);
    }

    #[test]
    fn names_are_the_c_names() {
        assert_eq!(code::EOPNOTSUPP.name(), Some("EOPNOTSUPP"));
        extern crate std;
        assert_eq!(std::format!("{}", code::EBUSY), "EBUSY (-16)");
        assert_eq!(std::format!("{:?}", Error::from_errno(-300)), "errno 300");
    }
}
