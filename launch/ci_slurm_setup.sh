#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests/test_launch.py's Slurm tests (CI).
# Needs root and Debian/Ubuntu packages; idempotent: a running cluster with this
# slurm.conf is left alone, one with another slurm.conf is restarted with this one.
#   sudo launch/ci_slurm_setup.sh        # then `sinfo` shows this host idle
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
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
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
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
${node_line} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

if cmp -s "$conf" /etc/slurm/slurm.conf && sinfo -h -o %T 2>/dev/null | grep -q idle; then
    rm -f "$conf"; echo "slurm: already running with this slurm.conf"; exit 0
fi
# a cluster started with another slurm.conf (e.g. without AuthInfo above): restart it
pkill -x slurmctld || true
pkill -x slurmd || true
for _ in $(seq 20); do pgrep -x 'slurmctld|slurmd' >/dev/null || break; sleep 0.5; done
mv "$conf" /etc/slurm/slurm.conf && chmod 644 /etc/slurm/slurm.conf

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd

for _ in $(seq 30); do
    if sinfo -h -o %T 2>/dev/null | grep -q idle; then
        sinfo; exit 0
    fi
    sleep 1
done
echo "slurm: node did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
