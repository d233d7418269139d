//! A private `sshd` with the sftp subsystem, reached through an `ssh` wrapper.

use super::*;

// ------------------------------------------------------------------------------------------------
// SFTP: a private sshd
// ------------------------------------------------------------------------------------------------

const SSHD: &str = "/usr/sbin/sshd";
const SSH: &str = "/usr/bin/ssh";
const SFTP: &str = "/usr/bin/sftp";
const SSH_KEYGEN: &str = "ssh-keygen";

/// The name of the user this process runs as (the passwd entry of the effective uid).
pub fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage, read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        assert!(!pw.is_null(), "no passwd entry for uid {}", libc::geteuid());
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

fn find_openssh() -> Result<PathBuf, String> {
    for p in [SSHD, SSH] {
        if !is_executable(Path::new(p)) {
            return Err(format!("{p} is missing"));
        }
    }
    find_in_path(SSH_KEYGEN).ok_or_else(|| "ssh-keygen is not on PATH".to_string())
}

/// A second sshd on a free 127.0.0.1 port, for the current user only, by key only, serving
/// sftp and nothing else (`internal-sftp`, forced: no session ever starts the user's login
/// shell, whose start-up files may be slow, or leave locks behind when the server is killed). Clients reach it through [`SftpServer::envs`]: a `PATH` whose first
/// directory holds an `ssh` wrapper that runs `/usr/bin/ssh -F <config>`, the config naming the
/// test's `known_hosts` (holding the server's host key: strict checking passes), the user key,
/// `IdentitiesOnly yes` and `BatchMode yes` (never a prompt), but no `StrictHostKeyChecking`:
/// that is vault's to set (`VAULT_SFTP_KNOWN_HOSTS`); plus `VAULT_SFTP_KEY`. (OpenSSH reads `~/.ssh` from the passwd
/// entry, not `$HOME`, so the wrapper is the only way to give it a private config.)
pub struct SftpServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    user: String,
}

impl SftpServer {
    /// `None` when OpenSSH is missing outside CI.
    pub fn start() -> Option<SftpServer> {
        required(
            "OpenSSH (sshd, ssh, ssh-keygen)",
            "apt-get install openssh-server openssh-client",
            find_openssh(),
        )?;
        let dir = tempfile::Builder::new()
            .prefix("vault-sftp-")
            .tempdir()
            .expect("temp dir");
        // The user's sshd (running as this user, or as root) must read its files.
        chmod(dir.path(), 0o755);
        let mut server = SftpServer {
            dir,
            port: 0,
            child: None,
            user: current_user(),
        };
        fs::create_dir_all(server.root()).unwrap();
        fs::create_dir_all(server.bin_dir()).unwrap();
        server.keygen("host_key");
        server.keygen("user_key");
        fs::copy(server.path("user_key.pub"), server.path("authorized_keys")).unwrap();
        chmod(&server.path("authorized_keys"), 0o600);
        write(
            &server.bin_dir().join("ssh"),
            format!(
                "#!/bin/sh\nexec {SSH} -F '{}' \"$@\"\n",
                server.path("ssh_config").display()
            )
            .as_bytes(),
        );
        chmod(&server.bin_dir().join("ssh"), 0o755);
        // sshd insists on its privilege separation directory, which only the package's init
        // script or systemd creates (missing in containers).
        if is_root() && !Path::new("/run/sshd").exists() {
            let _ = fs::create_dir_all("/run/sshd");
            let _ = fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755));
        }
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            server.write_configs();
            match server.spawn() {
                Ok(()) => return Some(server),
                Err(e) => last = e,
            }
        }
        panic!("sshd did not start: {last}");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory under which [`Server::location`]s live.
    pub fn root(&self) -> PathBuf {
        self.path("data")
    }

    /// The directory holding the `ssh` wrapper (first in the `PATH` of [`Server::envs`]).
    pub fn bin_dir(&self) -> PathBuf {
        self.path("bin")
    }

    /// The user's private key (also in `VAULT_SFTP_KEY`).
    pub fn user_key(&self) -> PathBuf {
        self.path("user_key")
    }

    /// The `known_hosts` file holding the server's host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.path("known_hosts")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// `PATH` with the wrapper directory first.
    pub fn path_env(&self) -> OsString {
        let mut dirs = vec![self.bin_dir()];
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(dirs).expect("PATH")
    }

    fn keygen(&self, name: &str) {
        let out = Command::new(SSH_KEYGEN)
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("vault-test-{name}"))
            .arg("-f")
            .arg(self.path(name))
            .stdin(Stdio::null())
            .output()
            .expect("run ssh-keygen");
        assert!(
            out.status.success(),
            "ssh-keygen -f {name}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn write_configs(&self) {
        let d = self.dir.path().display();
        write(
            &self.path("sshd_config"),
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {d}/host_key\n\
                 PidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\n\
                 AllowUsers {user}\n\
                 StrictModes no\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 UseDNS no\n\
                 PrintMotd no\n\
                 LogLevel INFO\n\
                 Subsystem sftp internal-sftp\n\
                 ForceCommand internal-sftp\n",
                port = self.port,
                user = self.user,
            )
            .as_bytes(),
        );
        write(&self.known_hosts(), self.known_hosts_line().as_bytes());
        write(
            &self.path("ssh_config"),
            format!(
                "Host *\n  \
                 UserKnownHostsFile {d}/known_hosts\n  \
                 GlobalKnownHostsFile /dev/null\n  \
                 IdentityFile {d}/user_key\n  \
                 IdentitiesOnly yes\n  \
                 BatchMode yes\n  \
                 ConnectTimeout 10\n  \
                 LogLevel ERROR\n"
            )
            .as_bytes(),
        );
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 KEY\n`: the server's entry for a `known_hosts` file.
    pub fn known_hosts_line(&self) -> String {
        let host_pub = fs::read_to_string(self.path("host_key.pub")).unwrap();
        let mut fields = host_pub.split_whitespace();
        let (algo, key) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {algo} {key}\n", self.port)
    }

    fn log(&self) -> PathBuf {
        self.path("sshd.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut cmd = Command::new(SSHD);
        cmd.arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let cmdline = cmdline_of(&cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {cmdline}: {e}"))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!(
                    "{cmdline} exited ({status}):\n{}",
                    read_log(&self.log())
                ));
            }
            if accepts_connections(self.port) {
                break;
            }
            if started.elapsed() > START_TIMEOUT {
                kill_tree(&mut child);
                return Err(format!(
                    "{cmdline} did not accept connections within {START_TIMEOUT:?}:\n{}",
                    read_log(&self.log())
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        // A real login through the wrapper and an sftp session: the host key, the user key,
        // the config and the subsystem work.
        let out = self.ssh_cmd(&["-s", "sftp"]).output().expect("run ssh");
        if !out.status.success() {
            self.kill();
            return Err(format!(
                "ssh through the wrapper failed ({}): {}\n--- sshd log ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
                read_log(&self.log())
            ));
        }
        Ok(())
    }

    /// `ssh -p PORT USER@127.0.0.1 ARGS`, found through the `PATH` of [`Server::envs`] (so
    /// the wrapper, as vault's ssh is), stdin null.
    pub fn ssh_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.env("PATH", self.path_env())
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{}@127.0.0.1", self.user))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }
}

impl Server for SftpServer {
    fn kind(&self) -> &'static str {
        "sftp"
    }

    fn location(&self, path: &str) -> String {
        format!(
            "sftp:{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            self.root().join(path).display()
        )
    }

    fn disk_path(&self, path: &str) -> Option<PathBuf> {
        Some(self.root().join(path))
    }

    fn envs(&self) -> Vec<(String, String)> {
        vec![
            (
                "PATH".into(),
                self.path_env().into_string().expect("UTF-8 PATH"),
            ),
            (
                "VAULT_SFTP_KEY".into(),
                self.user_key().to_str().unwrap().into(),
            ),
        ]
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child);
        }
    }

    fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if started.elapsed() > START_TIMEOUT => {
                    panic!("sshd did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn is_up(&self) -> bool {
        self.child.is_some()
            && self
                .ssh_cmd(&["-s", "sftp"])
                .output()
                .is_ok_and(|o| o.status.success())
    }

    fn client_put(&self, path: &str, data: &[u8]) -> Result<bool, String> {
        if !is_executable(Path::new(SFTP)) {
            return Ok(false);
        }
        let body = self.path("put-body");
        write(&body, data);
        let target = self.root().join(path);
        let quote = |p: &Path| format!("\"{}\"", p.display());
        // `-mkdir`: an existing directory is not an error.
        let mut batch: String = target
            .ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(self.root()))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|d| format!("-mkdir {}\n", quote(d)))
            .collect();
        batch.push_str(&format!("put {} {}\n", quote(&body), quote(&target)));
        write(&self.path("put-batch"), batch.as_bytes());
        let out = Command::new(SFTP)
            .env("PATH", self.path_env())
            .arg("-S")
            .arg(self.bin_dir().join("ssh"))
            .arg("-P")
            .arg(self.port.to_string())
            .arg("-b")
            .arg(self.path("put-batch"))
            .arg(format!("{}@127.0.0.1", self.user))
            .stdin(Stdio::null())
            .output()
            .expect("run sftp");
        if !out.status.success() {
            return Err(format!(
                "sftp put {}: {}\n{}",
                target.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(true)
    }

    fn hold_connection(&self) -> Child {
        let child = self
            .ssh_cmd(&["-N"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ssh");
        connected(child, Duration::from_millis(1500), "an ssh connection")
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        self.kill();
    }
}
