//! The store: one SQLite file, its tables, checkpoints and reads.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use analytics::merge::{Window, WindowKey, WindowReach};
use analytics::reach::{Reach, ReachUnion};
use analytics::{Counters, Pane};
use anyhow::{bail, Context, Result};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::pending::{roll_up, Gain, Gains, Pending, Row};
use crate::tiers::{Range, Scope, Spans, Tier, DAY_MS};

/// The layout this version reads and writes (SQLite's `user_version`).
pub const FORMAT: i64 = 2;

/// Marks the file as a history (SQLite's `application_id`): "MPH1".
const APPLICATION_ID: i64 = 0x4d50_4831;

/// The file in a history folder.
const FILE: &str = "history.sqlite";

/// Rows dropped from a tier past its span only once no pane has reached
/// them for this long (in event time): a re-emitted pane still finds the
/// marks that keep it out.
const GRACE_MS: i64 = DAY_MS;

/// How often (in event time) tiers drop what is past their span.
const PRUNE_EVERY_MS: i64 = 3_600_000;

/// The sketch comes last, in the tables too: a query of the counters then
/// never reads through its overflow pages.
const COUNTERS: &str = "impressions, clicks, conversions, spend_micros, revenue_micros, \
     late_records, panes, records, late_panes, windows, reach_sketch";

/// A day is rolled up from its hours once the newest event time is this
/// far past its end; panes for it after that add to its rows directly.
const DAY_CLOSES_AFTER_MS: i64 = 3_600_000;

/// What sums are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Campaign,
    Channel,
}

impl Key {
    fn column(self) -> &'static str {
        match self {
            Key::Campaign => "campaign",
            Key::Channel => "channel",
        }
    }

    fn scope(self) -> Scope {
        match self {
            Key::Campaign => Scope::Campaign,
            Key::Channel => Scope::Channel,
        }
    }
}

/// Where the history is kept.
#[derive(Debug, Clone)]
pub enum Place {
    /// In this folder, for the next run.
    Folder(PathBuf),
    /// In memory: nothing outlives the process.
    Memory,
}

/// What a history holds beside its windows, for the consumer to go on.
#[derive(Debug, Default)]
pub struct Resumed {
    /// Per (topic, partition), the next offset to read.
    pub positions: BTreeMap<(String, i32), i64>,
    /// The consumer's own state, by name, as it gave it.
    pub state: BTreeMap<String, String>,
}

/// What a checkpoint writes beside the windows.
pub struct Checkpoint<'a> {
    pub positions: &'a BTreeMap<(String, i32), i64>,
    pub state: Vec<(&'static str, String)>,
    /// The newest event time merged: how far back each tier reaches.
    pub newest: Option<i64>,
}

/// A campaign's settings, as its newest pane said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Campaign {
    pub name: Option<Arc<str>>,
    pub target_cpa_micros: Option<i64>,
    pub daily_budget_micros: Option<i64>,
    /// Start and end, in milliseconds.
    pub flight: Option<(i64, i64)>,
}

impl Campaign {
    fn of(w: &Window) -> Campaign {
        Campaign {
            name: w.campaign_name.clone(),
            target_cpa_micros: w.target_cpa_micros,
            daily_budget_micros: w.daily_budget_micros,
            flight: w.flight,
        }
    }

    fn apply(&self, w: &mut Window) {
        w.campaign_name = self.name.clone();
        w.target_cpa_micros = self.target_cpa_micros;
        w.daily_budget_micros = self.daily_budget_micros;
        w.flight = self.flight;
    }
}

pub struct History {
    /// One connection: the merge writes, the API reads between its runs.
    conn: Mutex<Connection>,
    place: String,
    spans: Spans,
    newest: Option<i64>,
    campaigns: HashMap<Arc<str>, Campaign>,
    pending: Pending,
    /// Day rows before this are rolled up from their hours.
    days_rolled: i64,
    pruned_at: i64,
    /// Held open: keeps a second dashboard out of the folder.
    _lock: Option<File>,
}

/// Refuses a folder another process holds.
fn lock(folder: &Path) -> Result<File> {
    let path = folder.join("LOCK");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => bail!(
            "another dashboard is using the history in {}: stop it, or give this one another \
             history folder",
            folder.display()
        ),
        Err(TryLockError::Error(e)) => Err(e).context(format!("locking {}", path.display())),
    }
}

/// Creates the tables of an empty file, or checks a file's layout.
fn prepare(conn: &Connection, place: &str) -> Result<()> {
    let rebuild = "Move it aside or delete it: the dashboard then rebuilds the history from \
                   `results` (and `logs.dlq`), as far back as they still hold";
    let read = |conn: &Connection| -> rusqlite::Result<(i64, i64, i64)> {
        let id = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let version = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let tables = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        Ok((id, version, tables))
    };
    let (id, version, tables) =
        read(conn).with_context(|| format!("{place} is damaged or is not a history. {rebuild}"))?;
    if tables > 0 && id != APPLICATION_ID {
        bail!("{place} holds another SQLite database, not a dashboard's history. {rebuild}");
    }
    if tables > 0 && version != FORMAT {
        bail!(
            "{place} holds a history in format {version}; this dashboard reads format {FORMAT}. \
             Run the dashboard that wrote it, or: {rebuild}"
        );
    }
    if tables > 0 {
        return Ok(());
    }
    let mut ddl = format!(
        "PRAGMA application_id = {APPLICATION_ID};
         PRAGMA user_version = {FORMAT};
         CREATE TABLE positions (topic TEXT NOT NULL, partition INTEGER NOT NULL,
             next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition)) WITHOUT ROWID;
         CREATE TABLE state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE campaigns (campaign TEXT PRIMARY KEY, campaign_name TEXT,
             target_cpa_micros INTEGER, daily_budget_micros INTEGER,
             flight_start_ms INTEGER, flight_end_ms INTEGER);"
    );
    let tables = Tier::ALL
        .into_iter()
        .flat_map(|t| t.tables().map(move |table| (table, t == Tier::Minute)));
    for (table, minute) in tables {
        let marks = match minute {
            true => "marks TEXT NOT NULL, touched INTEGER NOT NULL,",
            false => "",
        };
        ddl.push_str(&format!(
            "CREATE TABLE {table} (window_start INTEGER NOT NULL, campaign TEXT NOT NULL,
                 channel TEXT NOT NULL, window_end INTEGER NOT NULL,
                 impressions INTEGER NOT NULL, clicks INTEGER NOT NULL,
                 conversions INTEGER NOT NULL, spend_micros INTEGER NOT NULL,
                 revenue_micros INTEGER NOT NULL, late_records INTEGER NOT NULL,
                 panes INTEGER NOT NULL, records INTEGER NOT NULL, late_panes INTEGER NOT NULL,
                 windows INTEGER NOT NULL, {marks} reach_sketch BLOB,
                 PRIMARY KEY (window_start, campaign, channel)) WITHOUT ROWID;"
        ));
    }
    // `/api/top` sums a range's rows per campaign or channel, then unions
    // the sketches of the few it returns. Over days, whose sketches are
    // most of their rows, the sums read an index without them, and the
    // unions find each name's rows by name. A day row is written once, so
    // these cost little; on hours they would change at every checkpoint.
    for key in [Key::Campaign, Key::Channel] {
        let table = Tier::Day
            .table_of(key.scope())
            .expect("rollups have every scope");
        let column = key.column();
        ddl.push_str(&format!(
            "CREATE INDEX {table}_sums ON {table} (window_start, campaign, channel,
                 impressions, clicks, conversions, spend_micros, revenue_micros,
                 late_records, windows);
             CREATE INDEX {table}_by_name ON {table} ({column}, window_start);"
        ));
    }
    conn.execute_batch(&format!("BEGIN; {ddl} COMMIT;"))
        .with_context(|| format!("creating the history in {place}"))
}

/// `0:41 2:17`: each results partition's last offset counted.
fn marks_text(marks: &[(i32, i64)]) -> String {
    let parts: Vec<String> = marks.iter().map(|(p, o)| format!("{p}:{o}")).collect();
    parts.join(" ")
}

fn parse_marks(text: &str) -> Vec<(i32, i64)> {
    text.split_whitespace()
        .filter_map(|m| {
            let (p, o) = m.split_once(':')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect()
}

fn sql_err(e: rusqlite::Error) -> anyhow::Error {
    anyhow::Error::new(e)
}

/// A row of a tier as a window; `marks` for the minute tier.
fn row(r: &rusqlite::Row, minute: bool) -> rusqlite::Result<Window> {
    let campaign: String = r.get(1)?;
    let channel: String = r.get(2)?;
    let marks = if minute {
        parse_marks(&r.get::<_, String>(15)?)
    } else {
        Vec::new()
    };
    let mut w = Window::new(
        Arc::from(campaign),
        Arc::from(channel),
        r.get(0)?,
        r.get(3)?,
        marks,
    );
    w.counters = Counters {
        impressions: r.get(4)?,
        clicks: r.get(5)?,
        conversions: r.get(6)?,
        spend_micros: r.get(7)?,
        revenue_micros: r.get(8)?,
        late_records: r.get(9)?,
    };
    w.panes = r.get(10)?;
    w.records = r.get(11)?;
    w.late_panes = r.get(12)?;
    w.windows = r.get(13)?;
    if let Some(bytes) = r.get::<_, Option<Vec<u8>>>(14)? {
        w.reach = WindowReach::Packed(bytes.into_boxed_slice());
    }
    Ok(w)
}

impl History {
    /// Opens the history kept at `place`, or starts one; refuses one of
    /// another format, or damaged, saying how to rebuild it.
    pub fn open(place: &Place, spans: Spans) -> Result<(History, Resumed)> {
        let (conn, name, lock) = match place {
            Place::Memory => (
                Connection::open_in_memory().map_err(sql_err)?,
                "memory".to_string(),
                None,
            ),
            Place::Folder(folder) => {
                std::fs::create_dir_all(folder)
                    .with_context(|| format!("creating the history folder {}", folder.display()))?;
                let lock = lock(folder)?;
                let file = folder.join(FILE);
                let conn = Connection::open(&file)
                    .with_context(|| format!("opening the history {}", file.display()))?;
                let wal = conn
                    .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
                    // A page cache of 32 MiB: the hot rows' pages stay in it.
                    .and_then(|_| {
                        conn.execute_batch(
                            "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768",
                        )
                    });
                if let Err(e) = wal {
                    bail!(
                        "the history {} is damaged or is not a history ({e}). Move it aside or \
                         delete it: the dashboard then rebuilds the history from `results`, as \
                         far back as it still holds",
                        file.display()
                    );
                }
                (conn, format!("the history {}", file.display()), Some(lock))
            }
        };
        prepare(&conn, &name)?;
        let resumed = Resumed {
            positions: conn
                .prepare("SELECT topic, partition, next_offset FROM positions")?
                .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?,
            state: conn
                .prepare("SELECT name, value FROM state")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?,
        };
        let campaigns = conn
            .prepare(
                "SELECT campaign, campaign_name, target_cpa_micros, daily_budget_micros, \
                 flight_start_ms, flight_end_ms FROM campaigns",
            )?
            .query_map([], |r| {
                let flight = match (r.get(4)?, r.get(5)?) {
                    (Some(s), Some(e)) => Some((s, e)),
                    _ => None,
                };
                Ok((
                    Arc::from(r.get::<_, String>(0)?),
                    Campaign {
                        name: r.get::<_, Option<String>>(1)?.map(Arc::from),
                        target_cpa_micros: r.get(2)?,
                        daily_budget_micros: r.get(3)?,
                        flight,
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let kept = |name| resumed.state.get(name).and_then(|v| v.parse::<i64>().ok());
        let newest = kept(NEWEST);
        Ok((
            History {
                conn: Mutex::new(conn),
                place: name,
                spans,
                newest,
                campaigns,
                pending: Pending::default(),
                days_rolled: kept(DAYS_ROLLED).unwrap_or(i64::MIN),
                pruned_at: newest.unwrap_or(i64::MIN),
                _lock: lock,
            },
            resumed,
        ))
    }

    /// Deletes the history kept in `folder` (for `--fresh`), once no
    /// dashboard holds it; says what went, or `None` if there was none.
    pub fn remove(folder: &Path) -> Result<Option<String>> {
        let file = folder.join(FILE);
        if !file.exists() {
            return Ok(None);
        }
        let _lock = lock(folder)?;
        let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
        for suffix in ["", "-wal", "-shm"] {
            let path = folder.join(format!("{FILE}{suffix}"));
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).context(format!("deleting {}", path.display()))
                }
                _ => {}
            }
        }
        Ok(Some(format!("{} ({} MiB)", file.display(), bytes >> 20)))
    }

    /// Where it is, for messages: "memory" or "the history FILE".
    pub fn place(&self) -> &str {
        &self.place
    }

    pub fn spans(&self) -> &Spans {
        &self.spans
    }

    /// A pane the merge counted into the window `key` (`first` if it is the
    /// window's first): written with the next checkpoint.
    pub fn count(&mut self, pane: &Pane, key: WindowKey, first: bool) {
        self.pending.count(pane, key, first);
    }

    /// Writes, in one transaction, the windows changed since the last
    /// checkpoint (found by `window`), what their hours gained, the days
    /// that closed (rolled up from their hours) and what closed days
    /// gained, the positions they were merged up to and the consumer's
    /// state. On an error (a full disk) nothing is written and everything
    /// stays pending for the next try.
    pub fn checkpoint<'w>(
        &mut self,
        window: impl Fn(&WindowKey) -> Option<&'w Window>,
        at: Checkpoint<'_>,
    ) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let mut gains = Gains::new();
        let campaigns = self.put_windows(&tx, window, at.newest, &mut gains)?;
        put_gains(&tx, gains)?;
        let days_rolled = self.roll_days(&tx, at.newest)?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO campaigns (campaign, campaign_name, target_cpa_micros, \
                 daily_budget_micros, flight_start_ms, flight_end_ms) VALUES (?1, ?2, ?3, ?4, \
                 ?5, ?6)",
            )?;
            for (name, c) in &campaigns {
                put.execute(params![
                    &**name,
                    c.name.as_deref(),
                    c.target_cpa_micros,
                    c.daily_budget_micros,
                    c.flight.map(|f| f.0),
                    c.flight.map(|f| f.1),
                ])?;
            }
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO positions (topic, partition, next_offset) VALUES (?1, ?2, ?3)",
            )?;
            for ((topic, partition), next) in at.positions {
                put.execute(params![topic, partition, next])?;
            }
            let mut put =
                tx.prepare_cached("INSERT OR REPLACE INTO state (name, value) VALUES (?1, ?2)")?;
            for (name, value) in &at.state {
                put.execute(params![name, value])?;
            }
            if let Some(newest) = at.newest {
                put.execute(params![NEWEST, newest.to_string()])?;
            }
            put.execute(params![DAYS_ROLLED, days_rolled.to_string()])?;
        }
        let prune = at
            .newest
            .filter(|&n| n >= self.pruned_at.saturating_add(PRUNE_EVERY_MS));
        if let Some(newest) = prune {
            for tier in Tier::ALL {
                let mut floor = self.spans.floor(tier, Some(newest));
                // Hours stay until their day is rolled up from them.
                if tier == Tier::Hour {
                    floor = floor.min(days_rolled);
                }
                if floor == i64::MIN {
                    continue;
                }
                let touched = match tier {
                    Tier::Minute => " AND touched < ?2",
                    _ => " AND ?2 = ?2",
                };
                for table in tier.tables() {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE window_start < ?1{touched}"),
                        params![floor, newest.saturating_sub(GRACE_MS)],
                    )?;
                }
            }
        }
        tx.commit()?;
        drop(conn);
        if let Some(newest) = prune {
            self.pruned_at = newest;
        }
        self.newest = at.newest.or(self.newest);
        self.days_rolled = days_rolled;
        self.campaigns.extend(campaigns);
        self.pending = Pending::default();
        Ok(())
    }

    /// Writes the changed minute windows whole, with their marks, and
    /// adds what they gained to their rollups' `gains`; returns the
    /// campaigns whose settings changed.
    fn put_windows<'w>(
        &self,
        tx: &Transaction,
        window: impl Fn(&WindowKey) -> Option<&'w Window>,
        newest: Option<i64>,
        gains: &mut Gains,
    ) -> Result<HashMap<Arc<str>, Campaign>> {
        let mut campaigns: HashMap<Arc<str>, Campaign> = HashMap::new();
        let mut put = tx.prepare_cached(&format!(
            "INSERT OR REPLACE INTO minute (window_start, campaign, channel, window_end, \
             {COUNTERS}, marks, touched) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
             ?12, ?13, 1, ?14, ?15, ?16)"
        ))?;
        let touched = newest.unwrap_or(i64::MIN);
        for (key, gain) in &self.pending.windows {
            let Some(w) = window(key) else { continue };
            let (sketch, bytes) = w.reach.sketch_and_bytes().unzip();
            roll_up(gains, key, gain, sketch.as_ref(), self.days_rolled);
            let c = &w.counters;
            put.execute(params![
                w.window_start,
                &*w.campaign,
                &*w.channel,
                w.window_end,
                c.impressions,
                c.clicks,
                c.conversions,
                c.spend_micros,
                c.revenue_micros,
                c.late_records,
                w.panes,
                w.records,
                w.late_panes,
                bytes,
                marks_text(w.marks()),
                touched,
            ])?;
            let campaign = Campaign::of(w);
            if self.campaigns.get(&w.campaign) != Some(&campaign) {
                campaigns.insert(w.campaign.clone(), campaign);
            }
        }
        Ok(campaigns)
    }

    /// Rolls up, from their hours, the days that closed since the last
    /// checkpoint: each day row is written once, instead of at every
    /// checkpoint of the day. Returns where days are rolled up until.
    fn roll_days(&self, tx: &Transaction, newest: Option<i64>) -> Result<i64> {
        let Some(newest) = newest else {
            return Ok(self.days_rolled);
        };
        let until = Tier::Day.start_of(newest.saturating_sub(DAY_CLOSES_AFTER_MS));
        if until <= self.days_rolled {
            return Ok(self.days_rolled);
        }
        let mut gains = Gains::new();
        for scope in Scope::ALL {
            let (Some(hours), Some(days)) = (Tier::Hour.table_of(scope), Tier::Day.table_of(scope))
            else {
                continue;
            };
            let mut query = tx.prepare_cached(&format!(
                "SELECT window_start, campaign, channel, window_end, {COUNTERS} FROM {hours} \
                 WHERE window_start >= ?1 AND window_start < ?2"
            ))?;
            let rows = query.query_map(params![self.days_rolled, until], |r| row(r, false))?;
            for hour in rows {
                let hour = hour?;
                let start = Tier::Day.start_of(hour.window_start);
                gains
                    .entry(days)
                    .or_default()
                    .entry((start, hour.campaign.clone(), hour.channel.clone()))
                    .or_insert_with(|| Gain::starting(start + DAY_MS))
                    .add_row(&hour);
            }
        }
        put_gains(tx, gains)?;
        Ok(until)
    }

    /// The minute windows starting at `from` or later: what a restarted
    /// merge holds again.
    pub fn hot(&self, from: i64) -> Result<Vec<Window>> {
        self.read(
            &[Range {
                tier: Tier::Minute,
                from,
                to: i64::MAX,
            }],
            None,
            None,
            usize::MAX,
        )
    }

    /// A window of the minute tier, with its marks.
    pub fn window(&self, key: &WindowKey) -> Result<Option<Window>> {
        let conn = self.conn.lock();
        let mut w = conn
            .prepare_cached(&format!(
                "SELECT window_start, campaign, channel, window_end, {COUNTERS}, marks FROM \
                 minute WHERE window_start = ?1 AND campaign = ?2 AND channel = ?3"
            ))?
            .query_row(params![key.0, &*key.1, &*key.2], |r| row(r, true))
            .optional()?;
        if let Some(w) = &mut w {
            self.with_campaign(w);
        }
        Ok(w)
    }

    fn with_campaign(&self, w: &mut Window) {
        if let Some(c) = self.campaigns.get(&w.campaign) {
            c.apply(w);
        }
    }

    /// The rows of `ranges`, of one campaign or channel if given, in order
    /// of start, campaign and channel within each range; at most `limit`
    /// and one more (the caller says the range is too wide).
    pub fn read(
        &self,
        ranges: &[Range],
        campaign: Option<&str>,
        channel: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Window>> {
        self.read_from(ranges, campaign, channel, limit, Scope::Key)
    }

    /// The rows of `ranges` (of one campaign or channel if given) summed
    /// over every key, one per hour or day (`campaign` and `channel` are
    /// `*` where summed over); minute ranges read each key's windows. What
    /// a total over a range needs, whatever the number of keys.
    pub fn totals(
        &self,
        ranges: &[Range],
        campaign: Option<&str>,
        channel: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Window>> {
        let scope = Scope::for_filter(campaign.is_some(), channel.is_some(), None);
        self.read_from(ranges, campaign, channel, limit, scope)
    }

    fn read_from(
        &self,
        ranges: &[Range],
        campaign: Option<&str>,
        channel: Option<&str>,
        limit: usize,
        scope: Scope,
    ) -> Result<Vec<Window>> {
        let conn = self.conn.lock();
        let mut out = Vec::new();
        for range in ranges {
            let minute = range.tier == Tier::Minute;
            let marks = if minute { ", marks" } else { "" };
            let table = range.tier.table_of(scope).unwrap_or(range.tier.table());
            let mut query = conn.prepare_cached(&format!(
                "SELECT window_start, campaign, channel, window_end, {COUNTERS}{marks} FROM {table} \
                 WHERE window_start >= ?1 AND window_start < ?2 AND (?3 IS NULL OR campaign = ?3) \
                 AND (?4 IS NULL OR channel = ?4) ORDER BY window_start, campaign, channel"
            ))?;
            let rows = query.query_map(params![range.from, range.to, campaign, channel], |r| {
                row(r, minute)
            })?;
            for w in rows {
                let mut w = w?;
                self.with_campaign(&mut w);
                out.push(w);
                if out.len() > limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// Every campaign's settings, as its newest pane said.
    pub fn campaigns(&self) -> impl Iterator<Item = (&str, &Campaign)> {
        self.campaigns.iter().map(|(name, c)| (&**name, c))
    }

    /// The counters of `ranges` summed per campaign, in SQLite: for totals
    /// that need neither reach nor the rows.
    pub fn sums(&self, ranges: &[Range]) -> Result<BTreeMap<String, Counters>> {
        Ok(self
            .sums_by(ranges, Key::Campaign, None, None)?
            .into_iter()
            .map(|(name, (counters, _))| (name, counters))
            .collect())
    }

    /// The counters of `ranges` (of one campaign or channel if given)
    /// summed per campaign or per channel, in SQLite, with the number of
    /// the transform's windows in each.
    pub fn sums_by(
        &self,
        ranges: &[Range],
        by: Key,
        campaign: Option<&str>,
        channel: Option<&str>,
    ) -> Result<BTreeMap<String, (Counters, u64)>> {
        let conn = self.conn.lock();
        let mut out: BTreeMap<String, (Counters, u64)> = BTreeMap::new();
        let column = by.column();
        let scope = Scope::for_filter(campaign.is_some(), channel.is_some(), Some(by.scope()));
        for range in ranges {
            let table = range.tier.table_of(scope).unwrap_or(range.tier.table());
            let mut query = conn.prepare_cached(&format!(
                "SELECT {column}, sum(impressions), sum(clicks), sum(conversions), \
                 sum(spend_micros), sum(revenue_micros), sum(late_records), sum(windows) FROM {table} \
                 WHERE window_start >= ?1 AND window_start < ?2 AND (?3 IS NULL OR campaign = ?3) \
                 AND (?4 IS NULL OR channel = ?4) GROUP BY {column}"
            ))?;
            let rows = query.query_map(params![range.from, range.to, campaign, channel], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Counters {
                        impressions: r.get(1)?,
                        clicks: r.get(2)?,
                        conversions: r.get(3)?,
                        spend_micros: r.get(4)?,
                        revenue_micros: r.get(5)?,
                        late_records: r.get(6)?,
                    },
                    r.get::<_, u64>(7)?,
                ))
            })?;
            for row in rows {
                let (name, counters, windows) = row?;
                let sum = out.entry(name).or_default();
                sum.0.add(&counters);
                sum.1 += windows;
            }
        }
        Ok(out)
    }

    /// The union of the reach sketches of `ranges` per campaign or per
    /// channel, for the `names` given only, in one pass over the rows.
    pub fn reach_by(
        &self,
        ranges: &[Range],
        by: Key,
        names: &[&str],
        campaign: Option<&str>,
        channel: Option<&str>,
    ) -> Result<HashMap<String, ReachUnion>> {
        let conn = self.conn.lock();
        let column = by.column();
        let names = serde_json::to_string(names)?;
        let scope = Scope::for_filter(campaign.is_some(), channel.is_some(), Some(by.scope()));
        let mut out: HashMap<String, ReachUnion> = HashMap::new();
        for range in ranges {
            let table = range.tier.table_of(scope).unwrap_or(range.tier.table());
            let mut query = conn.prepare_cached(&format!(
                "SELECT {column}, reach_sketch FROM {table} WHERE window_start >= ?1 AND \
                 window_start < ?2 AND (?3 IS NULL OR campaign = ?3) AND (?4 IS NULL OR \
                 channel = ?4) AND {column} IN (SELECT value FROM json_each(?5))"
            ))?;
            let rows = query.query_map(
                params![range.from, range.to, campaign, channel, names],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<Vec<u8>>>(1)?)),
            )?;
            for row in rows {
                let (name, bytes) = row?;
                let Some(bytes) = bytes else { continue };
                if let Ok(sketch) = Reach::from_bytes(&bytes) {
                    out.entry(name).or_default().add(&sketch);
                }
            }
        }
        Ok(out)
    }

    /// Where a tier is whole from.
    pub fn floor(&self, tier: Tier) -> i64 {
        self.spans.floor(tier, self.newest)
    }

    /// Where a tier is whole: from its floor, until where it is rolled up
    /// to (days that have not closed are read from their hours).
    pub fn held(&self, tier: Tier) -> (i64, i64) {
        let until = match tier {
            Tier::Day => self.days_rolled,
            Tier::Minute | Tier::Hour => i64::MAX,
        };
        (self.floor(tier), until)
    }

    /// The earliest and latest window start held, if any: each from the
    /// finest tier that holds it (a rollup starts at its hour or day).
    pub fn bounds(&self) -> Result<Option<(i64, i64)>> {
        let conn = self.conn.lock();
        let mut bounds: Option<(i64, i64)> = None;
        for tier in Tier::ALL {
            // Apart, so that each reads one end of the key (together, they
            // would scan the table).
            let (lo, hi): (Option<i64>, Option<i64>) = conn.query_row(
                &format!(
                    "SELECT (SELECT min(window_start) FROM {0}), (SELECT max(window_start) FROM {0})",
                    tier.table()
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let (Some(lo), Some(hi)) = (lo, hi) else {
                continue;
            };
            bounds = Some(match bounds {
                None => (lo, hi),
                // A coarser tier's row is earlier only if it reaches
                // before the finer tier's first one.
                Some((first, last)) if lo < tier.start_of(first) => (lo, last.max(hi)),
                Some((first, last)) => (first, last.max(hi)),
            });
        }
        Ok(bounds)
    }
}

/// The state entry that keeps the newest event time checkpointed.
const NEWEST: &str = "history.newest";

/// The state entry that keeps where days are rolled up until.
const DAYS_ROLLED: &str = "history.days_rolled";

/// Adds gains to their rollup rows: counters summed, sketches unioned.
fn put_gains(tx: &Transaction, gains: Gains) -> Result<()> {
    for (table, rows) in gains {
        put_table_gains(tx, table, rows)?;
    }
    Ok(())
}

fn put_table_gains(tx: &Transaction, table: &str, rows: HashMap<Row, Gain>) -> Result<()> {
    let mut old_reach = tx.prepare_cached(&format!(
        "SELECT reach_sketch FROM {table} WHERE window_start = ?1 AND campaign = ?2 AND \
         channel = ?3"
    ))?;
    let mut put = tx.prepare_cached(&format!(
        "INSERT INTO {table} (window_start, campaign, channel, window_end, {COUNTERS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
         ON CONFLICT (window_start, campaign, channel) DO UPDATE SET \
         impressions = impressions + excluded.impressions, \
         clicks = clicks + excluded.clicks, \
         conversions = conversions + excluded.conversions, \
         spend_micros = spend_micros + excluded.spend_micros, \
         revenue_micros = revenue_micros + excluded.revenue_micros, \
         late_records = late_records + excluded.late_records, \
         panes = panes + excluded.panes, records = records + excluded.records, \
         late_panes = late_panes + excluded.late_panes, \
         windows = windows + excluded.windows, \
         reach_sketch = coalesce(excluded.reach_sketch, reach_sketch)"
    ))?;
    for ((start, campaign, channel), gain) in rows {
        // A gain without a sketch keeps the row's.
        let reach = match gain.reach {
            None => None,
            Some(mut union) => {
                let old: Option<Option<Vec<u8>>> = old_reach
                    .query_row(params![start, &*campaign, &*channel], |r| r.get(0))
                    .optional()?;
                if let Some(old) = old.flatten().and_then(|b| Reach::from_bytes(&b).ok()) {
                    union.add(&old);
                }
                Some(union.to_reach().to_bytes())
            }
        };
        let c = &gain.counters;
        put.execute(params![
            start,
            &*campaign,
            &*channel,
            gain.window_end,
            c.impressions,
            c.clicks,
            c.conversions,
            c.spend_micros,
            c.revenue_micros,
            c.late_records,
            gain.panes,
            gain.records,
            gain.late_panes,
            gain.windows,
            reach,
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
