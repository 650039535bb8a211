//! Packing: determinism, the exact bytes of headers, what is collected and what is
//! refused, writing, and the round trip through extraction.

use std::io::Read;

use fen_domain::ports::ArchiveErrorCode;
use flate2::read::GzDecoder;

use super::*;
use crate::archive::extract::unpack_archive;
use crate::archive::test_support::{all_paths, manifest_text, NAME, NOOP_TS, VERSION};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The demo extension as a directory, with things that must stay out.
fn fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write(root, "manifest.yaml", &manifest_text(NAME, VERSION, ""));
    write(root, "models/noop.ts", NOOP_TS);
    write(root, "models/_lib/util.ts", "export const util = 1;\n");
    write(root, "models/plain.ts", "export const helper = 1;\n");
    write(root, "models/schema.json", "{}\n");
    write(root, "files/README.md", "# demo\n");
    write(root, "files/unlisted.txt", "not listed\n");
    write(root, "README.md", "top-level files are not packed\n");
    write(root, "node_modules/x/index.js", "export const model = 1;\n");
    write(root, ".git/config", "[core]\n");
    write(root, "models/._noop.ts", "apple double\n");
    tmp
}

fn packed(dir: &Path) -> PackedArchive {
    pack(dir).unwrap()
}

fn refused(dir: &Path, code: ArchiveErrorCode) -> String {
    let error = pack(dir).unwrap_err();
    assert_eq!(error.code, code, "{}", error.message);
    error.message
}

/// One entry's header, as read back.
struct Listed {
    path: String,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    user: Vec<u8>,
    group: Vec<u8>,
    entry_type: u8,
}

fn entries(bytes: &[u8]) -> Vec<Listed> {
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let header = entry.header();
            Listed {
                path: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                mtime: header.mtime().unwrap(),
                user: header.username_bytes().unwrap_or_default().to_vec(),
                group: header.groupname_bytes().unwrap_or_default().to_vec(),
                entry_type: header.entry_type().as_byte(),
            }
        })
        .collect()
}

#[test]
fn packs_the_collected_files_sorted_under_extension() {
    let tmp = fixture();
    let archive = packed(tmp.path());
    assert_eq!(archive.name.as_str(), NAME);
    assert_eq!(archive.version.to_string(), VERSION);
    assert_eq!(
        archive.files,
        [
            "files/README.md",
            "manifest.yaml",
            "models/_lib/util.ts",
            "models/noop.ts",
            "models/plain.ts",
            "models/schema.json"
        ]
    );
    let listed = entries(&archive.bytes);
    let paths: Vec<&str> = listed.iter().map(|e| e.path.as_str()).collect();
    let expected: Vec<String> = archive
        .files
        .iter()
        .map(|f| format!("extension/{f}"))
        .collect();
    assert_eq!(paths, expected);
    for entry in listed {
        let path = &entry.path;
        assert_eq!(
            (entry.mode, entry.uid, entry.gid, entry.mtime),
            (0o644, 0, 0, 0),
            "{path}"
        );
        assert!(entry.user.is_empty() && entry.group.is_empty(), "{path}");
        assert_eq!(entry.entry_type, b'0', "{path}");
    }
    assert_eq!(archive.sha256, random::hex(&Sha256::digest(&archive.bytes)));
}

#[test]
fn the_gzip_header_has_no_name_no_mtime_and_os_255() {
    let archive = packed(fixture().path());
    let header = &archive.bytes[..10];
    assert_eq!(&header[..3], &[0x1f, 0x8b, 8]);
    assert_eq!(header[3], 0, "no FNAME or other flags");
    assert_eq!(&header[4..8], &[0, 0, 0, 0], "mtime 0");
    assert_eq!(header[9], 255, "OS unknown");
}

#[test]
fn the_same_tree_packs_to_the_same_bytes() {
    let first = fixture();
    let second = fixture();
    // Different mtimes and permissions must not matter.
    let touched = second.path().join("models/noop.ts");
    let file = std::fs::File::options()
        .append(true)
        .open(&touched)
        .unwrap();
    file.set_modified(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&touched, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let a = packed(first.path());
    assert_eq!(a.bytes, packed(first.path()).bytes);
    assert_eq!(a.bytes, packed(second.path()).bytes);
}

#[test]
fn gitignored_and_fenignored_files_are_left_out() {
    let tmp = fixture();
    let root = tmp.path();
    write(root, ".gitignore", "*.json\n");
    write(root, ".fenignore", "models/_lib/\n");
    write(root, "models/.gitignore", ".DS_Store\n");
    write(root, "models/.DS_Store", "finder junk");
    let archive = packed(root);
    assert_eq!(
        archive.files,
        [
            "files/README.md",
            "manifest.yaml",
            "models/noop.ts",
            "models/plain.ts"
        ]
    );
}

#[test]
fn a_symlink_is_refused() {
    let tmp = fixture();
    std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("models/link.json")).unwrap();
    let message = refused(tmp.path(), ArchiveErrorCode::Unsafe);
    assert_eq!(
        message,
        format!("cannot pack {NAME}@{VERSION}: unsafe entry \"extension/models/link.json\" (symbolic link); no archive was written")
    );
    let tmp = fixture();
    std::fs::remove_file(tmp.path().join("files/README.md")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", tmp.path().join("files/README.md")).unwrap();
    refused(tmp.path(), ArchiveErrorCode::Unsafe);
    let tmp = fixture();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), tmp.path().join("vaults")).unwrap();
    refused(tmp.path(), ArchiveErrorCode::Unsafe);
}

#[test]
fn a_hidden_file_is_refused_unless_ignored() {
    let tmp = fixture();
    write(tmp.path(), "models/.env", "SECRET=1\n");
    let message = refused(tmp.path(), ArchiveErrorCode::Unsafe);
    assert!(
        message.contains("\"extension/models/.env\" (hidden file or directory)"),
        "{message}"
    );
    write(tmp.path(), ".fenignore", ".env\n");
    packed(tmp.path());
}

#[test]
fn an_unlisted_entry_point_is_refused() {
    let tmp = fixture();
    write(tmp.path(), "models/extra.ts", "export const model = {};\n");
    let message = refused(tmp.path(), ArchiveErrorCode::Invalid);
    assert!(
        message.contains("entry point \"models/extra.ts\" is not listed in manifest.yaml"),
        "{message}"
    );
}

#[test]
fn a_missing_listed_file_is_a_manifest_problem() {
    let tmp = fixture();
    std::fs::remove_file(tmp.path().join("files/README.md")).unwrap();
    let message = refused(tmp.path(), ArchiveErrorCode::ManifestInvalid);
    assert_eq!(
        message,
        format!(
            "manifest of {NAME}@{VERSION} is invalid: files: \"README.md\" is not in the archive"
        )
    );
}

#[test]
fn an_invalid_or_missing_manifest_is_refused() {
    let tmp = fixture();
    write(tmp.path(), "manifest.yaml", "manifestVersion: 1\n");
    let message = refused(tmp.path(), ArchiveErrorCode::ManifestInvalid);
    assert_eq!(
        message,
        format!(
            "manifest of {} is invalid: name: is required",
            tmp.path().display()
        )
    );
    std::fs::remove_file(tmp.path().join("manifest.yaml")).unwrap();
    refused(tmp.path(), ArchiveErrorCode::Invalid);
}

#[test]
fn case_folded_twins_are_refused() {
    let tmp = fixture();
    write(tmp.path(), "models/Schema.json", "{}\n");
    let message = refused(tmp.path(), ArchiveErrorCode::Unsafe);
    assert!(message.contains("differs only in case"), "{message}");
}

#[test]
fn a_file_over_16_mib_is_refused() {
    let tmp = fixture();
    let big = std::fs::File::create(tmp.path().join("models/big.bin")).unwrap();
    big.set_len(16 * 1024 * 1024 + 1).unwrap();
    let message = refused(tmp.path(), ArchiveErrorCode::TooLarge);
    assert!(
        message.contains("the file size limit (16777217 > 16777216)"),
        "{message}"
    );
}

#[test]
fn long_paths_round_trip() {
    let tmp = fixture();
    let deep = format!("models/_lib/{}/{}.ts", "d".repeat(90), "f".repeat(110));
    write(tmp.path(), &deep, "export const deep = 1;\n");
    let archive = packed(tmp.path());
    let listed = entries(&archive.bytes);
    assert!(listed.iter().any(|e| e.path == format!("extension/{deep}")));
    let stage = tempfile::tempdir().unwrap();
    let unpacked = unpack_archive(
        &archive.bytes,
        &stage.path().join("ext"),
        &archive.name,
        &archive.version,
    )
    .unwrap();
    assert!(unpacked.files.contains(&deep));
}

#[test]
fn pack_then_unpack_gives_the_same_files() {
    let tmp = fixture();
    let archive = packed(tmp.path());
    let stage = tempfile::tempdir().unwrap();
    let dest = stage.path().join("ext");
    let unpacked = unpack_archive(&archive.bytes, &dest, &archive.name, &archive.version).unwrap();
    assert_eq!(unpacked.files, archive.files);
    for file in &archive.files {
        let original = std::fs::read_to_string(tmp.path().join(file)).unwrap();
        let extracted = std::fs::read_to_string(dest.join(file)).unwrap();
        if file == MANIFEST_FILE {
            assert_eq!(
                extracted,
                format!("{}\n{original}", fen_domain::manifest::READ_ONLY_HEADER)
            );
        } else {
            assert_eq!(extracted, original, "{file}");
        }
    }
}

#[test]
fn writes_to_a_file_or_a_registry_directory() {
    let archive = packed(fixture().path());
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("nested/out.tar.gz");
    let written = write_packed(&archive, &PackDestination::File(file.clone())).unwrap();
    assert_eq!(written.archive, file);
    assert_eq!(written.sidecar, None);
    assert_eq!(std::fs::read(&file).unwrap(), archive.bytes);

    let registry = out.path().join("registry");
    let written = write_packed(&archive, &PackDestination::RegistryDir(registry.clone())).unwrap();
    let expected = registry.join("@t/demo/2026.05.05.1.tar.gz");
    assert_eq!(written.archive, expected);
    assert_eq!(std::fs::read(&expected).unwrap(), archive.bytes);
    let sidecar = std::fs::read_to_string(written.sidecar.unwrap()).unwrap();
    assert_eq!(
        sidecar,
        format!("{}  2026.05.05.1.tar.gz\n", archive.sha256)
    );
    // No temp files are left behind.
    for path in all_paths(out.path()) {
        assert!(
            !path.to_string_lossy().contains(".fen-tmp-"),
            "{}",
            path.display()
        );
    }
    // Writing again replaces the files.
    write_packed(&archive, &PackDestination::RegistryDir(registry)).unwrap();
}

#[test]
fn the_default_destination_flattens_the_name() {
    let name = ExtensionName::parse("@acme/aws/ec2").unwrap();
    let version = ExtensionVersion::parse("2026.05.05.1").unwrap();
    assert_eq!(
        PackDestination::default_for(&name, &version),
        PackDestination::File(PathBuf::from("acme-aws-ec2-2026.05.05.1.tar.gz"))
    );
}

#[test]
fn every_packed_entry_is_a_regular_file_read_back_whole() {
    let archive = packed(fixture().path());
    let mut decoded = Vec::new();
    GzDecoder::new(archive.bytes.as_slice())
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded.len() % 512, 0);
}
