//! Datastore rows of `cargo xtask bench` (issue 10): the trivial method run of
//! `method_run` with a `filesystem` datastore whose directory holds 1 other model,
//! then 1 000 other models (scoped sync must not depend on them: goal 1.3 x), and the
//! 1-other run against the same run on `local` (goal 2 x, the cost of locking in the
//! shared directory plus one scoped pull and push of an unchanged model).

use std::path::Path;
use std::time::Duration;

use super::{Bench, Limit, Repo};

/// Writes one model's version 1 of `verdict/current`, its `latest` and one run record
/// under `<store>/data/<model>/`.
fn plant_model(store: &Path, model: &str) -> Result<(), String> {
    let write = |rel: &str, text: &str| {
        let path = store.join("data").join(model).join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let data = "{\"ok\":true}";
    // sha256 of `{"ok":true}`.
    let sha = "4062edaf750fb8074e7e83e0c9028c94e32468a8b6f1614774328ef045150f93";
    write("resources/verdict/current/1/data.json", data)?;
    write(
        "resources/verdict/current/1/meta.json",
        &format!(
            "{{\"model\":\"{model}\",\"version\":1,\"size\":{},\"sha256\":\"{sha}\"}}",
            data.len()
        ),
    )?;
    write("resources/verdict/current/latest", "1\n")?;
    write(
        "runs/20260101T000000Z-00000000.json",
        &format!("{{\"runId\":\"20260101T000000Z-00000000\",\"model\":\"{model}\"}}"),
    )
}

/// A shared directory as `fen datastore setup filesystem` leaves it, holding
/// `n_others` other models.
fn store(scratch: &Path, n_others: usize) -> Result<std::path::PathBuf, String> {
    let dir = scratch.join(format!("store-{n_others}"));
    std::fs::create_dir_all(dir.join(".fen-locks"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for i in 0..n_others {
        plant_model(&dir, &format!("other-{i:04}"))?;
    }
    Ok(dir)
}

fn configure(repo: &Repo, store: Option<&Path>) -> Result<(), String> {
    let path = repo.dir.join(".fen/datastore.yaml");
    match store {
        Some(dir) => std::fs::write(
            &path,
            format!("type: filesystem\npath: \"{}\"\n", dir.display()),
        )
        .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
        },
    }
}

impl Bench {
    /// The two filesystem rows; `local` is the p50 of the same run on `local`.
    pub(super) fn datastore(
        &mut self,
        scratch: &Path,
        repo: &Repo,
        local: Duration,
    ) -> Result<(), String> {
        let one = store(scratch, 1)?;
        let thousand = store(scratch, 1000)?;
        configure(repo, Some(&one))?;
        let one_p50 = self.method_run_as(
            repo,
            "method run (trivial), filesystem datastore, 1 other model",
            Limit::relative(local, 2.0, "local-datastore p50"),
        );
        let one_p50 = match one_p50 {
            Ok(p50) => p50,
            Err(e) => {
                configure(repo, None)?;
                return Err(e);
            }
        };
        configure(repo, Some(&thousand))?;
        let result = self.method_run_as(
            repo,
            "method run (trivial), filesystem datastore, 1000 other models",
            Limit::relative(one_p50, 1.3, "1-other-model p50"),
        );
        configure(repo, None)?;
        result.map(|_| ())
    }
}

/// Credentials `moto_server` accepts; set for the fen processes of the s3 rows only.
const S3_ENV: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];

/// Pushes a planted store's `data/` to `prefix` of the bench bucket with fen's own
/// sync service (8 transfers at once).
fn seed_bucket(endpoint: &str, prefix: &str, store: &Path) -> Result<(), String> {
    use fen_domain::ports::DatastoreSyncService;
    use fen_infrastructure::datastore::s3::{S3Bucket, S3Credentials, S3Location, S3SyncService};
    let location = S3Location::new("bench", Some(prefix), Some(endpoint), None)?;
    let credentials = S3Credentials {
        access_key_id: "testing".to_owned(),
        secret_access_key: "testing".to_owned(),
        session_token: None,
    };
    let bucket = S3Bucket::connect(location, credentials, Duration::from_secs(30))?;
    let sync = S3SyncService::new(store.join("data"), bucket, Duration::from_secs(600));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime
        .block_on(sync.push_changed(None))
        .map(|_| ())
        .map_err(|e| format!("cannot seed the bench bucket: {e}"))
}

fn configure_s3(repo: &Repo, endpoint: &str, prefix: &str) -> Result<(), String> {
    let path = repo.dir.join(".fen/datastore.yaml");
    std::fs::write(
        &path,
        format!("type: s3\nbucket: bench\nprefix: {prefix}\nendpoint: \"{endpoint}\"\n"),
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Bench {
    /// The two s3 rows against a real S3-compatible server (`moto_server` on
    /// loopback): 1 other model, then 1 000 other models in the bucket (scoped sync
    /// lists only `data/<model>/`: goal 1.3 x). Without `moto_server` they are reported
    /// as not run.
    pub(super) fn datastore_s3(
        &mut self,
        scratch: &Path,
        repo: &Repo,
        local: Duration,
    ) -> Result<(), String> {
        if !xtask::s3_server::available() {
            println!("s3 datastore rows: not run (moto_server is not installed: pip install 'moto[server]')");
            return Ok(());
        }
        let server = xtask::s3_server::S3Server::start()?;
        server.create_bucket("bench")?;
        let endpoint = server.endpoint();
        seed_bucket(&endpoint, "one", &store(scratch, 1)?)?;
        seed_bucket(&endpoint, "thousand", &store(scratch, 1000)?)?;
        for (key, value) in S3_ENV {
            std::env::set_var(key, value);
        }
        let result = (|| {
            configure_s3(repo, &endpoint, "one")?;
            let one_p50 = self.method_run_as(
                repo,
                "method run (trivial), s3 datastore (moto, loopback), 1 other model",
                Limit::relative(local, 10.0, "local-datastore p50"),
            )?;
            configure_s3(repo, &endpoint, "thousand")?;
            self.method_run_as(
                repo,
                "method run (trivial), s3 datastore (moto, loopback), 1000 other models",
                Limit::relative(one_p50, 1.3, "1-other-model p50"),
            )
        })();
        for (key, _) in S3_ENV {
            std::env::remove_var(key);
        }
        configure(repo, None)?;
        result.map(|_| ())
    }
}
