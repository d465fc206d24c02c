#!/usr/bin/env bash
# The user's own workflow, for real, on a Linux machine with or without KVM:
# build the box from Debian's packages, `vagrant up` c1 and c2 with libvirt,
# run `cargo run -- fin-wait2` and `time-wait` on them (asserting in --json
# that the default lab picked the VMs and every case passed), kill -9 a run
# in the middle and check that nothing is left on the VMs, `vagrant destroy`.
# .ci/run runs it; run it yourself as root:  lab/vagrant-workflow.sh
#
# libvirt adds bridges, NAT rules and a dnsmasq, so everything here (libvirtd,
# its networks, the VMs, vagrant and tcplab) runs inside a network and mount
# namespace made for this run: the machine's own firewall, links and routes
# are compared before and after, and must be identical. In that mount
# namespace libvirt gets private /etc/libvirt, /var/lib/libvirt and /run, and
# a /dev without /dev/kvm unless KVM really runs guests here (a /dev/kvm that
# opens but cannot run a guest makes libvirt stall), so the Vagrantfile
# picks libvirt's qemu driver by itself.
#
# Caches (kept between runs on one machine, rebuilt when their inputs
# change): the box (lab/box/build.sh) and Vagrant's box store
# (~/.cache/tcplab/vagrant.d). Everything else goes on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

log() { printf '[vagrant-workflow %(%T)T] %s\n' -1 "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "lab/vagrant-workflow.sh: run it as root (namespaces, libvirtd)" >&2; exit 3; }

started=$SECONDS
cache=${XDG_CACHE_HOME:-$HOME/.cache}/tcplab
export VAGRANT_HOME=$cache/vagrant.d
export VAGRANT_DEFAULT_PROVIDER=libvirt
export VAGRANT_CHECKPOINT_DISABLE=1
export LIBVIRT_DEFAULT_URI=qemu:///system
mkdir -p "$VAGRANT_HOME"

host_state() {
    { iptables-save; ip6tables-save; } 2>/dev/null | grep -v '^#' || true
    nft list ruleset 2>/dev/null || true
    ip -o link show | awk '{print $2, $3}'
    ip route show table all
    ip netns list
}
before=$(host_state)
# Vagrant keeps its per-project state in .vagrant: removed at the end if
# this run made it.
made_dot_vagrant=0
[ -e "$repo/.vagrant" ] || made_dot_vagrant=1

work=$(mktemp -d /var/tmp/tcplab-vagrant.XXXXXX)
holder=""
libvirtd_pid=""
current=""


# Runs a command inside the run's namespaces.
inside() { nsenter -t "$holder" -n -m --wd="$PWD" -- "$@"; }

# Runs a long command in the background and waits for it: bash runs its
# INT/TERM traps only between commands, and `wait` is one it interrupts.
# The command is ended (by pid) on the way out.
in_background() {
    "$@" &
    current=$!
    local rc=0
    wait "$current" || rc=$?
    current=""
    return "$rc"
}

netns_processes() {
    local ns pid
    ns=$(stat -Lc %i "/proc/$holder/ns/net" 2>/dev/null) || return 0
    for pid in /proc/[0-9]*; do
        pid=${pid#/proc/}
        [ "$pid" = "$holder" ] && continue
        [ "$(stat -Lc %i "/proc/$pid/ns/net" 2>/dev/null)" = "$ns" ] && echo "$pid"
    done
    return 0
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "$current" ]; then
        kill -TERM "$current" 2>/dev/null
        wait "$current" 2>/dev/null
    fi
    if [ -n "$holder" ] && [ -d "/proc/$holder" ]; then
        if [ -n "$libvirtd_pid" ] && [ -d "/proc/$libvirtd_pid" ]; then
            log "vagrant destroy -f"
            timeout 600 nsenter -t "$holder" -n -m --wd="$repo" -- vagrant destroy -f >&2
            kill "$libvirtd_pid" 2>/dev/null
            for _ in $(seq 50); do [ -d "/proc/$libvirtd_pid" ] || break; sleep 0.1; done
        fi
        # What is still in the run's network namespace was started by this
        # run (qemu, dnsmasq): end it by pid.
        for pid in $(netns_processes); do kill -KILL "$pid" 2>/dev/null; done
        kill -KILL "$holder" 2>/dev/null
        wait "$holder" 2>/dev/null
    fi
    rm -rf "$work"
    [ "$made_dot_vagrant" = 1 ] && rm -rf "$repo/.vagrant"
    after=$(host_state)
    if [ "$before" != "$after" ]; then
        log "the machine's own firewall, links or routes changed:"
        diff <(echo "$before") <(echo "$after") >&2
        rc=1
    fi
    log "finished in $((SECONDS - started)) s with exit code $rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building tcplab (release)"
in_background cargo build --release --locked -q
# Where cargo put it: CARGO_TARGET_DIR or a config may move target/.
target_dir=$(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
tcplab=$target_dir/release/tcplab
[ -x "$tcplab" ] || die "cargo build left no $tcplab"

log "building the box (cached when its inputs are unchanged)"
TCPLAB=$tcplab in_background lab/box/build.sh > "$work/box-path" || die "building the box failed"
box=$(cat "$work/box-path")
box_key=$(basename "$box")
if [ "$(cat "$VAGRANT_HOME/tcplab-box-key" 2>/dev/null)" != "$box_key" ]; then
    vagrant box remove --force tcplab/bookworm >/dev/null 2>&1 || true
    in_background vagrant box add --name tcplab/bookworm "$box" >&2
    echo "$box_key" > "$VAGRANT_HOME/tcplab-box-key"
fi

log "a private network and mount namespace for libvirt"
unshare --net --mount --propagation private sleep infinity &
holder=$!
for _ in $(seq 50); do
    [ "$(stat -Lc %i /proc/$holder/ns/net 2>/dev/null)" != "$(stat -Lc %i /proc/self/ns/net)" ] && break
    sleep 0.1
done
inside ip link set lo up

# libvirt's configuration, state and sockets, private to this run.
mkdir -p "$work/etc" "$work/lib" "$work/run" "$work/dev"
cp -a /etc/libvirt "$work/etc/libvirt"
cat >> "$work/etc/libvirt/qemu.conf" <<'EOF'
# tcplab's workflow: root runs the VMs from a private /dev, no per-VM
# namespaces (they would copy /dev nodes), logs straight to files.
user = "root"
group = "root"
namespaces = [ ]
stdio_handler = "file"
remember_owner = 0
security_driver = "none"
EOF
rm -f "$work/etc/libvirt/qemu/networks/autostart/"*.xml
kvm_works=0
if [ "${TCPLAB_VAGRANT_KVM:-auto}" = yes ]; then kvm_works=1; fi
# shellcheck disable=SC2016
inside sh -eu -c '
    work=$1; kvm=$2
    mount --bind "$work/etc/libvirt" /etc/libvirt
    mount --bind "$work/lib" /var/lib/libvirt
    mount -t tmpfs -o mode=755 tmpfs /run
    mkdir -p /run/libvirt /run/lock
    # A /dev of the nodes qemu and libvirt use; /dev/kvm only if it works.
    mount -t tmpfs -o mode=755 tmpfs "$work/dev"
    for node in null zero full random urandom tty net/tun vhost-net; do
        [ -e "/dev/$node" ] || continue
        mkdir -p "$(dirname "$work/dev/$node")"
        touch "$work/dev/$node"
        mount --bind "/dev/$node" "$work/dev/$node"
    done
    if [ "$kvm" = 1 ] && [ -e /dev/kvm ]; then touch "$work/dev/kvm"; mount --bind /dev/kvm "$work/dev/kvm"; fi
    mkdir -p "$work/dev/pts" "$work/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$work/dev/pts"
    ln -s pts/ptmx "$work/dev/ptmx"
    mount -t tmpfs tmpfs "$work/dev/shm"
    ln -s /proc/self/fd "$work/dev/fd"
    ln -s /proc/self/fd/0 "$work/dev/stdin"
    ln -s /proc/self/fd/1 "$work/dev/stdout"
    ln -s /proc/self/fd/2 "$work/dev/stderr"
    mount --move "$work/dev" /dev
' _ "$work" "$kvm_works"

log "libvirtd (in the run's namespaces)"
nsenter -t "$holder" -n -m --wd="$PWD" -- libvirtd --verbose >"$work/libvirtd.log" 2>&1 &
libvirtd_pid=$!
for _ in $(seq 300); do
    inside virsh -q version >/dev/null 2>&1 && break
    [ -d "/proc/$libvirtd_pid" ] || { cat "$work/libvirtd.log" >&2; die "libvirtd exited"; }
    sleep 0.2
done
inside virsh -q version >/dev/null 2>&1 || die "libvirtd did not answer"
driver=$(cd "$repo" && inside ruby -e 'load "Vagrantfile" rescue nil; puts libvirt_driver' 2>/dev/null || echo "?")
log "libvirt is up; the Vagrantfile picks the $driver driver"

up_started=$SECONDS
log "vagrant up"
in_background timeout 1500 nsenter -t "$holder" -n -m --wd="$repo" -- vagrant up --provider=libvirt >&2 \
    || die "vagrant up failed"
log "vagrant up took $((SECONDS - up_started)) s"

json_check() {
    python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
kind, passed, cases = doc["lab"]["kind"], doc["passed"], doc["cases"]
good = sum(1 for case in cases if case["passed"])
print("%s: lab %s, %d of %d cases passed" % (doc["experiment"], kind, good, len(cases)))
sys.exit(0 if kind == "vagrant" and passed and good == len(cases) else 1)
' "$1"
}

for experiment in fin-wait2 time-wait; do
    run_started=$SECONDS
    (cd "$repo" && inside "$tcplab" "$experiment" --json) > "$work/$experiment.json" \
        || { cat "$work/$experiment.json" >&2; die "$experiment failed on the VMs"; }
    json_check "$work/$experiment.json" >&2 || die "$experiment: not the vagrant lab, or a case failed"
    log "$experiment on the VMs took $((SECONDS - run_started)) s"
done
(cd "$repo" && inside cargo run --release --locked -q -- fin-wait2) >&2 \
    || die "cargo run -- fin-wait2 failed on the VMs"
# The VMs keep this build's agent (in /var/cache/tcplab/agents): a run on
# running VMs is now one vagrant call, two ssh sessions and the cases.
for run in 1 2 3; do
    run_started=$(date +%s%N)
    (cd "$repo" && inside "$tcplab" fin-wait2 --json) > "$work/again.json" \
        || die "fin-wait2 failed on the VMs with the agent kept"
    json_check "$work/again.json" >/dev/null || die "fin-wait2 with the agent kept: not the vagrant lab, or a case failed"
    cases_ms=$(python3 -c 'import json, sys; print(sum(c["duration_ms"] for c in json.load(open(sys.argv[1]))["cases"]))' "$work/again.json")
    log "fin-wait2 on running VMs, agent kept (run $run): $(( ($(date +%s%N) - run_started) / 1000000 )) ms, of which the four cases $cases_ms ms"
done
# Where the rest goes: one ssh session to a VM, handshake to close, with
# the ssh config tcplab uses (Vagrant's).
(cd "$repo" && inside vagrant ssh-config c1 c2) > "$work/ssh_config"
for run in 1 2 3; do
    run_started=$(date +%s%N)
    inside ssh -F "$work/ssh_config" -o BatchMode=yes -T c2 true \
        || die "ssh c2 true failed"
    log "one ssh session to c2 (connect, handshake, true, close), run $run: $(( ($(date +%s%N) - run_started) / 1000000 )) ms"
done

vm_leftovers() {
    local host
    for host in c1 c2; do
        (cd "$repo" && inside vagrant ssh "$host" -c \
            'sudo iptables -S | grep tcplab; pgrep -a -f "(tcplab|agents/[0-9a-f]+) (agent|serve)"; ls -d /tmp/tcplab-upload.* 2>/dev/null' \
            2>/dev/null) | sed "s/^/$host: /"
    done
    return 0
}

log "kill -9 of the orchestrator in the middle of a run"
(cd "$repo" && exec nsenter -t "$holder" -n -m --wd="$PWD" -- "$tcplab" run tests/fixtures/waits-forever.toml -q) \
    > /dev/null 2>&1 &
victim=$!
for _ in $(seq 120); do
    vm_leftovers | grep -q "c1: .*tcplab agent" && break
    sleep 1
done
vm_leftovers | grep -q "c1: .*tcplab agent" || die "the run never put its rule on c1"
kill -KILL "$victim"
wait "$victim" 2>/dev/null || true
left=""
for _ in $(seq 30); do
    left=$(vm_leftovers)
    [ -z "$left" ] && break
    sleep 1
done
[ -z "$left" ] || die "left on the VMs after kill -9: $left"
log "nothing left on the VMs after kill -9 of the orchestrator"
log "the whole workflow took $((SECONDS - started)) s"
