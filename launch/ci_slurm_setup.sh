#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests/test_launch.py's Slurm tests (CI).
# Needs root and Debian/Ubuntu packages; idempotent: a running cluster with this
# slurm.conf and all its slurmd is left alone, else it is restarted with this slurm.conf.
#   sudo launch/ci_slurm_setup.sh        # then `sinfo` shows this host idle
# Partitions: `debug` (default) is this host's node; `multi` is two emulated nodes, n1 and
# n2, for real multi-node jobs (sbatch --partition=multi --nodes=2 launch/slurm_multi_node.sh):
# one slurmd per node on this host (`slurmd -N <node>`, each on its own port), each node
# with this host's CPUs and memory, so the three nodes share the same cores (Slurm does
# not know; jobs on them just run slower side by side). n1 and n2 get NodeAddr=127.0.0.1
# and an /etc/hosts line, as a real cluster's node names resolve: the multi-node script
# dials its first node by name. If n1 or n2 already resolves elsewhere, there is no `multi`.
# Not for real clusters: no accounting, no cgroups, slurmctld and slurmd run as root.
set -euo pipefail

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q slurm-wlm munge
fi

# munge authenticates every Slurm RPC; a key must exist before munged starts
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

host=$(hostname -s)
# `slurmd -C` prints this node's real CPUs/sockets/memory in slurm.conf syntax
node_line=$(slurmd -C | awk "NR == 1")
# the emulated nodes n1 n2: their names must resolve to this host (the trainers of a
# multi-node job dial the first node by name), their slurmd listen on ports 6821, 6822
emulated=(n1 n2)
nodes=("$host")
emulated_ok=1
for n in "${emulated[@]}"; do
    addr=$(getent hosts "$n" | awk "NR == 1 { print \$1 }") || true
    if [ -z "$addr" ]; then
        echo "127.0.0.1 $n  # launch/ci_slurm_setup.sh: an emulated Slurm node" >> /etc/hosts
    elif [ "$addr" != 127.0.0.1 ]; then
        echo "slurm: $n resolves to $addr, not to this host: no emulated nodes, no partition multi" >&2
        emulated_ok=0
    fi
done
emulated_conf=""
if [ "$emulated_ok" -eq 1 ]; then
    nodes+=("${emulated[@]}")
    # this host's node line, renamed: NodeName=n[1-2] NodeHostname=... CPUs=...
    emulated_conf="NodeName=n[1-2] NodeHostname=${host} NodeAddr=127.0.0.1 Port=[6821-6822] ${node_line#NodeName=* } State=UNKNOWN
PartitionName=multi Nodes=n[1-2] Default=NO MaxTime=INFINITE State=UP"
fi
mkdir -p /var/spool/slurmctld /var/log/slurm
for n in "${nodes[@]}"; do mkdir -p "/var/spool/slurmd/$n"; done
conf=$(mktemp)
cat > "$conf" <<EOF
ClusterName=acchooks-ci
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
# a requeued job waits cred_expire + 1 s before it may start again (its old job credential
# is revoked until then; starting it sooner, e.g. with \`scontrol update StartTime=now\`,
# fails the launch and the job ends FAILED 1:0). The default is 120 s; 10 s keeps the
# requeue test short without racing the revocation.
AuthInfo=cred_expire=10
# no cgroups in containers: track processes by parentage, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
JobRequeue=1
KillWait=30
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=/var/spool/slurmctld
# one slurmd per node on this host (slurmd -N NODE): %n is the node's name
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
${node_line} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
${emulated_conf}
EOF

# is NODE's slurmd (started below as `slurmd -N NODE`) running?
slurmd_running() { pgrep -xf "/usr/sbin/slurmd -N $1" >/dev/null; }
all_slurmd_running() {
    local n
    for n in "${nodes[@]}"; do slurmd_running "$n" || return 1; done
}
# every node of this slurm.conf answers (idle, or running a job)
all_nodes_up() {
    local up
    up=$(sinfo -h -N -t idle,mixed,allocated -o %N 2>/dev/null | sort -u | wc -l)
    [ "$up" -eq "${#nodes[@]}" ]
}

if cmp -s "$conf" /etc/slurm/slurm.conf && all_slurmd_running \
        && sinfo -h -o %T 2>/dev/null | grep -q idle; then
    rm -f "$conf"; echo "slurm: already running with this slurm.conf"; exit 0
fi
# a cluster started with another slurm.conf (e.g. without AuthInfo above): restart it
pkill -x slurmctld || true
pkill -x slurmd || true
# (one name per pgrep -x: it matches names of at most 15 characters, 'slurmctld|slurmd' none)
for _ in $(seq 20); do
    pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
    sleep 0.5
done
mv "$conf" /etc/slurm/slurm.conf && chmod 644 /etc/slurm/slurm.conf

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
for n in "${nodes[@]}"; do slurmd_running "$n" || /usr/sbin/slurmd -N "$n"; done

for _ in $(seq 30); do
    if all_nodes_up && sinfo -h -o %T 2>/dev/null | grep -q idle; then
        sinfo; exit 0
    fi
    sleep 1
done
echo "slurm: nodes ${nodes[*]} did not all come up; see /var/log/slurm/" >&2
sinfo -N >&2 || true
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd-*.log >&2 || true
exit 1
