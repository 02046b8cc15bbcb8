//! A fresh PostgreSQL cluster from Debian's `postgresql` package, in the environment's
//! directory, on a free loopback port, run as the `postgres` user when the harness is root
//! (PostgreSQL refuses to run as root; CI runs as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::TestEnvError;
use super::ports::free_port;
use super::process::ServiceSpec;

/// The system user the server runs as when we are root.
const SERVER_USER: &str = "postgres";

/// The newest `/usr/lib/postgresql/<version>/bin`.
pub fn bin_dir() -> Result<PathBuf, TestEnvError> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| TestEnvError::Setup("PostgreSQL is not installed: apt-get install postgresql".into()))?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| TestEnvError::Setup("no /usr/lib/postgresql/*/bin/postgres: apt-get install postgresql".into()))
}

fn as_server_user(program: &Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args([format!("--reuid={SERVER_USER}"), format!("--regid={SERVER_USER}"), "--init-groups".into()]);
        c.arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) -> Result<(), TestEnvError> {
    let output = command.output().map_err(|e| TestEnvError::io(what.to_string(), e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(TestEnvError::Setup(format!("{what} failed: {}", String::from_utf8_lossy(&output.stderr).trim())))
    }
}

/// Creates the cluster under `dir/postgres` and returns the server's service spec.
/// `also_listen`: one more address to serve (a real node's bridge, for its pods), trusted for
/// the addresses of its /24. `tls`: the server's certificate and key (PEM), to offer TLS.
pub fn init_cluster(
    dir: &Path,
    also_listen: Option<&str>,
    tls: Option<(&Path, &Path)>,
) -> Result<ServiceSpec, TestEnvError> {
    let bin = bin_dir()?;
    let root = dir.join("postgres");
    let data = root.join("data");
    let socket = root.join("socket");
    std::fs::create_dir_all(&socket).map_err(|e| TestEnvError::io("create postgres dirs", e))?;
    if nix::unistd::geteuid().is_root() {
        let user = nix::unistd::User::from_name(SERVER_USER)
            .ok()
            .flatten()
            .ok_or_else(|| TestEnvError::Setup(format!("no `{SERVER_USER}` user: apt-get install postgresql")))?;
        use std::os::unix::fs::PermissionsExt;
        // The server user must reach its directory inside ours.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| TestEnvError::io("open the env dir to the postgres user", e))?;
        for path in [&root, &socket] {
            nix::unistd::chown(path.as_path(), Some(user.uid), Some(user.gid))
                .map_err(|e| TestEnvError::Setup(format!("chown {}: {e}", path.display())))?;
        }
    }
    let mut initdb = as_server_user(&bin.join("initdb"));
    initdb.args(["-D"]).arg(&data).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    run(initdb, "initdb")?;
    let mut listen = "127.0.0.1".to_string();
    if let Some(address) = also_listen {
        listen = format!("{listen},{address}");
        let subnet = format!("{}.0/24", address.rsplit_once('.').map(|(net, _)| net).unwrap_or(address));
        let hba = data.join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).map_err(|e| TestEnvError::io("read pg_hba.conf", e))?;
        text.push_str(&format!("host all all {subnet} trust\n"));
        std::fs::write(&hba, text).map_err(|e| TestEnvError::io("write pg_hba.conf", e))?;
    }
    let mut tls_args = Vec::new();
    if let Some((cert, key)) = tls {
        // The server reads them as its own user, the key private to it.
        let (server_cert, server_key) = (root.join("server.crt"), root.join("server.key"));
        for (from, to) in [(cert, &server_cert), (key, &server_key)] {
            std::fs::copy(from, to).map_err(|e| TestEnvError::io(format!("copy {}", from.display()), e))?;
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&server_key, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| TestEnvError::io("restrict the server key", e))?;
        if nix::unistd::geteuid().is_root()
            && let Ok(Some(user)) = nix::unistd::User::from_name(SERVER_USER)
        {
            for path in [&server_cert, &server_key] {
                nix::unistd::chown(path.as_path(), Some(user.uid), Some(user.gid))
                    .map_err(|e| TestEnvError::Setup(format!("chown {}: {e}", path.display())))?;
            }
        }
        for setting in [
            "ssl=on".to_string(),
            format!("ssl_cert_file={}", server_cert.display()),
            format!("ssl_key_file={}", server_key.display()),
        ] {
            tls_args.extend(["-c".to_string(), setting]);
        }
    }
    let port = free_port()?;
    Ok(ServiceSpec {
        name: "postgres".into(),
        argv: vec![
            bin.join("postgres").to_string_lossy().into_owned(),
            "-D".into(),
            data.to_string_lossy().into_owned(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            socket.to_string_lossy().into_owned(),
            "-c".into(),
            format!("listen_addresses={listen}"),
            // Test data is disposable: trade durability for speed.
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            "synchronous_commit=off".into(),
            "-c".into(),
            "full_page_writes=off".into(),
        ]
        .into_iter()
        .chain(tls_args)
        .collect(),
        env: Vec::new(),
        log: dir.join("logs").join("postgres.log"),
        run_as: Some(SERVER_USER.into()),
        port,
    })
}

/// Creates the `spore` database once the server listens; returns its URL.
pub fn create_database(port: u16) -> Result<String, TestEnvError> {
    let bin = bin_dir()?;
    let mut createdb = Command::new(bin.join("createdb"));
    createdb.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "spore"]);
    run(createdb, "createdb spore")?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/spore"))
}
