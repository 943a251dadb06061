use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use std::time::Instant;

use super::*;
use crate::disk::RETENTION_EVERY;

fn scratch(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("topics-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

fn open(path: &Path, retention: Retention) -> Topics {
    Topics::open(DataFolder::open(path).unwrap(), retention).unwrap()
}

fn append(topics: &Topics, topic: &str, partition: i32, value: &str) -> i64 {
    topics
        .append(topic, partition, 1_000, value.as_bytes().to_vec())
        .unwrap()
}

fn read_all(reader: &mut Reader) -> Vec<(i32, i64)> {
    let mut got = Vec::new();
    while let Some((p, r)) = reader.poll(Duration::from_millis(20)).unwrap() {
        got.push((p, r.offset));
    }
    got
}

/// What the in-memory and the durable topics both do.
fn offsets_readers_and_commits(topics: &Topics) {
    assert_eq!(topics.ensure_topic("t", 2).unwrap(), 2);
    assert_eq!(
        topics.ensure_topic("t", 5).unwrap(),
        2,
        "an existing topic keeps its count"
    );
    for i in 0..3 {
        assert_eq!(append(topics, "t", 1, &format!("v{i}")), i);
    }
    assert!(topics.append("t", 2, 0, b"x".to_vec()).is_err());
    assert!(topics.append("t", -1, 0, b"x".to_vec()).is_err());
    assert_eq!(topics.ends("t").unwrap(), [0, 3]);
    assert_eq!(topics.last("t", 0).unwrap(), None);
    assert_eq!(topics.last("t", 1).unwrap().unwrap().payload, b"v2");

    let mut reader = topics
        .reader("g", "t", &[StartAt::Beginning, StartAt::Offset(1)])
        .unwrap();
    assert_eq!(read_all(&mut reader), [(1, 1), (1, 2)]);
    reader.seek(1, 0).unwrap();
    assert_eq!(read_all(&mut reader), [(1, 0), (1, 1), (1, 2)]);
    let mut at_end = topics.reader("h", "t", &[StartAt::End; 2]).unwrap();
    assert!(read_all(&mut at_end).is_empty());
    append(topics, "t", 0, "new");
    assert_eq!(read_all(&mut at_end), [(0, 0)]);

    assert_eq!(topics.committed("g", "t", 2), [None, None]);
    topics.commit("g", "t", &[(1, 3)]).unwrap();
    assert_eq!(topics.committed("g", "t", 2), [None, Some(3)]);
    assert!(topics.commit("g", "t", &[(7, 1)]).is_err());
}

#[test]
fn in_memory_offsets_readers_and_commits() {
    offsets_readers_and_commits(&Topics::in_memory(1 << 20));
}

#[test]
fn on_disk_offsets_readers_and_commits() {
    let path = scratch("basics");
    let topics = open(&path, Retention::default());
    offsets_readers_and_commits(&topics);
    topics.shut_down().unwrap();
    std::fs::remove_dir_all(&path).unwrap();
}

fn stored_size(value: &str) -> usize {
    record_size(value.len())
}

#[test]
fn a_topic_nobody_reads_keeps_its_retention_and_its_last_record() {
    let value = "x".repeat(100);
    let topics = Topics::in_memory(10 * stored_size(&value));
    topics.ensure_topic("t", 1).unwrap();
    for _ in 0..100 {
        append(&topics, "t", 0, &value);
    }
    let (low, end) = topics.bounds("t", 0).unwrap();
    assert_eq!(end, 100);
    assert!(end - low <= 11, "{} records kept", end - low);
    let tiny = Topics::in_memory(1);
    tiny.ensure_topic("t", 1).unwrap();
    append(&tiny, "t", 0, "last");
    assert_eq!(tiny.last("t", 0).unwrap().unwrap().payload, b"last");
    // A reader behind what was dropped starts at what is left.
    let mut reader = topics.reader("late", "t", &[StartAt::Beginning]).unwrap();
    let read = read_all(&mut reader);
    assert_eq!(read.last(), Some(&(0, 99)));
    assert!(read[0].1 > 0);
}

#[test]
fn a_record_larger_than_the_retention_does_not_stall_the_partition() {
    let topics = Topics::in_memory(1000);
    topics.ensure_topic("t", 1).unwrap();
    let _reader = topics.reader("g", "t", &[StartAt::Beginning]).unwrap();
    // The reader has read nothing; the first record alone is over twice
    // the share, and the next one still goes in.
    append(&topics, "t", 0, &"z".repeat(5000));
    assert_eq!(append(&topics, "t", 0, "next"), 1);
}

#[test]
fn closing_frees_a_writer_waiting_for_a_reader_that_stopped() {
    let value = "w".repeat(200);
    let topics = Topics::in_memory(4 * stored_size(&value));
    topics.ensure_topic("t", 1).unwrap();
    let _stopped_reader = topics.reader("g", "t", &[StartAt::Beginning]).unwrap();
    let writing = {
        let topics = topics.clone();
        std::thread::spawn(move || loop {
            if let Err(e) = topics.append("t", 0, 0, value.as_bytes().to_vec()) {
                return e;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!writing.is_finished(), "the writer waits for the reader");
    topics.close();
    let error = writing.join().unwrap();
    assert!(error.is::<Closed>(), "{error:#}");
}

#[test]
fn a_writer_waits_for_readers_and_nothing_is_lost() {
    let value = "y".repeat(200);
    let size = stored_size(&value);
    let topics = Topics::in_memory(20 * size);
    topics.ensure_topic("t", 1).unwrap();
    let mut reader = topics.reader("g", "t", &[StartAt::Beginning]).unwrap();
    let writing = {
        let topics = topics.clone();
        let value = value.clone();
        std::thread::spawn(move || {
            for _ in 0..1000 {
                append(&topics, "t", 0, &value);
            }
        })
    };
    let mut next = 0;
    while next < 1000 {
        let Some((0, r)) = reader.poll(Duration::from_secs(5)).unwrap() else {
            panic!("the writer stalled at {next}");
        };
        assert_eq!(r.offset, next, "records arrive in order, none missing");
        next += 1;
        // Nothing read is dropped until it is committed.
        assert!(topics.stored_bytes() <= 2 * 20 * size + size);
        if next % 10 == 0 {
            topics.commit("g", "t", &[(0, next)]).unwrap();
        }
    }
    writing.join().unwrap();
}

/// A writer waiting for readers asks them to commit now (readers commit
/// at an interval, and it would wait out the rest of it); once they have,
/// it goes on and stops asking.
#[test]
fn a_writer_waiting_for_readers_asks_them_to_commit() {
    let value = "z".repeat(200);
    let topics = Topics::in_memory(4 * stored_size(&value));
    topics.ensure_topic("t", 1).unwrap();
    let mut reader = topics.reader("g", "t", &[StartAt::Beginning]).unwrap();
    let mut offsets = topic_io::Transport::offsets(&topics, "g", "t").unwrap();
    let appended = Arc::new(AtomicU64::new(0));
    let writing = {
        let (topics, appended) = (topics.clone(), appended.clone());
        std::thread::spawn(move || {
            for _ in 0..20 {
                append(&topics, "t", 0, &value);
                appended.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let asked = Instant::now();
    while !offsets.commit_wanted() {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "the writer never asked"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let waiting_at = appended.load(Ordering::Relaxed);
    assert!(waiting_at < 20, "it asks only while it waits");
    let read = read_all(&mut reader);
    offsets.commit(&[(0, read.len() as i64)], false).unwrap();
    while appended.load(Ordering::Relaxed) == waiting_at {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "the commit did not free it"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // It asks again only if it has to wait again; once done, never.
    let mut read = read.len() as i64;
    while !writing.is_finished() {
        read += read_all(&mut reader).len() as i64;
        offsets.commit(&[(0, read)], false).unwrap();
    }
    writing.join().unwrap();
    assert!(!offsets.commit_wanted());
}

/// On disk a writer waits for the store, never for readers: it asks
/// nothing of them.
#[test]
fn on_disk_a_writer_asks_no_reader_to_commit() {
    let path = scratch("no-commit-wanted");
    let topics = open(
        &path,
        Retention {
            memory_bytes: 1000,
            ..Retention::default()
        },
    );
    topics.ensure_topic("t", 1).unwrap();
    let _reader = topics.reader("g", "t", &[StartAt::Beginning]).unwrap();
    let offsets = topic_io::Transport::offsets(&topics, "g", "t").unwrap();
    for _ in 0..100 {
        append(&topics, "t", 0, &"d".repeat(200));
    }
    assert!(!offsets.commit_wanted());
    drop(topics);
    std::fs::remove_dir_all(&path).unwrap();
}

/// Everything written before a restart is there after it: records beyond
/// what memory holds (read back from the store), commits, the topic
/// layout and the harness's entries; the offsets go on.
#[test]
fn a_restart_finds_everything_as_it_was() {
    let path = scratch("restart");
    let retention = Retention {
        memory_bytes: 4096,
        ..Retention::default()
    };
    let topics = open(&path, retention.clone());
    topics.ensure_topic("logs", 3).unwrap();
    topics.ensure_topic("results", 1).unwrap();
    for i in 0..3000 {
        topics
            .append("logs", i % 3, i as i64, format!("event {i}").into_bytes())
            .unwrap();
    }
    topics
        .commit("pipeline", "logs", &[(0, 500), (2, 7)])
        .unwrap();
    topics.set_meta("generator", b"{\"sent\":3000}".to_vec());
    topics.flush().unwrap();
    assert!(
        topics.stored_bytes() < 3 * 4096,
        "memory holds the tails only: {} bytes",
        topics.stored_bytes()
    );
    // Read back through the store, in order.
    let mut reader = topics
        .reader("r", "logs", &[StartAt::Beginning; 3])
        .unwrap();
    let read = read_all(&mut reader);
    assert_eq!(read.len(), 3000);
    for p in 0..3 {
        let offsets: Vec<i64> = read.iter().filter(|(q, _)| *q == p).map(|r| r.1).collect();
        assert_eq!(offsets, (0..1000).collect::<Vec<_>>());
    }
    topics.shut_down().unwrap();
    drop(reader);
    drop(topics);

    let topics = open(&path, retention);
    assert_eq!(topics.ends("logs").unwrap(), [1000, 1000, 1000]);
    assert_eq!(topics.partition_count("results"), Some(1));
    assert_eq!(
        topics.committed("pipeline", "logs", 3),
        [Some(500), None, Some(7)]
    );
    assert_eq!(
        topics.meta("generator").as_deref(),
        Some(&b"{\"sent\":3000}"[..])
    );
    let last = topics.last("logs", 2).unwrap().unwrap();
    assert_eq!((last.offset, last.payload), (999, b"event 2999".to_vec()));
    let first = topics.read("logs", 1, 0, 2).unwrap();
    assert_eq!(first[1].payload, b"event 4");
    assert_eq!(first[1].timestamp_ms, 4);
    assert_eq!(topics.offset_for_time("logs", 0, 2_000).unwrap(), Some(667));
    assert_eq!(topics.append("logs", 0, 0, b"more".to_vec()).unwrap(), 1000);
    topics.ensure_topic("later", 1).unwrap();
    topics.shut_down().unwrap();
    drop(topics);

    let topics = open(&path, Retention::default());
    assert_eq!(topics.ends("logs").unwrap(), [1001, 1000, 1000]);
    assert!(
        topics.partition_count("later").is_some(),
        "a topic made after a restart is kept"
    );
    topics.shut_down().unwrap();
    std::fs::remove_dir_all(&path).unwrap();
}

/// Retention by size drops the oldest records every reader has committed,
/// keeps what a reader still needs, and survives a restart.
#[test]
fn retention_by_size_waits_for_readers() {
    let path = scratch("retention");
    let value = "r".repeat(1000);
    let retention = Retention {
        memory_bytes: 8192,
        partition_bytes: Some(20 * stored_size(&value) as u64),
        ..Retention::default()
    };
    let topics = open(&path, retention.clone());
    topics.ensure_topic("t", 1).unwrap();
    let mut reader = topics.reader("g", "t", &[StartAt::Beginning]).unwrap();
    // Retention drops whole chunks; a flush every 10 records ends one there.
    for _ in 0..20 {
        for _ in 0..10 {
            append(&topics, "t", 0, &value);
        }
        topics.flush().unwrap();
    }
    std::thread::sleep(RETENTION_EVERY + Duration::from_secs(1));
    assert_eq!(
        topics.bounds("t", 0).unwrap(),
        (0, 200),
        "nothing a reader needs goes"
    );
    topics.commit("g", "t", &[(0, 150)]).unwrap();
    let deadline = Instant::now() + RETENTION_EVERY * 3;
    while topics.bounds("t", 0).unwrap().0 == 0 {
        assert!(Instant::now() < deadline, "retention never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(topics.bounds("t", 0).unwrap(), (150, 200));
    let read = read_all(&mut reader);
    assert_eq!(
        read.first(),
        Some(&(0, 150)),
        "the reader goes on after what went"
    );
    topics.shut_down().unwrap();
    drop(reader);
    drop(topics);
    let topics = open(&path, retention);
    assert_eq!(topics.bounds("t", 0).unwrap(), (150, 200));
    topics.shut_down().unwrap();
    std::fs::remove_dir_all(&path).unwrap();
}

/// A disk short of space: the writes wait and say why, nothing is
/// dropped, and all of it is written once there is room.
#[test]
fn a_full_disk_makes_writers_wait_and_loses_nothing() {
    let path = scratch("full");
    let free = Arc::new(AtomicU64::new(u64::MAX));
    let retention = Retention {
        free_space: {
            let free = free.clone();
            Arc::new(move |_| Ok(free.load(Ordering::Relaxed)))
        },
        ..Retention::default()
    };
    let topics = open(&path, retention.clone());
    topics.ensure_topic("t", 1).unwrap();
    topics.flush().unwrap();
    free.store(1 << 20, Ordering::Relaxed);
    let writing = {
        let topics = topics.clone();
        std::thread::spawn(move || {
            for i in 0..100 {
                append(&topics, "t", 0, &format!("r{i}"));
            }
            topics.flush().unwrap();
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let why = loop {
        if let Some(why) = topics.trouble() {
            break why;
        }
        assert!(
            Instant::now() < deadline,
            "the full disk was never reported"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(why.contains("1 MiB free"), "{why}");
    assert!(why.contains(&path.display().to_string()), "{why}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!writing.is_finished(), "the flush waits for room");
    free.store(u64::MAX, Ordering::Relaxed);
    writing.join().unwrap();
    assert_eq!(topics.trouble(), None);
    topics.shut_down().unwrap();
    drop(topics);
    let topics = open(&path, retention);
    let all = topics.read("t", 0, 0, 1000).unwrap();
    assert_eq!(all.len(), 100);
    assert_eq!(all[99].payload, b"r99");
    topics.shut_down().unwrap();
    std::fs::remove_dir_all(&path).unwrap();
}

#[test]
fn a_removed_meta_entry_stays_removed_after_a_restart() {
    let path = scratch("remove-meta");
    let topics = open(&path, Retention::default());
    topics.set_meta("kept", b"1".to_vec());
    topics.set_meta("gone", b"2".to_vec());
    topics.set_meta("back", b"3".to_vec());
    topics.flush().unwrap();
    topics.remove_meta("gone");
    // Removed, then set again before the writer takes either: set wins.
    topics.remove_meta("back");
    topics.set_meta("back", b"4".to_vec());
    assert_eq!(topics.meta("gone"), None);
    topics.shut_down().unwrap();
    drop(topics);

    let topics = open(&path, Retention::default());
    assert_eq!(topics.meta("kept").as_deref(), Some(&b"1"[..]));
    assert_eq!(topics.meta("gone"), None);
    assert_eq!(topics.meta("back").as_deref(), Some(&b"4"[..]));
    topics.shut_down().unwrap();
    drop(topics);
    let _ = std::fs::remove_dir_all(&path);
}
