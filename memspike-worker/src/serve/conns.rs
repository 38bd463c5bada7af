//! The open connections and who gives way when there are too many.
//!
//! The server accepts every connection it can. Up to the cap each is served; at the cap, the
//! connection that has been quiet longest and that the server is not answering is closed to
//! make room (hyper's graceful shutdown: an answer being written is finished first). Quiet
//! means no request started or answered since: a socket that connected and sent nothing, an
//! idle keep-alive connection, or a request whose head or body is stalling. Connections whose
//! request is being answered are never chosen. So sockets that send nothing cannot keep other
//! clients waiting: they are the ones that go. Only when every connection is being answered
//! does a new one wait, and answers do not wait on clients.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
    time::Instant,
};

use tokio::sync::Notify;

/// Where one connection is in its request cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Stage {
    /// No request in progress: just accepted, between keep-alive requests, or in the middle of
    /// a request head (hyper has not handed it over yet).
    Idle = 0,
    /// A request head has arrived; its body is being read.
    Body = 1,
    /// The request is being answered.
    Working = 2,
}

/// What the table and a connection's task share.
#[derive(Debug)]
pub struct Conn {
    stage: AtomicU8,
    /// When a request last started or ended on it (or it was accepted), in nanoseconds since
    /// the table's start.
    last_active: AtomicU64,
    /// Accept order: breaks ties between connections active in the same instant.
    id: u64,
    /// Set once the table has asked the connection to close.
    evicting: AtomicBool,
    /// Wakes the connection's task when it is asked to close.
    pub evict: Notify,
    table: Arc<Table>,
}

impl Conn {
    /// A request head arrived; the returned guard marks the connection idle again when the
    /// request has been answered (dropped).
    pub fn request(self: &Arc<Conn>) -> Busy {
        self.touch();
        self.stage.store(Stage::Body as u8, Ordering::Release);
        Busy(self.clone())
    }

    fn touch(&self) {
        self.last_active
            .store(self.table.now_ns(), Ordering::Release);
    }

    /// The request's body has been read: from now on the server is answering it.
    pub fn answering(&self) {
        self.stage.store(Stage::Working as u8, Ordering::Release);
    }

    fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Acquire) {
            0 => Stage::Idle,
            1 => Stage::Body,
            _ => Stage::Working,
        }
    }
}

/// Marks its connection idle when dropped (the request has been answered or abandoned).
pub struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        let conn = &self.0;
        conn.touch();
        conn.stage.store(Stage::Idle as u8, Ordering::Release);
        conn.table.changed.notify_one();
    }
}

/// The open connections.
#[derive(Debug)]
pub struct Table {
    cap: usize,
    start: Instant,
    open: Mutex<Open>,
    /// Notified when a connection closes or goes idle: room may have appeared.
    changed: Notify,
}

#[derive(Debug, Default)]
struct Open {
    next: u64,
    conns: HashMap<u64, Arc<Conn>>,
    /// How many of `conns` have been asked to close.
    evicting: usize,
}

/// Keeps a connection in the table while it lives.
pub struct Registered {
    pub conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let table = &self.conn.table;
        let mut open = lock(&table.open);
        if open.conns.remove(&self.conn.id).is_some() && self.conn.evicting.load(Ordering::Acquire)
        {
            open.evicting -= 1;
        }
        drop(open);
        table.changed.notify_one();
    }
}

fn lock(m: &Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Table {
    /// A table that serves at most `cap` connections at once (at least one).
    pub fn new(cap: usize) -> Arc<Table> {
        Arc::new(Table {
            cap: cap.max(1),
            start: Instant::now(),
            open: Mutex::new(Open::default()),
            changed: Notify::new(),
        })
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Connections open now, including those asked to close.
    pub fn len(&self) -> usize {
        lock(&self.open).conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until a new connection can be served: below the cap, or after asking the
    /// longest-idle connection to close.
    pub async fn room(&self) {
        loop {
            let changed = self.changed.notified();
            if self.make_room() {
                return;
            }
            changed.await;
        }
    }

    /// Waits until a connection closes or goes idle, or returns at once if none is open.
    pub async fn changed_or_empty(&self) {
        let changed = self.changed.notified();
        if !self.is_empty() {
            changed.await;
        }
    }

    fn make_room(&self) -> bool {
        let mut open = lock(&self.open);
        if open.conns.len() - open.evicting < self.cap {
            return true;
        }
        // The quietest connection that is not being answered.
        let victim = open
            .conns
            .values()
            .filter(|c| !c.evicting.load(Ordering::Acquire) && c.stage() != Stage::Working)
            .min_by_key(|c| (c.last_active.load(Ordering::Acquire), c.id))
            .cloned();
        let Some(victim) = victim else {
            return false;
        };
        victim.evicting.store(true, Ordering::Release);
        open.evicting += 1;
        victim.evict.notify_one();
        true
    }

    /// Adds a connection just accepted.
    pub fn register(self: &Arc<Table>) -> Registered {
        let mut open = lock(&self.open);
        let id = open.next;
        open.next += 1;
        let conn = Arc::new(Conn {
            stage: AtomicU8::new(Stage::Idle as u8),
            last_active: AtomicU64::new(self.now_ns()),
            id,
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
            table: self.clone(),
        });
        open.conns.insert(id, conn.clone());
        Registered { conn }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active_at(r: &Registered, ms: u64) {
        r.conn.last_active.store(ms, Ordering::Release);
    }

    fn evicting(r: &Registered) -> bool {
        r.conn.evicting.load(Ordering::Acquire)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_quietest_goes_first_and_answers_are_never_cut() {
        let table = Table::new(3);
        let (a, b, c) = (table.register(), table.register(), table.register());
        // `a` is being answered, `b` has sent a head and stalls in its body since 10 ms, `c`
        // has sent nothing since 20 ms.
        let _a_busy = a.conn.request();
        a.conn.answering();
        let _b_busy = b.conn.request();
        active_at(&a, 0);
        active_at(&b, 10);
        active_at(&c, 20);
        table.room().await;
        assert!(evicting(&b) && !evicting(&c) && !evicting(&a));
        let d = table.register();
        active_at(&d, 30);
        table.room().await;
        assert!(evicting(&c) && !evicting(&d) && !evicting(&a));
        // Both gone: only `a` (answering) and `d` are left, and `d` makes room.
        drop((b, c));
        let e = table.register();
        active_at(&e, 40);
        table.room().await;
        assert!(evicting(&d) && !evicting(&a) && !evicting(&e));
        assert_eq!(table.len(), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn when_every_connection_is_answered_a_new_one_waits() {
        let table = Table::new(1);
        let a = table.register();
        let busy = a.conn.request();
        a.conn.answering();
        let waiting = table.room();
        tokio::pin!(waiting);
        assert!(poll_once(&mut waiting).is_pending(), "no room yet");
        drop(busy);
        // Answered and idle now: it can be asked to close.
        assert!(poll_once(&mut waiting).is_ready());
        assert!(evicting(&a));
    }

    fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::Pin::new(f).poll(&mut cx)
    }
}
