#!/usr/bin/env bash
# Several nodes, GPUS processes per node, DDP (or ACCELERATE_CONFIG=launch/fsdp.yaml),
# preemption-safe. From the repository root, on a file system every node sees:
#   mkdir -p logs
#   CONFIG=configs/x.py WORK_DIR=work_dirs/x GPUS=8 \
#     sbatch --nodes=4 --partition=gpu --time=24:00:00 --gres=gpu:8 --cpus-per-task=64 \
#     launch/slurm_multi_node.sh
# Settings: see launch/slurm_common.sh; MAIN_PORT (default 29500) is the rendezvous port.
#SBATCH --job-name=acchooks
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --output=logs/%x-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
set -euo pipefail

# shellcheck source=launch/slurm_common.sh
source "${ACCHOOKS_ROOT:-${SLURM_SUBMIT_DIR:-.}}/launch/slurm_common.sh"

acchooks_setup
# rank 0's host is the first node of the allocation; every node dials it
# awk reads all of its input: `head -n1` could SIGPIPE scontrol, fatal under pipefail
MAIN_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk "NR == 1")
MAIN_PORT=${MAIN_PORT:-29500}
acchooks_launch_options "$((NPROC * SLURM_NNODES))" "$SLURM_NNODES"
LAUNCH+=(--main_process_ip "$MAIN_HOST" --main_process_port "$MAIN_PORT")
acchooks_train_args "$@"
# one `accelerate launch` per node; SLURM_NODEID must be read inside each task, hence
# the single quotes (the batch shell runs on node 0 only)
# shellcheck disable=SC2016
acchooks_run srun --nodes="$SLURM_NNODES" --ntasks-per-node=1 \
    --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" \
    bash -c 'exec "$1" launch --machine_rank "$SLURM_NODEID" "${@:3}"' bash \
    "${LAUNCH[@]}" "${TRAIN[@]}"
acchooks_finish
