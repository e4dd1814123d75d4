#!/usr/bin/env bash
# GPU check for launch/fsdp.yaml and launch/deepspeed_zero2.yaml, which cannot run on CPUs
# (Accelerate 1.15 turns FSDP on only for GPU-like devices; DeepSpeed needs CUDA). On a
# machine with >= 2 GPUs, from the repository root, in the project's environment:
#   tests/gpu/check_fsdp.sh            # FSDP, then DeepSpeed ZeRO-2 if deepspeed is installed
#   tests/gpu/check_fsdp.sh NAME:YAML:DISTRIBUTED_TYPE ...   # other configs
# (on a CPU machine `tests/gpu/check_fsdp.sh ddp:launch/multi_gpu.yaml:MULTI_CPU` checks
# this script itself.) For each config: train 1 epoch, resume with --resume auto for a
# 2nd, then check that the run really used DISTRIBUTED_TYPE, that epoch_1 and epoch_2
# hold the full (unsharded) model, loadable into timm, and an unsharded optimizer state.
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-2}
OUT=${OUT:-$(mktemp -d)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

check() {  # check NAME WORK_DIR DISTRIBUTED_TYPE
    python - "$@" <<'PY'
import glob, json, sys
import timm
from safetensors.torch import load_file
name, work, dist = sys.argv[1:4]
logs = sorted(glob.glob(f'{work}/*.log.json'))
env = json.loads(open(logs[0]).readline())['env_info']
assert env['distributed_type'] == f'DistributedType.{dist}', f"{name}: ran as {env['distributed_type']}"
assert 'resumed from' in open(logs[-1][:-len('.json')]).read(), f'{name}: 2nd run did not resume'
model = timm.create_model('test_resnet', num_classes=4)
full = {tuple(p.shape) for p in model.parameters()}
for ckpt in ('epoch_1', 'epoch_2'):
    model.load_state_dict(load_file(f'{work}/{ckpt}/model.safetensors'))  # strict, full shapes
    opt = {tuple(v.shape) for v in load_file(f'{work}/{ckpt}/optimizer.safetensors').values()}
    assert full <= opt, f'{name} {ckpt}: optimizer state is sharded/flat: {sorted(full - opt)[:3]}'
print(f'{name}: OK ({dist}; full model and optimizer state in epoch_1, epoch_2; resumed)')
PY
}

run() {  # run NAME:YAML:DISTRIBUTED_TYPE
    local name yaml dist work
    IFS=: read -r name yaml dist <<< "$1"
    work=$OUT/$name
    for epochs in 1 2; do
        accelerate launch --config_file "$yaml" --num_processes "$NPROC" \
            train.py --config tests/data/tiny_cli.py --work-dir "$work" --resume auto \
            --cfg-options runner.max_epochs=$epochs data.samples_per_gpu=8
    done
    check "$name" "$work" "$dist"
}

if [ $# -eq 0 ]; then
    set -- fsdp:launch/fsdp.yaml:FSDP
    if python -c 'import deepspeed' 2>/dev/null; then
        set -- "$@" deepspeed_zero2:launch/deepspeed_zero2.yaml:DEEPSPEED
    else
        echo "deepspeed_zero2: SKIPPED (pip install deepspeed to check it)"
    fi
fi
for spec in "$@"; do run "$spec"; done
echo "launch checks passed; outputs in $OUT"
