//! Extraction: the valid path, then one test per hostile archive. Every rejection also
//! asserts that nothing was written outside `dest`.

mod limits;

use fen_domain::ports::ArchiveErrorCode;
use tar::EntryType;

use super::*;
use crate::archive::test_support::{
    all_paths, assert_nothing_outside, gzip, manifest_text, RawTar, NAME, NOOP_TS, VERSION,
};

fn name() -> ExtensionName {
    ExtensionName::parse(NAME).unwrap()
}

fn version() -> ExtensionVersion {
    ExtensionVersion::parse(VERSION).unwrap()
}

/// Unpacks into `<tmp>/stage/ext`.
fn unpack(archive: &[u8]) -> (tempfile::TempDir, Unpacked) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("stage").join("ext");
    let result = unpack_archive(archive, &dest, &name(), &version());
    (tmp, result)
}

type Unpacked = Result<UnpackedExtension, ArchiveError>;

/// Unpacks an archive that must be refused with `code`; checks that nothing was
/// written outside `dest`; returns the message.
fn reject(archive: &[u8], code: ArchiveErrorCode) -> String {
    let (tmp, result) = unpack(archive);
    let error = result.expect_err("the archive must be refused");
    assert_eq!(error.code, code, "{}", error.message);
    assert!(!error.message.contains('\n'));
    assert_nothing_outside(tmp.path(), &tmp.path().join("stage").join("ext"));
    error.message
}

fn unsafe_entry(archive: &[u8], path: &str, reason: &str) {
    let message = reject(archive, ArchiveErrorCode::Unsafe);
    assert_eq!(
        message,
        format!(
            "archive for {NAME}@{VERSION} rejected: unsafe entry \"{path}\" ({reason}); nothing was installed"
        )
    );
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn a_valid_archive_is_extracted_without_its_prefix() {
    let (tmp, result) = unpack(&RawTar::demo().gz());
    let unpacked = result.unwrap();
    let dest = tmp.path().join("stage").join("ext");
    assert_eq!(
        unpacked.files,
        [
            "files/README.md",
            "manifest.yaml",
            "models/_lib/util.ts",
            "models/noop.ts"
        ]
    );
    assert_eq!(unpacked.manifest.name, name());
    assert!(unpacked.warnings.is_empty());
    let on_disk: Vec<String> = all_paths(&dest)
        .iter()
        .filter(|p| p.is_file())
        .map(|p| {
            p.strip_prefix(&dest)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(on_disk, unpacked.files);
    assert_eq!(
        std::fs::read_to_string(dest.join("models/noop.ts")).unwrap(),
        NOOP_TS
    );
    let manifest = std::fs::read_to_string(dest.join("manifest.yaml")).unwrap();
    assert_eq!(
        manifest,
        format!("{READ_ONLY_HEADER}\n{}", manifest_text(NAME, VERSION, ""))
    );
    assert_eq!(mode(&dest.join("manifest.yaml")), 0o444);
    assert_eq!(mode(&dest.join("models/noop.ts")), 0o644);
    assert_eq!(mode(&dest.join("models")), 0o755);
    assert_eq!(mode(&dest.join("models/_lib")), 0o755);
    assert_eq!(mode(&dest), 0o755);
}

#[test]
fn header_modes_and_owners_are_ignored() {
    let mut header = crate::archive::test_support::raw_header(
        b"extension/models/extra.json",
        EntryType::Regular,
    );
    header.set_mode(0o6777);
    header.set_uid(12345);
    header.set_size(2);
    header.set_cksum();
    let mut bytes = RawTar::demo().unfinished();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(b"{}");
    bytes.extend_from_slice(&[0u8; 510 + 1024]);
    let (tmp, result) = unpack(&gzip(&bytes));
    result.unwrap();
    let path = tmp.path().join("stage/ext/models/extra.json");
    assert_eq!(mode(&path), 0o644);
}

#[test]
fn unknown_manifest_keys_are_warnings() {
    let archive = RawTar::default()
        .file(
            "extension/manifest.yaml",
            manifest_text(NAME, VERSION, "homepage: x\n").as_bytes(),
        )
        .file("extension/models/noop.ts", NOOP_TS.as_bytes())
        .file("extension/files/README.md", b"x")
        .gz();
    let (_tmp, result) = unpack(&archive);
    assert_eq!(
        result.unwrap().warnings,
        ["manifest.yaml: unknown key \"homepage\" is ignored"]
    );
}

#[test]
fn one_leading_dot_slash_is_tolerated() {
    let archive = RawTar::default()
        .file(
            "./extension/manifest.yaml",
            manifest_text(NAME, VERSION, "").as_bytes(),
        )
        .file("./extension/models/noop.ts", NOOP_TS.as_bytes())
        .file("./extension/files/README.md", b"x")
        .gz();
    let (_tmp, result) = unpack(&archive);
    assert_eq!(result.unwrap().files.len(), 3);
}

#[test]
fn eof_at_an_entry_boundary_is_tolerated_and_junk_after_the_end_blocks_ignored() {
    let (_tmp, result) = unpack(&gzip(&RawTar::demo().unfinished()));
    result.unwrap();
    let mut bytes = RawTar::demo().finish();
    bytes.extend_from_slice(b"trailing junk that is not a tar header");
    let (_tmp, result) = unpack(&gzip(&bytes));
    result.unwrap();
}

#[test]
fn pax_and_gnu_long_names_are_metadata() {
    let long_dir = "d".repeat(100);
    let long_path = format!("extension/files/{long_dir}/notes.txt");
    let archive = RawTar::demo()
        .file(&long_path, b"long")
        .pax(&[("path", "extension/files/pax-named.txt")])
        .file("extension/files/short-name", b"pax")
        .gz();
    let (tmp, result) = unpack(&archive);
    let files = result.unwrap().files;
    assert!(files.contains(&format!("files/{long_dir}/notes.txt")));
    assert!(files.contains(&"files/pax-named.txt".to_owned()));
    assert!(!files.contains(&"files/short-name".to_owned()));
    let text = std::fs::read_to_string(tmp.path().join("stage/ext/files/pax-named.txt")).unwrap();
    assert_eq!(text, "pax");
}

#[test]
fn a_pax_global_header_is_skipped() {
    let mut header =
        crate::archive::test_support::raw_header(b"pax_global_header", EntryType::XGlobalHeader);
    header.set_size(0);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend(RawTar::demo().finish());
    let (_tmp, result) = unpack(&gzip(&bytes));
    result.unwrap();
}

#[test]
fn the_async_port_runs_the_same_extraction() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("ext");
    let unpacked = runtime
        .block_on(TarGzUnpacker.unpack(&RawTar::demo().gz(), &dest, &name(), &version()))
        .unwrap();
    assert_eq!(unpacked.files.len(), 4);
    let error = runtime
        .block_on(TarGzUnpacker.unpack(b"not gzip", &tmp.path().join("x"), &name(), &version()))
        .unwrap_err();
    assert_eq!(error.code, ArchiveErrorCode::Corrupt);
}

#[test]
fn an_existing_destination_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let error = unpack_archive(&RawTar::demo().gz(), tmp.path(), &name(), &version()).unwrap_err();
    assert_eq!(error.code, ArchiveErrorCode::Io);
    assert!(error.message.contains("cannot create the directory"));
}

// S1

#[test]
fn a_truncated_gzip_stream_is_corrupt() {
    let archive = RawTar::demo().gz();
    for cut in [archive.len() / 2, archive.len() - 4, 5] {
        let message = reject(&archive[..cut], ArchiveErrorCode::Corrupt);
        assert!(message.starts_with(&format!("archive for {NAME}@{VERSION} is corrupt: ")));
        assert!(message.ends_with("; nothing was installed"));
    }
}

#[test]
fn bytes_that_are_not_gzip_are_corrupt() {
    let message = reject(&RawTar::demo().finish(), ArchiveErrorCode::Corrupt);
    assert!(message.contains("is corrupt: gzip stream: "), "{message}");
    reject(b"", ArchiveErrorCode::Corrupt);
}

#[test]
fn a_corrupt_tar_header_is_corrupt() {
    let mut bytes = RawTar::demo().finish();
    bytes[0] ^= 0x55; // the first header's checksum no longer matches
    let message = reject(&gzip(&bytes), ArchiveErrorCode::Corrupt);
    assert!(message.contains("tar stream: "), "{message}");
    assert!(message.contains("checksum"), "{message}");
}

#[test]
fn eof_inside_an_entry_is_corrupt() {
    let bytes = RawTar::demo()
        .lying_entry("extension/files/cut.txt", 2000, b"only a little")
        .unfinished();
    let message = reject(&gzip(&bytes), ArchiveErrorCode::Corrupt);
    assert!(
        message.contains("ends inside \"extension/files/cut.txt\""),
        "{message}"
    );
}

// S2, S3

#[test]
fn parent_directory_traversal_is_unsafe() {
    let archive = RawTar::demo().file("extension/../../evil.txt", b"x").gz();
    unsafe_entry(&archive, "extension/../../evil.txt", "'..' path segment");
    let archive = RawTar::default().file("../evil.txt", b"x").gz();
    unsafe_entry(&archive, "../evil.txt", "'..' path segment");
}

#[test]
fn absolute_and_drive_paths_are_unsafe() {
    let archive = RawTar::demo().file("/tmp/fen-evil.txt", b"x").gz();
    unsafe_entry(&archive, "/tmp/fen-evil.txt", "absolute path");
    let archive = RawTar::demo().file("C:/evil.txt", b"x").gz();
    unsafe_entry(&archive, "C:/evil.txt", "Windows drive path");
}

#[test]
fn backslashes_control_characters_and_bad_utf8_are_unsafe() {
    let archive = RawTar::demo().file("extension\\files\\x", b"x").gz();
    unsafe_entry(&archive, "extension\\\\files\\\\x", "backslash in path");
    let archive = RawTar::demo().file("extension/files/a\x1bb", b"x").gz();
    unsafe_entry(
        &archive,
        "extension/files/a\\u{1b}b",
        "control character in path",
    );
    let archive = RawTar::demo()
        .entry(b"extension/files/\xff", EntryType::Regular, b"x")
        .gz();
    unsafe_entry(
        &archive,
        "extension/files/\u{fffd}",
        "path is not valid UTF-8",
    );
    let archive = RawTar::demo().file("extension//files/x", b"x").gz();
    unsafe_entry(&archive, "extension//files/x", "empty path segment");
}

#[test]
fn a_path_over_240_bytes_is_unsafe() {
    let path = format!("extension/files/{}/{}", "a".repeat(120), "b".repeat(110));
    assert_eq!(path.len(), 247);
    let archive = RawTar::demo().file(&path, b"x").gz();
    unsafe_entry(&archive, &path, "path is 247 bytes long, at most 240");
    let path = format!("extension/files/{}", "c".repeat(129));
    let archive = RawTar::demo().file(&path, b"x").gz();
    unsafe_entry(
        &archive,
        &path,
        "path segment is 129 bytes long, at most 128",
    );
}

// S4

#[test]
fn links_devices_and_fifos_are_unsafe() {
    let archive = RawTar::demo()
        .link("extension/files/link", EntryType::Symlink, "/etc")
        .file("extension/files/link/passwd", b"x")
        .gz();
    unsafe_entry(&archive, "extension/files/link", "symbolic link");
    let archive = RawTar::demo()
        .link(
            "extension/files/hard",
            EntryType::Link,
            "extension/models/noop.ts",
        )
        .gz();
    unsafe_entry(&archive, "extension/files/hard", "hard link");
    let cases = [
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Fifo, "FIFO"),
        (EntryType::Continuous, "contiguous file"),
        (EntryType::new(b'V'), "unsupported entry type 'V'"),
    ];
    for (entry_type, reason) in cases {
        let archive = RawTar::demo()
            .entry(b"extension/files/node", entry_type, b"")
            .gz();
        unsafe_entry(&archive, "extension/files/node", reason);
    }
}

#[test]
fn a_sparse_file_is_unsafe() {
    let mut header = tar::Header::new_gnu();
    header.set_path("extension/files/sparse").unwrap();
    header.set_entry_type(EntryType::GNUSparse);
    header.set_size(0);
    header.as_gnu_mut().unwrap().set_real_size(0);
    header.set_cksum();
    let mut bytes = RawTar::demo().unfinished();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 1024]);
    unsafe_entry(&gzip(&bytes), "extension/files/sparse", "sparse file");
}

// S5

#[test]
fn apple_double_files_and_macosx_folders_are_skipped_silently() {
    let archive = RawTar::demo()
        .file(
            "extension/models/._noop.ts",
            b"\x00\x05\x16\x07 resource fork",
        )
        .dir("__MACOSX/")
        .file("__MACOSX/extension/._manifest.yaml", b"junk")
        .file("extension/files/__MACOSX/x.ts", b"export const model = 1;")
        .gz();
    let (tmp, result) = unpack(&archive);
    let files = result.unwrap().files;
    assert_eq!(files.len(), 4, "{files:?}");
    let dest = tmp.path().join("stage/ext");
    assert!(all_paths(&dest)
        .iter()
        .all(|p| !p.to_string_lossy().contains("._") && !p.to_string_lossy().contains("MACOSX")));
}

#[test]
fn hidden_files_are_unsafe() {
    let archive = RawTar::demo()
        .file("extension/models/.env", b"SECRET=1")
        .gz();
    unsafe_entry(
        &archive,
        "extension/models/.env",
        "hidden file or directory",
    );
    let archive = RawTar::demo().dir("extension/.git/").gz();
    unsafe_entry(&archive, "extension/.git", "hidden file or directory");
}

// S6

#[test]
fn a_duplicate_entry_is_unsafe() {
    let archive = RawTar::demo()
        .file("extension/models/noop.ts", b"export const model = 2;")
        .gz();
    unsafe_entry(&archive, "extension/models/noop.ts", "duplicate entry");
}

#[test]
fn paths_equal_under_case_folding_are_unsafe() {
    let archive = RawTar::demo().file("extension/files/readme.MD", b"x").gz();
    unsafe_entry(
        &archive,
        "extension/files/readme.MD",
        "differs only in case from \"extension/files/README.md\"",
    );
    let archive = RawTar::demo().file("extension/Models/x.json", b"x").gz();
    unsafe_entry(
        &archive,
        "extension/Models/x.json",
        "differs only in case from \"extension/models\"",
    );
}

#[test]
fn a_file_that_is_also_a_directory_is_unsafe() {
    let archive = RawTar::demo()
        .file("extension/files/README.md/inner", b"x")
        .gz();
    unsafe_entry(
        &archive,
        "extension/files/README.md/inner",
        "\"extension/files/README.md\" is both a file and a directory",
    );
    let archive = RawTar::demo().file("extension/models", b"x").gz();
    unsafe_entry(
        &archive,
        "extension/models",
        "\"extension/models\" is both a file and a directory",
    );
}

// S8

#[test]
fn an_unknown_top_level_directory_is_invalid() {
    let archive = RawTar::demo()
        .file("extension/bundles/models/noop.js", b"x")
        .gz();
    let message = reject(&archive, ArchiveErrorCode::Invalid);
    assert_eq!(
        message,
        format!("archive for {NAME}@{VERSION} is not a valid fen extension: unknown top-level name \"extension/bundles\" (expected manifest.yaml, models, vaults, drivers, datastores, reports, files or node_modules); nothing was installed")
    );
    let archive = RawTar::demo().file("extension/README.md", b"x").gz();
    reject(&archive, ArchiveErrorCode::Invalid);
}

#[test]
fn an_entry_outside_extension_is_invalid() {
    let archive = RawTar::demo().file("other/file.txt", b"x").gz();
    let message = reject(&archive, ArchiveErrorCode::Invalid);
    assert!(
        message.contains("entry \"other/file.txt\" is outside extension/"),
        "{message}"
    );
    let archive = RawTar::default().file("extension", b"x").gz();
    reject(&archive, ArchiveErrorCode::Invalid);
}

#[test]
fn a_missing_manifest_is_invalid() {
    let archive = RawTar::default()
        .file("extension/models/noop.ts", NOOP_TS.as_bytes())
        .gz();
    let message = reject(&archive, ArchiveErrorCode::Invalid);
    assert_eq!(
        message,
        format!("archive for {NAME}@{VERSION} is not a valid fen extension: missing extension/manifest.yaml; nothing was installed")
    );
}

#[test]
fn an_unlisted_entry_point_is_invalid() {
    let archive = RawTar::demo()
        .file("extension/models/sneaky.ts", b"export const model = {};")
        .gz();
    let message = reject(&archive, ArchiveErrorCode::Invalid);
    assert!(
        message.contains("entry point \"models/sneaky.ts\" is not listed in manifest.yaml"),
        "{message}"
    );
    // A source file without the export is a helper, and fine.
    let archive = RawTar::demo()
        .file("extension/models/helper.ts", b"export const helper = 1;")
        .gz();
    let (_tmp, result) = unpack(&archive);
    result.unwrap();
}

// §5.3

#[test]
fn a_manifest_for_another_extension_is_a_mismatch() {
    let archive = RawTar::default()
        .file(
            "extension/manifest.yaml",
            manifest_text("@t/other", "2026.01.01.1", "").as_bytes(),
        )
        .file("extension/models/noop.ts", NOOP_TS.as_bytes())
        .file("extension/files/README.md", b"x")
        .gz();
    let message = reject(&archive, ArchiveErrorCode::ManifestMismatch);
    assert_eq!(
        message,
        format!("archive for {NAME}@{VERSION} carries a manifest for @t/other@2026.01.01.1; refusing to install")
    );
    let archive = RawTar::default()
        .file(
            "extension/manifest.yaml",
            manifest_text(NAME, "2026.05.05.2", "").as_bytes(),
        )
        .file("extension/models/noop.ts", NOOP_TS.as_bytes())
        .gz();
    reject(&archive, ArchiveErrorCode::ManifestMismatch);
}

#[test]
fn an_invalid_manifest_names_its_field() {
    let archive = RawTar::default()
        .file(
            "extension/manifest.yaml",
            manifest_text(NAME, VERSION, "")
                .replace("manifestVersion: 1", "manifestVersion: 3")
                .as_bytes(),
        )
        .file("extension/models/noop.ts", NOOP_TS.as_bytes())
        .gz();
    let message = reject(&archive, ArchiveErrorCode::ManifestInvalid);
    assert_eq!(
        message,
        format!("manifest of {NAME}@{VERSION} is invalid: manifestVersion: must be 1")
    );
    // A listed file that is missing.
    let archive = RawTar::default()
        .file(
            "extension/manifest.yaml",
            manifest_text(NAME, VERSION, "").as_bytes(),
        )
        .file("extension/models/noop.ts", NOOP_TS.as_bytes())
        .gz();
    let message = reject(&archive, ArchiveErrorCode::ManifestInvalid);
    assert!(
        message.ends_with("files: \"README.md\" is not in the archive"),
        "{message}"
    );
    // A manifest over 64 KiB.
    let big = manifest_text(NAME, VERSION, &format!("# {}\n", "x".repeat(70_000)));
    let archive = RawTar::default()
        .file("extension/manifest.yaml", big.as_bytes())
        .file("extension/models/noop.ts", NOOP_TS.as_bytes())
        .gz();
    let message = reject(&archive, ArchiveErrorCode::ManifestInvalid);
    assert!(message.contains("manifest.yaml: is 70"), "{message}");
}

#[test]
fn the_first_violation_wins() {
    // An unsafe entry after an invalid top-level name: the invalid one comes first.
    let archive = RawTar::demo()
        .file("extension/bundles/x", b"x")
        .file("extension/../evil", b"x")
        .gz();
    reject(&archive, ArchiveErrorCode::Invalid);
    let archive = RawTar::demo()
        .file("extension/../evil", b"x")
        .file("extension/bundles/x", b"x")
        .gz();
    reject(&archive, ArchiveErrorCode::Unsafe);
}
