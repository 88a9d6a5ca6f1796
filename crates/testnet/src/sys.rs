//! The only place in this crate that talks to the kernel directly: `setns(2)`,
//! the `TUNSETIFF` ioctl and `poll(2)`. Everything else uses `std` or spawns
//! `ip`/`iptables`.
//!
//! Each `unsafe` block is a single FFI call whose pointer arguments point to
//! live stack values or to file descriptors owned by a `File` for the whole call.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

/// Moves the *calling thread* into the network namespace `/run/netns/{ns}`.
///
/// Only call this on a thread that is about to exit (see `Lab::in_ns`), since
/// there is no way back short of re-entering the original namespace.
pub(crate) fn enter_netns(ns: &str) -> io::Result<()> {
    let file = File::open(format!("/run/netns/{ns}"))
        .map_err(|e| io::Error::new(e.kind(), format!("open /run/netns/{ns}: {e}")))?;
    // SAFETY: `file` owns a valid open fd for the duration of the call; setns
    // does not retain the fd or any pointer.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct ifreq` as used by TUNSETIFF: a 16-byte name followed by a 24-byte
/// union of which only `ifr_flags` (a `short`) is used.
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// `_IOW('T', 202, int)` from `<linux/if_tun.h>`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Creates a (non-persistent) layer-3 TUN device named `name` in the network
/// namespace of the calling thread, without packet-information header.
/// The device disappears when the returned `File` is closed.
pub(crate) fn create_tun(name: &str) -> io::Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `req` is a properly sized, initialised `struct ifreq` living on
    // the stack for the whole call; the fd is owned by `file`.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            TUNSETIFF as _,
            &mut req as *mut IfReqFlags,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
    }
    Ok(file)
}

/// Waits up to `timeout_ms` for `file` to become readable.
pub(crate) fn wait_readable(file: &File, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid one-element pollfd array on the stack.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0 && pfd.revents & libc::POLLIN != 0)
}
