# shellcheck shell=bash
# Sourced by launch/slurm_single_node.sh and launch/slurm_multi_node.sh: settings from the
# environment, the `accelerate launch` options, and the preemption/requeue logic.
#
# Environment (sbatch passes the submitting shell's environment to the job):
#   CONFIG        the acchooks config (required)
#   WORK_DIR      logs and checkpoints (default work_dirs/<config name>); a requeued job
#                 resumes from the newest complete checkpoint here (--resume auto)
#   GPUS          GPUs per node (default 1); 0 trains on CPUs
#   NPROC         processes per node (default GPUS, or 1 when GPUS=0)
#   ACCELERATE_CONFIG  an accelerate config file, e.g. launch/fsdp.yaml (optional)
#   LAUNCH_ARGS   more `accelerate launch` options, e.g. "--mixed_precision bf16"
#   MAX_RESTARTS  how many times a preempted job requeues itself (default 5)
#   ACCHOOKS_ROOT the repository (default: the directory sbatch was run from)
#   ACCELERATE    the accelerate executable (default: `accelerate` on PATH)
# Arguments after the script name go to train.py (e.g. --cfg-options a=1).

EXIT_PREEMPTED=75  # acchooks/runner/preemption.py: every trainer process exits 75

acchooks_setup() {
    ROOT=${ACCHOOKS_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
    : "${CONFIG:?set CONFIG to the acchooks config file}"
    WORK_DIR=${WORK_DIR:-work_dirs/$(basename "$CONFIG" .py)}
    GPUS=${GPUS:-1}
    if [ "$GPUS" -gt 0 ]; then NPROC=${NPROC:-$GPUS}; else NPROC=${NPROC:-1}; fi
    MAX_RESTARTS=${MAX_RESTARTS:-5}
    ACCELERATE=${ACCELERATE:-accelerate}
    RESTARTS=${SLURM_RESTART_COUNT:-0}  # set by Slurm in a requeued job
    cd "$ROOT" || return
    echo "acchooks: job ${SLURM_JOB_ID:-?} (restart $RESTARTS of at most $MAX_RESTARTS) on" \
         "$(hostname) at $(date -Is): config $CONFIG, work dir $WORK_DIR"
}

# `accelerate launch` options for one node, into the array LAUNCH (without machine rank)
acchooks_launch_options() {
    local total=$1 machines=$2
    LAUNCH=("$ACCELERATE" launch --num_machines "$machines" --num_processes "$total"
            --dynamo_backend no)
    [ -n "${ACCELERATE_CONFIG:-}" ] && LAUNCH+=(--config_file "$ACCELERATE_CONFIG")
    # several processes: DDP (on a machine without GPUs acchooks runs it over gloo)
    if [ "$total" -gt 1 ] && [ -z "${ACCELERATE_CONFIG:-}" ]; then LAUNCH+=(--multi_gpu); fi
    if [ "$GPUS" -eq 0 ] && [ "$total" -eq 1 ]; then LAUNCH+=(--cpu); fi
    if [ -n "${LAUNCH_ARGS:-}" ]; then
        local extra
        read -r -a extra <<< "$LAUNCH_ARGS"
        LAUNCH+=("${extra[@]}")
    fi
}

# The trainer command line every (re)start runs: resume from the newest checkpoint.
acchooks_train_args() {
    # shellcheck disable=SC2034  # used by the sourcing script
    TRAIN=("$ROOT/train.py" --config "$CONFIG" --work-dir "$WORK_DIR" --resume auto "$@")
}

# A process and all its descendants, one pid a line (the launcher and its trainers).
acchooks_process_tree() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do acchooks_process_tree "$child"; done
    echo "$1"
}

# Ask every trainer process to checkpoint and stop: signal the trainers themselves, not
# only the launcher. `scancel --signal=TERM JOB` signals the processes of the job's steps
# on every node (the launchers and the trainers, never this batch shell); TERM to srun
# itself would cancel the step and kill the trainers. Without Slurm: the launcher and
# every process below it. (A trainer whose launcher dies anyway stops at its next
# iteration with a checkpoint: acchooks/signals.py.)
acchooks_stop_trainer() {
    echo "acchooks: $1 received at $(date -Is): asking the trainers to checkpoint and stop"
    if [ -n "${SLURM_JOB_ID:-}" ]; then
        scancel --signal=TERM "$SLURM_JOB_ID" || true
    else
        local pids
        mapfile -t pids < <(acchooks_process_tree "$2")
        kill -TERM "${pids[@]}" 2>/dev/null || true
    fi
}

# Run "$@" (srun ...) in the background so that this shell can handle signals: bash runs
# a trap only after the foreground command returns. Slurm's `--signal=B:USR1@T` and
# `scancel --signal=USR1 --batch` reach this shell only, and `accelerate launch` dies on
# USR1 but forwards TERM to the trainers, so the request is passed on as TERM. The
# launcher SIGKILLs trainers still running TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds after
# its TERM (torch's default 30 s): we give them 100 s to finish the iteration and save.
# Sets STATUS to the command's exit status.
acchooks_run() {
    local pid
    export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-100}
    "$@" &
    pid=$!
    # shellcheck disable=SC2064  # expand $pid now
    trap "acchooks_stop_trainer USR1 $pid" USR1
    # shellcheck disable=SC2064
    trap "acchooks_stop_trainer TERM $pid" TERM
    STATUS=0
    # wait returns >128 when a trapped signal interrupts it: wait again until it has exited
    while :; do
        wait "$pid" && STATUS=0 || STATUS=$?
        kill -0 "$pid" 2>/dev/null || break
    done
    trap - USR1 TERM
}

# After the trainer: requeue a preempted run (once, up to MAX_RESTARTS), else pass on its
# status. `accelerate launch` reports its workers' 75 as 1, hence the marker file too.
acchooks_finish() {
    local marker="$WORK_DIR/preempted.json"
    if [ "$STATUS" -eq "$EXIT_PREEMPTED" ] || [ -f "$marker" ]; then
        [ -f "$marker" ] && echo "acchooks: preempted: $(cat "$marker")"
        if [ -z "${SLURM_JOB_ID:-}" ]; then
            exit "$EXIT_PREEMPTED"
        fi
        if [ "$RESTARTS" -ge "$MAX_RESTARTS" ]; then
            echo "acchooks: preempted after $RESTARTS restarts (MAX_RESTARTS=$MAX_RESTARTS): not requeuing"
            exit "$EXIT_PREEMPTED"
        fi
        echo "acchooks: requeuing job $SLURM_JOB_ID (restart $((RESTARTS + 1)))"
        # Slurm stops this shell once the job is requeued; the next start resumes
        if scontrol requeue "$SLURM_JOB_ID"; then exit 0; fi
        echo "acchooks: scontrol requeue failed (cancelled job, or JobRequeue=0?)" >&2
        exit "$EXIT_PREEMPTED"
    fi
    echo "acchooks: trainer exited with status $STATUS at $(date -Is)"
    exit "$STATUS"
}
