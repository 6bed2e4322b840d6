//! Group commit for SQLite's one writer.
//!
//! Every write goes through the one writer connection, one writer at a time. Committing each
//! writer's transaction on its own appends to the WAL every page it changed, so pages that every
//! tenant's commit touches (an index's last leaf, the database header, the token cache's rows) were
//! written once per tenant: most of what an inspection wrote (docs/performance.md, "Inspection").
//!
//! Instead, writers that queue up behind each other share one transaction, a **group**. Each writer
//! runs inside a savepoint of the group's transaction, so its own failure rolls back only its own
//! changes; when it is done it releases the savepoint and, if other writers are waiting, gives the
//! connection to them and queues up again behind them. Whoever gets the connection back first with
//! the group still open commits it. A group is also committed when it has [`MAX_MEMBERS`] members
//! or when it has been open for [`MAX_AGE`], and when nobody is waiting, unless writes are coming
//! from several tasks at once.
//!
//! **Pacing.** Writers that arrive just after each other rather than together (an inspection's
//! tenants, finishing one by one) found nobody waiting and committed a group each: a few writers
//! per commit, and every commit appends the pages it changed to the WAL again, the same index
//! leaves and table ends each time. So while other tasks have written within the last [`PACE`], a
//! writer that finds nobody waiting leaves its group open until [`PACE`] after the previous commit,
//! for the writes that are on their way: under a steady stream of writes from many tasks, groups
//! commit at most once per [`PACE`]. One task writing on its own, or the first write after a quiet
//! moment, commits at once as before, so a loop of writes in one task is never slowed.
//!
//! **No writer is told its write succeeded before the group's `COMMIT` did**, so a write reported
//! committed survives the process being killed exactly as before; a group that fails to commit (a
//! full disk) fails every member with the error. A writer's transaction dropped without being
//! committed (an error, a cancelled task) leaves its savepoint to be rolled back by the next user
//! of the connection; when it was the group's only member, a task is spawned that does so and ends
//! the group, in case no other writer comes. A single statement with no group open runs on its own,
//! as SQLite commits it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, SqliteConnection};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::{Exec, Query, Row, Tx};
use crate::error::{Result, StoreError};

/// Writers one group holds at most: it bounds how long the first of them waits to hear that its
/// write is durable.
const MAX_MEMBERS: usize = 64;

/// How long a group stays open at most, for the same reason, and so that readers see each group's
/// writes soon.
const MAX_AGE: Duration = Duration::from_millis(250);

/// The least time between two commits while several tasks are writing (see the module's
/// documentation): how long at most a writer waits for others to join its group, on top of the
/// commit itself.
const PACE: Duration = Duration::from_millis(50);

/// How a group's commit went, shared by its members.
type Outcome = std::result::Result<(), Arc<str>>;

/// One group transaction.
struct Group {
    done: watch::Sender<Option<Outcome>>,
    opened: Instant,
}

/// The writer connection and its open group, behind the writers' lock.
struct State {
    /// The writer connection, held while a group is open.
    conn: Option<PoolConnection<Sqlite>>,
    group: Option<Arc<Group>>,
    /// Writers that have joined the open group.
    members: usize,
    /// When the last group committed.
    committed_at: Option<Instant>,
    /// The task that last began a write (`None` inside: not in a task), and when the writer last
    /// changed from one task to another: a write from another task within [`PACE`] means writes
    /// are coming from several at once.
    last_writer: Option<Option<tokio::task::Id>>,
    switched_at: Option<Instant>,
    /// Groups committed, and writers that left their group open for others, for tests.
    #[cfg(test)]
    commits: usize,
    #[cfg(test)]
    lingered: usize,
    /// A member's savepoint is still open though the member is gone: it is rolled back before the
    /// connection is used again.
    abandoned: bool,
}

/// The writer side of a SQLite database.
#[derive(Clone)]
pub(crate) struct Writer {
    pool: SqlitePool,
    state: Arc<Mutex<State>>,
    waiting: Arc<AtomicUsize>,
    /// Whether writers share transactions; an in-memory database, whose one connection the readers
    /// share too, commits each writer at once.
    grouped: bool,
}

/// Counts a writer waiting for the lock until it has it, also when it stops waiting.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Writer {
    pub(crate) fn new(pool: SqlitePool, grouped: bool) -> Writer {
        Writer {
            pool,
            state: Arc::new(Mutex::new(State {
                conn: None,
                group: None,
                members: 0,
                abandoned: false,
                committed_at: None,
                last_writer: None,
                switched_at: None,
                #[cfg(test)]
                commits: 0,
                #[cfg(test)]
                lingered: 0,
            })),
            waiting: Arc::new(AtomicUsize::new(0)),
            grouped,
        }
    }

    async fn lock(&self) -> OwnedMutexGuard<State> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        self.state.clone().lock_owned().await
    }

    /// Starts a writer's transaction: a savepoint in the open group, or in a new one.
    pub(crate) async fn begin(&self) -> Result<Member> {
        let state = self.lock().await;
        self.join(state).await
    }

    /// [`Writer::begin`] with the lock held.
    async fn join(&self, mut state: OwnedMutexGuard<State>) -> Result<Member> {
        state.settle().await;
        if state.group.is_none() {
            let mut conn = self.pool.acquire().await?;
            // IMMEDIATE takes the write lock up front, so another process's writer makes us wait
            // (busy timeout) rather than fail half-way.
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
            let (done, _) = watch::channel(None);
            state.conn = Some(conn);
            state.group = Some(Arc::new(Group { done, opened: Instant::now() }));
            state.members = 0;
        }
        state.members += 1;
        state.note_writer();
        let conn = state.conn()?;
        if let Err(err) = sqlx::query("SAVEPOINT member").execute(conn).await {
            // The group's transaction is in a state nobody can rely on; its members hear so.
            state.fail(&err.to_string()).await;
            return Err(err.into());
        }
        Ok(Member { writer: self.clone(), state: Some(state) })
    }

    /// Commits the open group, if any, and runs `f` with the writer connection idle in its pool
    /// and the lock held, so that no group opens meanwhile: for checkpoints, vacuum and closing.
    pub(crate) async fn idle<T>(&self, f: impl AsyncFnOnce(&SqlitePool) -> T) -> T {
        let mut state = self.lock().await;
        state.settle().await;
        if state.group.is_some() {
            // A failed commit has told its members; what follows does not depend on it.
            let _ = state.commit().await;
        }
        let out = f(&self.pool).await;
        drop(state);
        out
    }

    /// Commits what a member that is gone left behind, when no other writer is about to.
    fn flush_later(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let writer = self.clone();
        runtime.spawn(async move {
            let mut state = writer.lock().await;
            state.settle().await;
            if state.group.is_some() {
                let _ = state.commit().await;
            }
        });
    }
}

impl State {
    fn conn(&mut self) -> Result<&mut SqliteConnection> {
        self.conn.as_deref_mut().ok_or_else(|| StoreError::Internal("the writer has no open transaction".into()))
    }

    /// Rolls back the savepoint of a member that is gone.
    async fn settle(&mut self) {
        if !std::mem::take(&mut self.abandoned) {
            return;
        }
        let Ok(conn) = self.conn() else { return };
        let rolled_back = async {
            sqlx::query("ROLLBACK TO member").execute(&mut *conn).await?;
            sqlx::query("RELEASE member").execute(&mut *conn).await
        }
        .await;
        if let Err(err) = rolled_back {
            // SQLite rolls a whole transaction back on some errors (a full disk, an I/O error),
            // and the savepoint went with it: so did the other members' writes.
            self.fail(&err.to_string()).await;
        }
    }

    /// Commits the group and tells its members; the committer gets the error itself.
    async fn commit(&mut self) -> Result<()> {
        let committed = match self.conn() {
            Ok(conn) => sqlx::query("COMMIT").execute(conn).await.map(|_| ()).map_err(StoreError::from),
            Err(err) => Err(err),
        };
        match committed {
            Ok(()) => {
                self.committed_at = Some(Instant::now());
                #[cfg(test)]
                {
                    self.commits += 1;
                }
                if let Some(group) = self.group.take() {
                    group.done.send_replace(Some(Ok(())));
                }
                self.conn = None;
                Ok(())
            }
            Err(err) => {
                self.fail(&err.to_string()).await;
                Err(err)
            }
        }
    }

    /// Gives up the group: rolls back whatever is left of it and tells its members why.
    async fn fail(&mut self, why: &str) {
        if let Ok(conn) = self.conn() {
            // Fails harmlessly when SQLite has already rolled the transaction back.
            let _ = sqlx::query("ROLLBACK").execute(conn).await;
        }
        if let Some(group) = self.group.take() {
            group.done.send_replace(Some(Err(Arc::from(why))));
        }
        self.conn = None;
        self.abandoned = false;
    }

    /// Notes which task is writing, for [`State::paced_until`].
    fn note_writer(&mut self) {
        let task = tokio::task::try_id();
        if self.last_writer != Some(task) {
            if self.last_writer.is_some() {
                self.switched_at = Some(Instant::now());
            }
            self.last_writer = Some(task);
        }
    }

    /// While several tasks are writing, when the next commit is due (module documentation,
    /// "Pacing"); `None` when a commit may happen at once.
    fn paced_until(&self) -> Option<Instant> {
        let now = Instant::now();
        let several = self.switched_at.is_some_and(|at| now.duration_since(at) < PACE);
        let due = self.committed_at? + PACE;
        (several && due > now).then_some(due)
    }
}

/// One writer's transaction: a savepoint of its group's transaction. Dropped without
/// [`Tx::commit`], its changes are rolled back.
pub(crate) struct Member {
    writer: Writer,
    state: Option<OwnedMutexGuard<State>>,
}

impl Member {
    fn conn(&mut self) -> Result<&mut SqliteConnection> {
        match self.state.as_mut() {
            Some(state) => state.conn(),
            None => Err(StoreError::Internal("the transaction is over".into())),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut state) = self.state.take() {
            state.abandoned = true;
            // Members that joined the group before this one are queued to commit it (or, cancelled,
            // have spawned a task that does); a group of this member alone has nobody else to.
            let alone = state.members <= 1;
            drop(state);
            if alone {
                self.writer.flush_later();
            }
        }
    }
}

/// The error a member hears when its group failed to commit after its own part succeeded.
fn group_failed(why: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
        "the transaction this write was committed in failed: {why}"
    ))))
}

/// Waits, in the writers' queue, for a group a member has left: whoever is first to find it still
/// open commits it. Dropped before that (a cancelled task), it leaves the commit to a spawned task.
struct Pending {
    writer: Writer,
    done: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.writer.flush_later();
        }
    }
}

#[async_trait]
impl Tx for Member {
    async fn commit(mut self: Box<Self>) -> Result<()> {
        let Some(mut state) = self.state.take() else {
            return Err(StoreError::Internal("the transaction is over".into()));
        };
        let writer = self.writer.clone();
        let released = match state.conn() {
            Ok(conn) => sqlx::query("RELEASE member").execute(conn).await.map_err(StoreError::from),
            Err(err) => Err(err),
        };
        if let Err(err) = released {
            state.abandoned = true;
            state.settle().await;
            return Err(err);
        }
        let Some(group) = state.group.clone() else {
            return Err(StoreError::Internal("the writer's group is gone".into()));
        };
        let mut outcome = group.done.subscribe();
        if !writer.grouped || state.members >= MAX_MEMBERS || group.opened.elapsed() >= MAX_AGE {
            return state.commit().await;
        }
        let alone = writer.waiting.load(Ordering::SeqCst) == 0;
        let paced = |state: &State| {
            let full = state.members >= MAX_MEMBERS || group.opened.elapsed() >= MAX_AGE;
            if full { None } else { state.paced_until().map(|due| due.min(group.opened + MAX_AGE)) }
        };
        let mut linger = paced(&state);
        if alone && linger.is_none() {
            return state.commit().await;
        }
        #[cfg(test)]
        if linger.is_some() {
            state.lingered += 1;
        }
        drop(state);
        let mut pending = Pending { writer: writer.clone(), done: false };
        let result = loop {
            if let Some(until) = linger {
                tokio::time::sleep_until(until.into()).await;
            }
            let mut state = writer.lock().await;
            if !state.group.as_ref().is_some_and(|open| Arc::ptr_eq(open, &group)) {
                break Ok(());
            }
            state.settle().await;
            if state.group.is_none() {
                break Ok(());
            }
            // The writers that queued behind this one have joined the group. While commits are
            // paced it stays open until due, for the writes still on their way.
            linger = paced(&state);
            if linger.is_none() {
                break state.commit().await;
            }
            #[cfg(test)]
            {
                state.lingered += 1;
            }
        };
        drop(group);
        pending.done = true;
        result?;
        let outcome = outcome.wait_for(Option::is_some).await.map(|o| o.clone());
        match outcome {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(why))) => Err(group_failed(&why)),
            _ => Err(group_failed("the group was abandoned")),
        }
    }
}

#[async_trait]
impl Exec for Member {
    async fn execute(&mut self, q: Query) -> Result<u64> {
        Ok(super::sqlite::bind(q)?.execute(self.conn()?).await?.rows_affected())
    }

    async fn fetch_all(&mut self, q: Query) -> Result<Vec<Row>> {
        Ok(super::sqlite::bind(q)?.fetch_all(self.conn()?).await?.into_iter().map(Row::Sqlite).collect())
    }

    async fn fetch_optional(&mut self, q: Query) -> Result<Option<Row>> {
        Ok(super::sqlite::bind(q)?.fetch_optional(self.conn()?).await?.map(Row::Sqlite))
    }
}

/// Single statements that write: with no group open, a statement of its own (SQLite commits it
/// before it returns), else a member of the open group.
pub(crate) struct Single<'a>(pub &'a Writer);

/// Where a single statement runs.
enum Turn {
    /// On the idle writer connection, with the lock held so that no group opens meanwhile.
    Alone(OwnedMutexGuard<State>, PoolConnection<Sqlite>),
    Grouped(Member),
}

impl Single<'_> {
    async fn turn(&self) -> Result<Turn> {
        let mut state = self.0.lock().await;
        state.settle().await;
        // While commits are paced, a statement opens a group that the writes on their way join.
        if state.group.is_none() && (!self.0.grouped || state.paced_until().is_none()) {
            state.note_writer();
            let conn = self.0.pool.acquire().await?;
            return Ok(Turn::Alone(state, conn));
        }
        Ok(Turn::Grouped(self.0.join(state).await?))
    }
}

#[async_trait]
impl Exec for Single<'_> {
    async fn execute(&mut self, q: Query) -> Result<u64> {
        match self.turn().await? {
            Turn::Alone(mut state, mut conn) => {
                let n = super::sqlite::bind(q)?.execute(&mut *conn).await?.rows_affected();
                state.committed_at = Some(Instant::now());
                Ok(n)
            }
            Turn::Grouped(mut member) => {
                let n = member.execute(q).await?;
                Box::new(member).commit().await?;
                Ok(n)
            }
        }
    }

    async fn fetch_all(&mut self, q: Query) -> Result<Vec<Row>> {
        match self.turn().await? {
            Turn::Alone(mut state, mut conn) => {
                let rows = super::sqlite::bind(q)?.fetch_all(&mut *conn).await?;
                state.committed_at = Some(Instant::now());
                Ok(rows.into_iter().map(Row::Sqlite).collect())
            }
            Turn::Grouped(mut member) => {
                let rows = member.fetch_all(q).await?;
                Box::new(member).commit().await?;
                Ok(rows)
            }
        }
    }

    async fn fetch_optional(&mut self, q: Query) -> Result<Option<Row>> {
        match self.turn().await? {
            Turn::Alone(mut state, mut conn) => {
                let row = super::sqlite::bind(q)?.fetch_optional(&mut *conn).await?;
                state.committed_at = Some(Instant::now());
                Ok(row.map(Row::Sqlite))
            }
            Turn::Grouped(mut member) => {
                let row = member.fetch_optional(q).await?;
                Box::new(member).commit().await?;
                Ok(row)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{ExecExt, query};
    use sqlx::Connection as _;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    async fn writer(dir: &tempfile::TempDir) -> (Writer, SqlitePool) {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("group.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.expect("open");
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)").execute(&pool).await.expect("create");
        let reader = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("reader");
        (Writer::new(pool, true), reader)
    }

    async fn rows(reader: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT n FROM t ORDER BY n").fetch_all(reader).await.expect("read")
    }

    async fn insert(writer: &Writer, n: i64) -> Result<()> {
        let mut member = writer.begin().await?;
        member.execute(query("INSERT INTO t (n) VALUES ($1)").bind(n)).await?;
        Box::new(member).commit().await
    }

    /// Waits until `n` writers queue for the lock.
    async fn queued(writer: &Writer, n: usize) {
        while writer.waiting.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_queued_behind_each_other_share_one_commit_and_each_hears_of_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reader) = writer(&dir).await;
        let mut first = writer.begin().await.expect("begin");
        first.execute(query("INSERT INTO t (n) VALUES (0)")).await.expect("insert");
        let others: Vec<_> = (1..=8)
            .map(|n| {
                tokio::spawn({
                    let writer = writer.clone();
                    async move { insert(&writer, n).await }
                })
            })
            .collect();
        queued(&writer, 8).await;
        // Nothing is visible before the group commits, not even the first writer's row.
        assert!(rows(&reader).await.is_empty());
        Box::new(first).commit().await.expect("commit");
        for other in others {
            other.await.expect("task").expect("committed");
        }
        assert_eq!(rows(&reader).await, (0..=8).collect::<Vec<_>>());
        let state = writer.state.lock().await;
        assert_eq!(state.commits, 1, "one transaction for the nine writers");
        assert!(state.group.is_none() && state.conn.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_arriving_one_by_one_from_many_tasks_are_paced_into_few_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reader) = writer(&dir).await;
        // Sixteen tasks each write ten times, a few milliseconds apart: seldom queued behind each
        // other, so without pacing nearly every write would be a commit of its own.
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                tokio::spawn({
                    let writer = writer.clone();
                    async move {
                        for i in 0..10 {
                            tokio::time::sleep(Duration::from_millis(3 + (t % 5) as u64)).await;
                            insert(&writer, t * 10 + i).await?;
                        }
                        Ok::<_, StoreError>(())
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("every write commits");
        }
        assert_eq!(rows(&reader).await, (0..160).collect::<Vec<_>>());
        let state = writer.state.lock().await;
        assert!(state.lingered > 0, "writers left their groups open for others");
        assert!(state.commits <= 40, "160 writes in {} commits", state.commits);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_task_writing_on_its_own_is_not_paced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reader) = writer(&dir).await;
        for n in 0..30 {
            insert(&writer, n).await.expect("insert");
            Single(&writer).execute(query("INSERT INTO t (n) VALUES ($1)").bind(100 + n)).await.expect("single");
        }
        assert_eq!(rows(&reader).await.len(), 60);
        let state = writer.state.lock().await;
        assert_eq!(state.lingered, 0, "a loop in one task never waits for others");
        assert_eq!(state.commits, 30, "each transaction commits at once; single statements on their own");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_or_dropped_member_loses_only_its_own_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reader) = writer(&dir).await;
        let mut first = writer.begin().await.expect("begin");
        first.execute(query("INSERT INTO t (n) VALUES (1)")).await.expect("insert");
        let failing = tokio::spawn({
            let writer = writer.clone();
            async move {
                let mut member = writer.begin().await?;
                member.execute(query("INSERT INTO t (n) VALUES (2)")).await?;
                // The same key again: this member fails and drops its transaction.
                member.execute(query("INSERT INTO t (n) VALUES (1)")).await?;
                Box::new(member).commit().await
            }
        });
        let good = tokio::spawn({
            let writer = writer.clone();
            async move { insert(&writer, 3).await }
        });
        queued(&writer, 2).await;
        Box::new(first).commit().await.expect("commit");
        let failed = failing.await.expect("task");
        assert!(matches!(failed, Err(StoreError::Database(_))), "a duplicate key fails its member: {failed:?}");
        good.await.expect("task").expect("the other member commits");
        assert_eq!(rows(&reader).await, vec![1, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_whose_members_are_all_gone_is_still_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reader) = writer(&dir).await;
        let mut first = writer.begin().await.expect("begin");
        first.execute(query("INSERT INTO t (n) VALUES (1)")).await.expect("insert");
        // A second writer queues, so the first leaves the group open and waits behind it; both
        // tasks are then cancelled.
        let second = tokio::spawn({
            let writer = writer.clone();
            async move { insert(&writer, 2).await }
        });
        queued(&writer, 1).await;
        let committing = tokio::spawn(async move { Box::new(first).commit().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        second.abort();
        committing.abort();
        // The first writer's row was released into the group: a later writer, or the task its
        // cancellation spawned, commits it; the write lock is not held for ever.
        for _ in 0..500 {
            if rows(&reader).await.contains(&1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(rows(&reader).await.contains(&1));
        insert(&writer, 3).await.expect("the writer is free again");
        assert!(rows(&reader).await.contains(&3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_dropped_alone_gives_the_write_lock_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reader) = writer(&dir).await;
        let mut member = writer.begin().await.expect("begin");
        member.execute(query("INSERT INTO t (n) VALUES (1)")).await.expect("insert");
        drop(member);
        // Another process's writer gets the lock once the spawned task has ended the group.
        let other =
            SqliteConnectOptions::new().filename(dir.path().join("group.db")).busy_timeout(Duration::from_secs(10));
        let mut other = sqlx::SqliteConnection::connect_with(&other).await.expect("connect");
        sqlx::query("INSERT INTO t (n) VALUES (2)").execute(&mut other).await.expect("the lock was given back");
        assert_eq!(rows(&reader).await, vec![2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_statement_joins_an_open_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reader) = writer(&dir).await;
        let mut first = writer.begin().await.expect("begin");
        first.execute(query("INSERT INTO t (n) VALUES (1)")).await.expect("insert");
        let single = tokio::spawn({
            let writer = writer.clone();
            async move {
                let mut single = Single(&writer);
                single.execute(query("INSERT INTO t (n) VALUES (2)")).await?;
                // A statement that fails loses only itself.
                single.execute(query("INSERT INTO t (n) VALUES (1)")).await
            }
        });
        queued(&writer, 1).await;
        Box::new(first).commit().await.expect("commit");
        assert!(single.await.expect("task").is_err());
        assert_eq!(rows(&reader).await, vec![1, 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_statements_and_idle_work_see_committed_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reader) = writer(&dir).await;
        let n = Single(&writer).execute(query("INSERT INTO t (n) VALUES (7)")).await.expect("insert");
        assert_eq!(n, 1);
        assert_eq!(Single(&writer).int(query("SELECT max(n) FROM t")).await.expect("read"), Some(7));
        let count: i64 = writer
            .idle(async |pool| sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(pool).await.expect("count"))
            .await;
        assert_eq!(count, 1);
        assert_eq!(rows(&reader).await, vec![7]);
    }
}
