//! Test-only fault injection, compiled into debug builds only (`cfg(debug_assertions)`):
//! release builds, such as the static binary of `scripts/build-static`, carry neither
//! this module nor its call sites (see the `fault!` macro), and `tests/run-all` checks
//! that the static binary does not contain the variable's name.
//!
//! `VMSIFT_FAULT=ROLE:ACTION:N` makes the N-th call (counting from 1, over all threads)
//! of the call sites of ROLE fail:
//!
//! | ROLE       | call site                                                          |
//! | ---------- | ------------------------------------------------------------------ |
//! | `compress` | a worker compressing one page                                      |
//! | `read`     | a worker reading one page, or one run of pages, from the input      |
//! | `write`    | one batch's page data written (by the writer, or by a worker)       |
//! | `describe` | the writer adding one page descriptor                               |
//! | `scan`     | the planner starting a cycle: pass 1's filter (mem_map), pass 2's   |
//! |            | bitmaps                                                            |
//!
//! ACTION is `panic` (a panic in that thread), `error` (an internal error returned there)
//! or `mark` (one line `vmsift: fault mark: ROLE N` on stderr and nothing else, for tests
//! that need to know how far a run got without sleeping on a guess).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The call sites a fault can be injected at (the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A worker compressing one page.
    Compress,
    /// A worker reading pages from the input.
    Read,
    /// One batch's page data written.
    Write,
    /// The writer adding one page descriptor.
    Describe,
    /// The planner starting a cycle.
    Scan,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Compress => "compress",
            Role::Read => "read",
            Role::Write => "write",
            Role::Describe => "describe",
            Role::Scan => "scan",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Panic,
    Error,
    Mark,
}

struct Plan {
    role: Role,
    action: Action,
    nth: u64,
    calls: AtomicU64,
}

fn plan() -> Option<&'static Plan> {
    static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let spec = std::env::var("VMSIFT_FAULT").ok()?;
        let mut parts = spec.split(':');
        let role = match parts.next()? {
            "compress" => Role::Compress,
            "read" => Role::Read,
            "write" => Role::Write,
            "describe" => Role::Describe,
            "scan" => Role::Scan,
            _ => return None,
        };
        let action = match parts.next()? {
            "panic" => Action::Panic,
            "error" => Action::Error,
            "mark" => Action::Mark,
            _ => return None,
        };
        let nth = parts.next()?.parse().ok()?;
        Some(Plan {
            role,
            action,
            nth,
            calls: AtomicU64::new(0),
        })
    })
    .as_ref()
}

/// One call of a `role` call site: fails if it is the planned one (a panic is reported
/// at the call site).
#[track_caller]
pub fn hit(role: Role) -> Result<()> {
    let Some(p) = plan().filter(|p| p.role == role) else {
        return Ok(());
    };
    let n = p.calls.fetch_add(1, Ordering::Relaxed) + 1;
    if n != p.nth {
        return Ok(());
    }
    let what = format!("injected fault: {} #{n}", role.name());
    match p.action {
        Action::Panic => panic!("{what}"),
        Action::Error => Err(Error::internal(what)),
        Action::Mark => {
            eprintln!("vmsift: fault mark: {} {n}", role.name());
            Ok(())
        }
    }
}
