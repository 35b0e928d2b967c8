// Package bootstrap tests the VM bootstrap of deploy/README.md as written:
// its cloud-init files, rendered the way the guide says, are carried out on
// network-namespace hosts (write_files, then runcmd: the real install.sh,
// and the installed systemd units' ExecStart with their environment files),
// everything but systemd itself.
package bootstrap
