#!/usr/bin/env bash
# One node, GPUS processes (one per GPU), preemption-safe. From the repository root:
#   mkdir -p logs
#   CONFIG=configs/x.py WORK_DIR=work_dirs/x GPUS=4 \
#     sbatch --partition=gpu --time=24:00:00 --gres=gpu:4 --cpus-per-task=32 \
#     launch/slurm_single_node.sh --cfg-options optimizer.lr=0.2
# Settings: see launch/slurm_common.sh. Slurm needs logs/ to exist before the job starts.
#SBATCH --job-name=acchooks
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --output=logs/%x-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
set -euo pipefail

# sbatch runs a copy of this script from its spool directory, so find the repository
# from the submit directory (or ACCHOOKS_ROOT), not from $0
# shellcheck source=launch/slurm_common.sh
source "${ACCHOOKS_ROOT:-${SLURM_SUBMIT_DIR:-.}}/launch/slurm_common.sh"

acchooks_setup
acchooks_launch_options "$NPROC" 1
acchooks_train_args "$@"
# srun: one task owning the whole allocation (Slurm >= 22.05 no longer passes sbatch's
# --cpus-per-task on to srun, so pass it explicitly)
acchooks_run srun --ntasks=1 --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" \
    "${LAUNCH[@]}" "${TRAIN[@]}"
acchooks_finish
