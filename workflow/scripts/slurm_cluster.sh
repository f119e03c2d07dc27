#!/usr/bin/env bash
# A throwaway single-node SLURM cluster (this host) for testing the workflow's SLURM profile.
#
#   bash workflow/scripts/slurm_cluster.sh start DIR   # install if missing, configure, start, wait
#   bash workflow/scripts/slurm_cluster.sh stop DIR    # stop the daemons started into DIR
#   export SLURM_CONF=DIR/slurm.conf                   # then sinfo, sbatch, squeue talk to it
#
# Everything (config, munge key and socket, state, spool, logs, pid files) lives in DIR; the
# daemons run as root without systemd or cgroups (proctrack/linuxproc, task/none), as in a
# container. There is no accounting database: `sacct` does not work, so the Snakemake SLURM
# executor must poll with `squeue` (--slurm-status-command squeue), which sees finished jobs for
# MinJobAge seconds; every finished job is also written to DIR/jobcomp.log (jobcomp/filetxt).
# /etc/slurm/slurm.conf is linked to DIR/slurm.conf while the cluster runs (and must not be another
# file): the executor's job step (snakemake-executor-plugin-slurm-jobstep) drops every SLURM_*
# variable, SLURM_CONF included, before its nested `srun`, which then reads the default path.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
DEFAULT_CONF=/etc/slurm/slurm.conf
WAIT_SECONDS=60

say() { printf 'slurm_cluster: %s\n' "$*"; }
die() { printf 'slurm_cluster: error: %s\n' "$*" >&2; exit 1; }

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sinfo >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    if [ ${#missing[@]} -eq 0 ]; then
        say "packages present: ${PACKAGES[*]}"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${missing[*]}"
    say "installing ${missing[*]} (apt-get)"
    # No service may start from the packages' scripts: this script starts its own daemons.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local status=0
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
    [ "$added_policy" -eq 0 ] || rm -f "$policy"
    [ "$status" -eq 0 ] || die "apt-get install ${missing[*]} failed"
}

# Free memory in MB, less a margin, as the node's RealMemory (slurmd drains a node that claims more
# than it has).
real_memory_mb() {
    local available_kb
    available_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    echo $((available_kb * 9 / 10 / 1024))
}

write_config() {
    local dir=$1 host cpus memory
    host=$(hostname -s)
    cpus=$(nproc)
    memory=$(real_memory_mb)
    cat >"$dir/slurm.conf" <<EOF
# Written by workflow/scripts/slurm_cluster.sh: a single-node test cluster.
ClusterName=unihead-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No systemd, no cgroups in a container.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No slurmdbd: no sacct. Finished jobs stay visible to squeue for MinJobAge seconds, and each is
# written to the job completion log.
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
MinJobAge=600
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    say "wrote $dir/slurm.conf (node $host: $cpus CPUs, RealMemory=${memory} MB, partition debug)"
}

start_munge() {
    local dir=$1
    mkdir -p "$dir/munge"
    chmod 700 "$dir/munge"
    if [ ! -s "$dir/munge/munge.key" ]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$dir/munge/munge.key"
        else
            dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
        fi
        chmod 400 "$dir/munge/munge.key"
        say "created munge key $dir/munge/munge.key"
    fi
    # --force: munged refuses some paths (e.g. under /tmp) and running as root without it.
    munged --force \
        --socket="$dir/munge/munge.socket" \
        --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munged.pid" \
        --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed"
    say "started munged (pid $(cat "$dir/munged.pid"))"
}

link_default_config() {
    local dir=$1
    if [ -L "$DEFAULT_CONF" ] && [ ! -e "$DEFAULT_CONF" ]; then
        rm -f "$DEFAULT_CONF"
        say "removed the stale link $DEFAULT_CONF"
    fi
    if [ -e "$DEFAULT_CONF" ]; then
        [ "$(readlink -f "$DEFAULT_CONF")" = "$dir/slurm.conf" ] ||
            die "$DEFAULT_CONF exists and is not this cluster's (jobs' nested srun would read it): move it away"
        return
    fi
    mkdir -p "$(dirname "$DEFAULT_CONF")"
    ln -s "$dir/slurm.conf" "$DEFAULT_CONF"
    say "linked $DEFAULT_CONF -> $dir/slurm.conf"
}

log_tails() {
    local dir=$1 log
    for log in "$dir"/log/*.log; do
        [ -e "$log" ] || continue
        printf -- '--- last lines of %s\n' "$log" >&2
        tail -n 20 "$log" >&2
    done
}

wait_for_pid_file() {
    local file=$1
    for _ in $(seq 1 50); do
        [ -s "$file" ] && return 0
        sleep 0.2
    done
    return 1
}

start() {
    local dir=$1
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    for daemon in munged slurmctld slurmd; do
        if [ -s "$dir/$daemon.pid" ] && kill -0 "$(cat "$dir/$daemon.pid")" 2>/dev/null; then
            die "$daemon already running from $dir (pid $(cat "$dir/$daemon.pid")): stop it first"
        fi
    done
    install_packages
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    write_config "$dir"
    link_default_config "$dir"
    export SLURM_CONF="$dir/slurm.conf"
    start_munge "$dir"

    slurmctld -i || { log_tails "$dir"; die "slurmctld did not start"; }
    wait_for_pid_file "$dir/slurmctld.pid" || { log_tails "$dir"; die "slurmctld wrote no pid file"; }
    say "started slurmctld (pid $(cat "$dir/slurmctld.pid"))"
    slurmd || { log_tails "$dir"; die "slurmd did not start"; }
    wait_for_pid_file "$dir/slurmd.pid" || { log_tails "$dir"; die "slurmd wrote no pid file"; }
    say "started slurmd (pid $(cat "$dir/slurmd.pid"))"

    local state="" waited=0
    while [ "$waited" -lt "$WAIT_SECONDS" ]; do
        state=$(sinfo --noheader --Node --format=%t 2>/dev/null | head -n 1 || true)
        if [ "$state" = "idle" ]; then
            say "node $(hostname -s) is idle: the cluster is up (export SLURM_CONF=$SLURM_CONF)"
            return 0
        fi
        sleep 1
        waited=$((waited + 1))
    done
    sinfo --list-reasons >&2 || true
    log_tails "$dir"
    die "node not idle after ${WAIT_SECONDS}s (state: '${state:-no answer from slurmctld}')"
}

stop() {
    local dir=$1 daemon pid
    [ -d "$dir" ] || die "no such directory: $dir"
    if [ -s "$dir/slurm.conf" ] && [ -s "$dir/slurmctld.pid" ] && command -v scancel >/dev/null; then
        SLURM_CONF="$dir/slurm.conf" scancel --user="$(id -un)" 2>/dev/null || true
    fi
    for daemon in slurmd slurmctld munged; do
        [ -s "$dir/$daemon.pid" ] || continue
        pid=$(cat "$dir/$daemon.pid")
        if ! kill -0 "$pid" 2>/dev/null; then
            say "$daemon (pid $pid) is not running"
            rm -f "$dir/$daemon.pid"
            continue
        fi
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
            say "killed $daemon (pid $pid) after it ignored SIGTERM for 10s"
        else
            say "stopped $daemon (pid $pid)"
        fi
        rm -f "$dir/$daemon.pid"
    done
    if [ -L "$DEFAULT_CONF" ] && [ "$(readlink "$DEFAULT_CONF")" = "$(cd "$dir" && pwd)/slurm.conf" ]; then
        rm -f "$DEFAULT_CONF"
        say "removed the link $DEFAULT_CONF"
    fi
}

usage() { die "usage: $0 start DIR | stop DIR"; }

[ $# -eq 2 ] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop "$2" ;;
    *) usage ;;
esac
