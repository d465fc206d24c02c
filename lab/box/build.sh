#!/usr/bin/env bash
# Builds the Vagrant box for c1 and c2 from Debian's packages, for the
# libvirt provider: Debian bookworm (debootstrap, minbase) with the cloud
# kernel, systemd-networkd, openssh-server, sudo, iptables and iproute2, and a
# `vagrant` user that logs in with Vagrant's well-known insecure key and has
# passwordless sudo. No box is downloaded from anywhere.
#
#   sudo lab/box/build.sh                 # prints the path of the box
#   vagrant box add --name tcplab/bookworm "$(sudo lab/box/build.sh)"
#
# The box is cached under $TCPLAB_BOX_CACHE (default ~/.cache/tcplab/boxes),
# keyed by a hash of this script, the Debian mirror and the Vagrant key: a
# second run with the same inputs builds nothing. Needs root (debootstrap,
# loop devices) and: debootstrap extlinux syslinux-common fdisk e2fsprogs
# qemu-utils vagrant (for its public key) debian-archive-keyring.
#
# The guests are offline: the image has no apt sources, and the timers that
# would reach for a network (apt) or cost boot time under software emulation
# (e2scrub, fstrim) are masked; ifupdown is not installed (systemd-networkd
# brings up the first NIC by DHCP, and Vagrant configures the others).
set -euo pipefail

suite=bookworm
size_mib=2048
cache=${TCPLAB_BOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tcplab/boxes}

die() { echo "lab/box/build.sh: $*" >&2; exit "${2:-1}"; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap and loop devices); run it with sudo" 3
for tool in debootstrap extlinux sfdisk mkfs.ext4 qemu-img losetup; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install debootstrap extlinux syslinux-common fdisk e2fsprogs qemu-utils mount" 3
done
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || die "$mbr is missing: apt-get install syslinux-common" 3

# Vagrant's insecure public key, as Debian's vagrant package ships it.
pubkey=$(find /usr/share/rubygems-integration /usr/lib/ruby /opt/vagrant -path '*vagrant*/keys/vagrant.pub' 2>/dev/null | head -n1 || true)
[ -n "$pubkey" ] || die "Vagrant's public key (keys/vagrant.pub) not found: apt-get install vagrant" 3

# The Debian mirror: TCPLAB_DEBIAN_MIRROR, else the first Debian archive in
# this machine's own apt sources, as tcplab's parser of both sources formats
# reads them (`tcplab lab mirror`; TCPLAB names the binary, else the one on
# PATH, else this checkout's through cargo).
if [ -n "${TCPLAB_DEBIAN_MIRROR:-}" ]; then
    mirror=$TCPLAB_DEBIAN_MIRROR
elif [ -n "${TCPLAB:-}" ]; then
    mirror=$("$TCPLAB" lab mirror) || die "no Debian mirror (see above)" 3
elif command -v tcplab >/dev/null; then
    mirror=$(tcplab lab mirror) || die "no Debian mirror (see above)" 3
else
    mirror=$(cd "$(dirname "$0")/../.." && cargo run --quiet --locked -- lab mirror) \
        || die "no Debian mirror (see above)" 3
fi
key=$(cat "$0" "$pubkey" <(echo "$mirror $suite $size_mib") | sha256sum | cut -c1-16)
box="$cache/tcplab-$suite-libvirt-$key.box"
if [ -s "$box" ]; then
    echo "$box"
    exit 0
fi
# The cache holds what root boots: root's alone, made 0700, refused when
# another user owns it or can write it (or a parent).
install -d -m 700 "$cache"
dir=$cache
while [ "$dir" != / ]; do
    read -r owner mode < <(stat -c '%u %a' -- "$dir")
    if [ -L "$dir" ] && [ "$owner" != 0 ]; then
        die "$dir is a symlink of uid $owner: the box cache must be root's alone" 3
    fi
    if [ "$owner" != 0 ] || { (( 8#$mode & 8#022 )) && ! (( 8#$mode & 8#1000 )); }; then
        die "$dir (uid $owner, mode $mode) is not root's alone: fix it or set TCPLAB_BOX_CACHE" 3
    fi
    dir=$(dirname -- "$dir")
done
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "$keyring is missing: apt-get install debian-archive-keyring" 3

work=$(mktemp -d /var/tmp/tcplab-box.XXXXXX)
root="$work/root"
loop=""
partial=""
cleanup() {
    set +e
    [ -n "$partial" ] && rm -f "$partial"
    for mount in "$root/dev/pts" "$root/dev" "$root/proc" "$root/sys" "$root"; do
        mountpoint -q "$mount" && umount -l "$mount"
    done
    [ -n "$loop" ] && losetup -d "$loop"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "building the $suite box from $mirror in $work" >&2
image="$work/disk.raw"
truncate -s "${size_mib}M" "$image"
# One bootable partition from 1 MiB on.
echo 'start=2048, type=83, bootable' | sfdisk -q "$image"
start_sector=2048
# No partition device nodes appear for loop devices here, so the partition
# is reached through a loop device at its offset.
loop=$(losetup --find --show --offset $((start_sector * 512)) "$image")
mkfs.ext4 -q -L root "$loop"
mkdir -p "$root"
mount "$loop" "$root"

packages=linux-image-cloud-amd64,systemd-sysv,udev,dbus,openssh-server,sudo,iptables,iproute2,netbase,procps,ca-certificates
# Every package checked against the Release file's signature, or nothing.
debootstrap --force-check-gpg --keyring="$keyring" --variant=minbase \
    --include="$packages" "$suite" "$root" "$mirror" >&2

chroot_run() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

echo "LABEL=root / ext4 defaults,noatime 0 1" > "$root/etc/fstab"
echo "tcplab" > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 tcplab\n' > "$root/etc/hosts"
mkdir -p "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/10-first-nic.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4

[DHCPv4]
ClientIdentifier=mac
EOF
# Every VM of the box must get its own machine id (systemd makes one at
# first boot when the file is empty): DHCP servers tell clients apart by it.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
chroot_run systemctl enable systemd-networkd.service >/dev/null 2>&1
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer e2scrub_reap.service; do
    chroot_run systemctl mask "$unit" >/dev/null 2>&1 || true
done
# systemd-networkd-wait-online would hold boot for Vagrant's second NIC.
chroot_run systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true

# Keys only: no password to log in with (Vagrant logs in with its key and
# puts a fresh one in place); sudo without one, as Vagrant needs.
chroot_run useradd --create-home --shell /bin/bash vagrant
chroot_run passwd --lock vagrant >/dev/null
install -d -m 700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
install -m 600 -o 1000 -g 1000 "$pubkey" "$root/home/vagrant/.ssh/authorized_keys"
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$root/etc/sudoers.d/vagrant"
chmod 440 "$root/etc/sudoers.d/vagrant"
printf 'UseDNS no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n' \
    > "$root/etc/ssh/sshd_config.d/10-vagrant.conf"

# Offline guests: no apt sources, no package lists.
rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb

# Boot loader: extlinux in the partition, syslinux's MBR in front of it.
kernels=("$root"/boot/vmlinuz-*)
initrds=("$root"/boot/initrd.img-*)
kernel=$(basename "${kernels[0]}")
initrd=$(basename "${initrds[0]}")
mkdir -p "$root/boot/extlinux"
cat > "$root/boot/extlinux/extlinux.conf" <<EOF
DEFAULT linux
TIMEOUT 0
PROMPT 0
LABEL linux
  LINUX /boot/$kernel
  INITRD /boot/$initrd
  APPEND root=LABEL=root rw console=ttyS0 net.ifnames=0 quiet
EOF
extlinux --install "$root/boot/extlinux" 2>/dev/null
sync
umount "$root"
losetup -d "$loop"
loop=""
dd if="$mbr" of="$image" bs=440 count=1 conv=notrunc status=none
# The partition's boot sector was written through a loop device that starts
# at the partition, so its "hidden sectors" field (offset 0x1c) says 0; the
# BIOS loader needs the partition's real start (four bytes, little-endian).
# shellcheck disable=SC2059
printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' \
    $((start_sector & 255)) $(((start_sector >> 8) & 255)) \
    $(((start_sector >> 16) & 255)) $(((start_sector >> 24) & 255)))" \
    | dd of="$image" bs=1 seek=$((start_sector * 512 + 0x1c)) conv=notrunc status=none

mkdir -p "$work/box"
qemu-img convert -O qcow2 "$image" "$work/box/box.img"
rm -f "$image"
cat > "$work/box/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": $((size_mib / 1024))}
EOF
cat > "$work/box/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
  end
end
EOF
# A fresh name in the cache (mktemp: O_EXCL), renamed over the box: a link
# planted at the box's name is replaced, never written through.
partial=$(mktemp "$cache/.box.XXXXXX")
tar -C "$work/box" -cf "$partial" metadata.json Vagrantfile box.img
chmod 644 "$partial"
mv -T -- "$partial" "$box"
# Boxes built from older inputs are of no use any more.
find "$cache" -maxdepth 1 -name "tcplab-$suite-libvirt-*.box" ! -path "$box" -delete
echo "$box"
