//! Who the worker runs as, and how it gets there.
//!
//! The supervisor needs root (cgroups, eBPF); the worker does not once it is in its group. So
//! the supervisor decides the worker's credentials in preflight ([`RunAs::resolve`]) and the
//! worker takes them for good right after it starts ([`RunAs::enter`]):
//! - by default a **private uid and gid** that no account and no running process uses (from the
//!   range systemd leaves to dynamic users), so no other unprivileged process can signal or
//!   trace the worker; `--user NAME` picks an account instead (never root);
//! - the capability bounding set is emptied and ambient capabilities cleared (while still root),
//!   then supplementary groups, gid and uid are set, then `no_new_privs`: nothing the worker
//!   runs afterwards can regain a privilege;
//! - the uid change clears the parent-death signal, so it is armed again, and the parent is
//!   checked to still be the supervisor, so a worker never outlives a supervisor killed in
//!   between.

use std::{fmt, io};

use caps::CapSet;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Group, Uid, User, getppid, setgroups, setresgid, setresuid};
use procfs::process::Process;

/// The range systemd allocates dynamic users from (`DynamicUser=`); free uids there are what
/// such tools use for a process that must not share a uid with anything else.
const PRIVATE_UIDS: std::ops::RangeInclusive<u32> = 61184..=65519;

/// Credentials for the worker. They travel to the worker in its configuration; one that names
/// root does not deserialize.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawRunAs")]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// The account's name, or `None` for a private uid.
    pub name: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawRunAs {
    uid: u32,
    gid: u32,
    name: Option<String>,
}

impl TryFrom<RawRunAs> for RunAs {
    type Error = String;
    fn try_from(r: RawRunAs) -> Result<RunAs, String> {
        if r.uid == 0 || r.gid == 0 {
            return Err(format!(
                "uid {} gid {}: the worker must not run as root",
                r.uid, r.gid
            ));
        }
        Ok(RunAs {
            uid: r.uid,
            gid: r.gid,
            name: r.name,
        })
    }
}

impl fmt::Display for RunAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} (uid {}, gid {})", self.uid, self.gid),
            None => write!(f, "private uid {} (gid {})", self.uid, self.gid),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error(
        "--user {0:?}: no such user; give an existing account, or leave --user out for a private uid"
    )]
    NoSuchUser(String),
    #[error(
        "--user {0:?}: the worker must not run as root; give an unprivileged account, or leave --user out"
    )]
    Root(String),
    #[error("--user is empty; give an account name, or leave --user out for a private uid")]
    Empty,
    #[error("no free private uid in {first}..={last} (every one has an account or a process)", first = PRIVATE_UIDS.start(), last = PRIVATE_UIDS.end())]
    NoFreeUid,
    #[error("the worker could not drop its privileges ({step}): {source}")]
    Drop {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the worker still holds privileges after dropping them: {0}")]
    StillPrivileged(String),
    #[error("the supervisor (pid {expected}) is gone; the worker stops")]
    Orphaned { expected: u32 },
}

impl RunAs {
    /// The worker's credentials for `--user`: that account (not root), or a private uid.
    pub fn resolve(user: Option<&str>) -> Result<RunAs, PrivilegeError> {
        match user {
            None => private(std::process::id()),
            Some("") => Err(PrivilegeError::Empty),
            Some(name) => {
                let (uid, gid) =
                    lookup(name).ok_or_else(|| PrivilegeError::NoSuchUser(name.to_owned()))?;
                if uid == 0 {
                    return Err(PrivilegeError::Root(name.to_owned()));
                }
                Ok(RunAs {
                    uid,
                    gid,
                    name: Some(name.to_owned()),
                })
            }
        }
    }

    /// Becomes this uid and gid for good (see the module documentation), then makes sure the
    /// supervisor, pid `supervisor`, is still the parent. Call it while single-threaded or
    /// before any thread that must keep root exists: credentials change for every thread.
    pub fn enter(&self, supervisor: u32) -> Result<(), PrivilegeError> {
        let fail = |step| move |source| PrivilegeError::Drop { step, source };
        let caps_fail = |step| {
            move |e: caps::errors::CapsError| PrivilegeError::Drop {
                step,
                source: io::Error::other(e),
            }
        };
        // Needs CAP_SETPCAP, so before the uid change.
        drop_bounding_set().map_err(fail("emptying the capability bounding set"))?;
        caps::clear(None, CapSet::Ambient).map_err(caps_fail("clearing ambient capabilities"))?;
        setgroups(&[])
            .map_err(io::Error::from)
            .map_err(fail("clearing supplementary groups"))?;
        let gid = Gid::from_raw(self.gid);
        setresgid(gid, gid, gid)
            .map_err(io::Error::from)
            .map_err(fail("setting the gid"))?;
        // From root to a non-zero uid this also clears every capability.
        let uid = Uid::from_raw(self.uid);
        setresuid(uid, uid, uid)
            .map_err(io::Error::from)
            .map_err(fail("setting the uid"))?;
        prctl::set_no_new_privs()
            .map_err(io::Error::from)
            .map_err(fail("setting no_new_privs"))?;
        // The uid change cleared the parent-death signal: arm it again, then make sure the
        // parent did not die before it was armed (we would have been reparented).
        prctl::set_pdeathsig(Signal::SIGKILL)
            .map_err(io::Error::from)
            .map_err(fail("arming the parent-death signal"))?;
        if getppid().as_raw() as u32 != supervisor {
            return Err(PrivilegeError::Orphaned {
                expected: supervisor,
            });
        }
        verify_unprivileged()
    }
}

/// Drops every capability from the bounding set, up to the kernel's own last one
/// (`cap_last_cap`). The caps crate knows only the capabilities of its release; one a newer
/// kernel added would stay, and verify_unprivileged(), which reads the whole CapBnd, would
/// then refuse to go on.
fn drop_bounding_set() -> io::Result<()> {
    let last: libc::c_ulong = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63);
    for cap in 0..=last {
        // SAFETY: prctl with integer arguments only; no memory is passed.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error();
            // EINVAL: past the kernel's last capability (cap_last_cap unreadable).
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Reads back what the kernel says (/proc/self/status): no uid 0, no capability in any set,
/// no_new_privs on.
fn verify_unprivileged() -> Result<(), PrivilegeError> {
    let status = Process::myself()
        .and_then(|me| me.status())
        .map_err(|e| PrivilegeError::StillPrivileged(format!("/proc/self/status: {e}")))?;
    let mut wrong = Vec::new();
    let uids = [status.ruid, status.euid, status.suid, status.fuid];
    if uids.contains(&0) {
        wrong.push(format!("Uid {uids:?}"));
    }
    for (name, caps) in [
        ("CapPrm:", Some(status.capprm)),
        ("CapEff:", Some(status.capeff)),
        ("CapBnd:", status.capbnd),
        ("CapAmb:", status.capamb),
    ] {
        match caps {
            Some(0) => {}
            Some(set) => wrong.push(format!("{name} {set:016x}")),
            None => wrong.push(format!("{name} absent")),
        }
    }
    if status.nonewprivs != Some(1) {
        wrong.push(format!("NoNewPrivs {:?}", status.nonewprivs));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError::StillPrivileged(wrong.join(", ")))
    }
}

/// An account's uid and gid.
fn lookup(name: &str) -> Option<(u32, u32)> {
    User::from_name(name)
        .ok()
        .flatten()
        .map(|u| (u.uid.as_raw(), u.gid.as_raw()))
}

/// Whether an account (or a group) uses this id.
fn id_has_account(id: u32) -> bool {
    let user = User::from_uid(Uid::from_raw(id)).is_ok_and(|u| u.is_some());
    let group = Group::from_gid(Gid::from_raw(id)).is_ok_and(|g| g.is_some());
    user || group
}

/// Uids of every running process (real, effective, saved, filesystem).
fn uids_in_use() -> std::collections::BTreeSet<u32> {
    let mut uids = std::collections::BTreeSet::new();
    let Ok(processes) = procfs::process::all_processes() else {
        return uids;
    };
    // A process that ends while being read is left out.
    for status in processes.flatten().filter_map(|p| p.status().ok()) {
        uids.extend([status.ruid, status.euid, status.suid, status.fuid]);
    }
    uids
}

/// A uid (and the same gid) from [`PRIVATE_UIDS`] that no account and no process uses,
/// starting from a place that depends on `seed` (the supervisor's pid), so that supervisors
/// running at once pick different ones.
fn private(seed: u32) -> Result<RunAs, PrivilegeError> {
    let first = *PRIVATE_UIDS.start();
    let span = PRIVATE_UIDS.end() - first + 1;
    let busy = uids_in_use();
    (0..span)
        .map(|i| first + (seed.wrapping_add(i) % span))
        .find(|id| !busy.contains(id) && !id_has_account(*id))
        .map(|id| RunAs {
            uid: id,
            gid: id,
            name: None,
        })
        .ok_or(PrivilegeError::NoFreeUid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_resolve_and_root_or_nothing_is_refused() {
        assert!(matches!(
            RunAs::resolve(Some("root")),
            Err(PrivilegeError::Root(_))
        ));
        assert!(matches!(
            RunAs::resolve(Some("")),
            Err(PrivilegeError::Empty)
        ));
        assert!(matches!(
            RunAs::resolve(Some("no-such-user-memspike")),
            Err(PrivilegeError::NoSuchUser(_))
        ));
        let nobody = RunAs::resolve(Some("nobody")).expect("Debian has nobody");
        assert_ne!(nobody.uid, 0);
        let json = serde_json::to_string(&nobody).unwrap();
        assert_eq!(serde_json::from_str::<RunAs>(&json).unwrap(), nobody);
    }

    #[test]
    fn a_private_uid_is_used_by_no_account_and_no_process() {
        let r = RunAs::resolve(None).unwrap();
        assert!(PRIVATE_UIDS.contains(&r.uid), "{r}");
        assert_eq!(r.uid, r.gid);
        assert!(!id_has_account(r.uid));
        assert!(!uids_in_use().contains(&r.uid));
        // Another seed starts elsewhere in the range.
        assert_ne!(private(1).unwrap().uid, private(2).unwrap().uid);
    }

    #[test]
    fn credentials_that_name_root_do_not_deserialize() {
        let parse = |json: &str| serde_json::from_str::<RunAs>(json).map(|r| (r.uid, r.gid));
        assert!(parse(r#"{"uid":0,"gid":5,"name":null}"#).is_err());
        assert!(parse(r#"{"uid":5,"gid":0,"name":null}"#).is_err());
        assert!(parse(r#"{"uid":5}"#).is_err());
        assert_eq!(
            parse(r#"{"uid":61200,"gid":61200,"name":null}"#).unwrap(),
            (61200, 61200)
        );
    }
}
