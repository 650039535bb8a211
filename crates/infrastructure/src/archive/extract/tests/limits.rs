//! S7: entry count, file and total sizes by header, and the decompressed-byte cap
//! that stops gzip bombs whatever the headers claim.

use std::io::Write;
use std::time::{Duration, Instant};

use fen_domain::ports::ArchiveErrorCode;
use flate2::write::GzEncoder;
use flate2::Compression;
use tar::EntryType;

use super::{reject, unpack};
use crate::archive::test_support::{all_paths, gzip, raw_header, RawTar, NAME, VERSION};

#[test]
fn more_than_4096_entries_is_too_large() {
    let mut tar = RawTar::demo();
    for index in 0..100_000 {
        tar = tar.file(&format!("extension/files/f{index}"), b"");
    }
    let started = Instant::now();
    let message = reject(&tar.gz(), ArchiveErrorCode::TooLarge);
    assert_eq!(
        message,
        format!("archive for {NAME}@{VERSION} exceeds the entry count limit (4097 > 4096); nothing was installed")
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_file_over_16_mib_is_too_large_by_its_header() {
    let archive = gzip(
        &RawTar::demo()
            .lying_entry("extension/files/big.bin", 16 * 1024 * 1024 + 1, b"")
            .unfinished(),
    );
    let message = reject(&archive, ArchiveErrorCode::TooLarge);
    assert!(
        message.contains("exceeds the file size limit (16777217 > 16777216)"),
        "{message}"
    );
}

#[test]
fn a_pax_size_that_overrides_a_small_header_is_what_counts() {
    let archive = RawTar::demo()
        .pax(&[("size", "104857600")])
        .file("extension/files/small.txt", b"tiny")
        .gz();
    let message = reject(&archive, ArchiveErrorCode::TooLarge);
    assert!(
        message.contains("file size limit (104857600 > 16777216)"),
        "{message}"
    );
}

/// `n` files of `each` zero bytes, streamed into a gzip encoder without holding the
/// tar in memory.
fn zero_files(n: usize, each: u64) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(&RawTar::demo().unfinished()).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for index in 0..n {
        let mut header = raw_header(
            format!("extension/files/zero{index}").as_bytes(),
            EntryType::Regular,
        );
        header.set_size(each);
        header.set_cksum();
        encoder.write_all(header.as_bytes()).unwrap();
        let mut left = each;
        while left > 0 {
            let n = left.min(chunk.len() as u64);
            encoder.write_all(&chunk[..n as usize]).unwrap();
            left -= n;
        }
    }
    encoder.write_all(&[0u8; 1024]).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn many_files_over_64_mib_in_total_are_too_large() {
    let archive = zero_files(6, 15 * 1024 * 1024);
    assert!(archive.len() < 1024 * 1024, "zeros compress well");
    let message = reject(&archive, ArchiveErrorCode::TooLarge);
    assert!(
        message.contains("exceeds the total size limit ("),
        "{message}"
    );
}

#[test]
fn a_gzip_bomb_behind_a_small_entry_stops_at_the_cap() {
    // A tiny valid tree, then 100 MiB of zeros: zero blocks end the tar, but the
    // decoder would produce them all if nothing counted.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(&RawTar::demo().unfinished()).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..100 {
        encoder.write_all(&chunk).unwrap();
    }
    let archive = encoder.finish().unwrap();
    let started = Instant::now();
    let (tmp, result) = unpack(&archive);
    let error = result.unwrap_err();
    assert_eq!(error.code, ArchiveErrorCode::TooLarge, "{}", error.message);
    assert!(error
        .message
        .contains("exceeds the decompressed size limit ("));
    assert!(started.elapsed() < Duration::from_secs(60));
    let written: u64 = all_paths(tmp.path())
        .iter()
        .filter(|p| p.is_file())
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(written < 4096, "{written} bytes written");
}

#[test]
fn a_gzip_bomb_in_a_long_name_header_stops_at_the_cap() {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    let mut long = raw_header(b"././@LongLink", EntryType::GNULongName);
    long.set_size(1 << 30);
    long.set_cksum();
    encoder.write_all(long.as_bytes()).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..100 {
        encoder.write_all(&chunk).unwrap();
    }
    let archive = encoder.finish().unwrap();
    let message = reject(&archive, ArchiveErrorCode::TooLarge);
    assert!(message.contains("decompressed size limit"), "{message}");
}
