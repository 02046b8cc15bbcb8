//! The jail's options, shared by `spore run` and `spore exec`: limits, and the explicit
//! opt-out `--unsandboxed`. Without that flag, a machine where the jail cannot be built refuses
//! to run untrusted code and says why.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use spore_agent::research::jail::{self, Jail, Limits, PythonInstall};

#[derive(Debug, Clone, Args)]
pub struct JailArgs {
    /// Run train.py and the evaluator without the jail. Untrusted code then runs as this user:
    /// it can read the node's signing key, the LLM key and the validation split. Only for
    /// machines that run nothing but your own code.
    #[arg(long)]
    pub unsandboxed: bool,
    /// Memory of one jailed run, MiB (default: three quarters of the machine's; 0: no limit).
    #[arg(long, value_name = "MIB")]
    pub jail_memory_mb: Option<u64>,
    /// Processes and threads of one jailed run.
    #[arg(long, default_value_t = Limits::default().processes, value_name = "N")]
    pub jail_processes: u64,
    /// Largest file a jailed run may write, MiB.
    #[arg(long, default_value_t = Limits::default().file_size_mb, value_name = "MIB")]
    pub jail_file_size_mb: u64,
    /// Size limit of a jailed run's directory, MiB.
    #[arg(long, default_value_t = Limits::default().disk_mb, value_name = "MIB")]
    pub jail_disk_mb: u64,
    /// Size of a jailed run's private /tmp (held in memory), MiB.
    #[arg(long, default_value_t = Limits::default().tmp_mb, value_name = "MIB")]
    pub jail_tmp_mb: u64,
}

impl JailArgs {
    fn limits(&self) -> Limits {
        Limits {
            memory_mb: match self.jail_memory_mb {
                Some(0) => None,
                Some(mb) => Some(mb),
                None => Limits::default().memory_mb,
            },
            processes: self.jail_processes,
            file_size_mb: self.jail_file_size_mb,
            tmp_mb: self.jail_tmp_mb,
            disk_mb: self.jail_disk_mb,
            ..Limits::default()
        }
    }

    /// The interpreter to run untrusted `train.py` with, and the jail it runs in (showing its
    /// installation and `data` read-only): `None` only with `--unsandboxed`. Fails when the
    /// jail cannot be built here, or when the interpreter lives where it would expose
    /// `private` (the data directory).
    pub fn training_jail(
        &self,
        python: &Path,
        private: &[&Path],
        data: Vec<PathBuf>,
    ) -> anyhow::Result<(PathBuf, Option<Jail>)> {
        if self.unsandboxed {
            tracing::warn!(
                "--unsandboxed: train.py and the models it exports run WITHOUT the jail, as this user; they can read \
                 the node's signing key, the LLM key and the validation split"
            );
            return Ok((python.to_path_buf(), None));
        }
        if let Err(reason) = jail::check() {
            bail!(
                "refusing to run untrusted code: the jail cannot be built here: {reason}. Fix that, or pass \
                 --unsandboxed to run train.py as this user (it can then read the node's keys)"
            );
        }
        let install = PythonInstall::probe(python, private).map_err(anyhow::Error::msg)?;
        let mut read_only = install.paths;
        read_only.extend(data);
        Ok((install.executable, Some(Jail { read_only, writable: Vec::new(), limits: self.limits() })))
    }
}
