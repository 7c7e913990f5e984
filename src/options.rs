//! fstab-style mount options: `-o allow_other,region=eu-west-1,ro` becomes
//! `--allow-other --region=eu-west-1 --read-only` before clap sees the command line, so every
//! long option can be given either way and both are checked by the same parser.
//!
//! mount(8) runs `mount.s3drive SOURCE DIR [-sfnv] -o OPTIONS` (type `s3drive`), and mount.fuse3
//! runs `s3drive SOURCE DIR -o OPTIONS` (type `fuse.s3drive`); both end here.

use std::ffi::OsString;

use clap::CommandFactory;

use crate::cli::Cli;

/// Options that concern mount(8), systemd or the kernel's defaults, not s3drive: accepted and
/// ignored (s3drive always mounts nodev,nosuid,noatime).
const IGNORED: &[&str] = &[
    "_netdev",
    "nofail",
    "noauto",
    "auto",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "defaults",
    "rw",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nodiratime",
    "diratime",
    "async",
    "sync",
    "lazytime",
    "nolazytime",
    "loud",
    "silent",
];

/// Short names for long options, as other FUSE filesystems spell them.
const ALIASES: &[(&str, &str)] = &[("ro", "read-only"), ("endpoint", "endpoint-url"), ("debug", "foreground")];

/// Expands `-o` options in `argv` into long options. When called as `mount.s3drive`, mount(8)'s
/// own flags (`-s`, `-f`, `-n`, `-v`) are dropped.
pub fn expand(argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let as_helper = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n.to_string_lossy().starts_with("mount."));
    let cmd = Cli::command();
    let long =
        |name: &str| cmd.get_arguments().find(|a| a.get_long() == Some(name)).map(|a| a.get_action().takes_values());
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.into_iter();
    if let Some(a0) = it.next() {
        out.push(a0);
    }
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy().into_owned();
        let list = if s == "-o" {
            it.next().ok_or("-o needs a list of options")?.to_string_lossy().into_owned()
        } else if let Some(rest) = s.strip_prefix("-o").filter(|_| !s.starts_with("--")) {
            rest.to_string()
        } else {
            if !(as_helper && matches!(s.as_str(), "-s" | "-f" | "-n" | "-v")) {
                out.push(arg);
            }
            continue;
        };
        for opt in list.split(',').filter(|o| !o.is_empty()) {
            let (name, value) = match opt.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (opt, None),
            };
            if IGNORED.contains(&name) || name.starts_with("x-") || name == "comment" {
                continue;
            }
            let flag = name.replace('_', "-");
            let flag = ALIASES.iter().find(|(a, _)| *a == flag).map_or(flag.clone(), |(_, l)| l.to_string());
            match (long(&flag), value) {
                (None, _) => return Err(format!("unknown mount option {name:?} (see s3drive --help)")),
                (Some(true), Some(v)) => out.push(format!("--{flag}={v}").into()),
                (Some(true), None) => return Err(format!("mount option {name:?} needs a value ({name}=...)")),
                (Some(false), None) => out.push(format!("--{flag}").into()),
                (Some(false), Some(_)) => return Err(format!("mount option {name:?} takes no value")),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(args: &[&str]) -> Result<Vec<String>, String> {
        expand(args.iter().map(OsString::from).collect())
            .map(|v| v.into_iter().map(|s| s.into_string().unwrap()).collect())
    }

    #[test]
    fn fstab_options_become_flags() {
        assert_eq!(
            ex(&["s3drive", "s3://b/p", "/mnt", "-o", "_netdev,allow_other,region=eu-west-1,ro,x-systemd.automount"])
                .unwrap(),
            ["s3drive", "s3://b/p", "/mnt", "--allow-other", "--region=eu-west-1", "--read-only"]
        );
        assert_eq!(
            ex(&["/sbin/mount.s3drive", "b", "/mnt", "-n", "-oendpoint_url=http://h:9000,force_path_style,uid=7"])
                .unwrap(),
            ["/sbin/mount.s3drive", "b", "/mnt", "--endpoint-url=http://h:9000", "--force-path-style", "--uid=7"]
        );
        assert_eq!(ex(&["s3drive", "b", "/mnt", "-n"]).unwrap(), ["s3drive", "b", "/mnt", "-n"], "only as helper");
        assert!(ex(&["s3drive", "b", "/m", "-o", "bogus"]).unwrap_err().contains("unknown mount option \"bogus\""));
        assert!(ex(&["s3drive", "b", "/m", "-o", "region"]).unwrap_err().contains("needs a value"));
        assert!(ex(&["s3drive", "b", "/m", "-o", "allow_other=1"]).unwrap_err().contains("takes no value"));
        assert!(ex(&["s3drive", "b", "/m", "-o"]).is_err());
    }
}
