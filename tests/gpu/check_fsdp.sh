#!/usr/bin/env bash
# FSDP / DeepSpeed launch check, one command, from the repository root, in the project's
# environment (exits non-zero on any failure):
#   tests/gpu/check_fsdp.sh            # FSDP1 (launch/fsdp.yaml), FSDP2 (launch/fsdp2.yaml),
#                                      # then DeepSpeed ZeRO-2 if deepspeed is installed
#   tests/gpu/check_fsdp.sh NAME:YAML:DISTRIBUTED_TYPE ...   # other configs
# NPROC (default: the number of GPUs, at least 1; FSDP with one process still goes through
# the full-state-dict gather and load) and MIXED (default: the yaml's, bf16) override.
# On a CPU machine: NPROC=2 MIXED=no tests/gpu/check_fsdp.sh  (FSDP over gloo, ~5 min).
# For each config: train 2 epochs straight; train 1 epoch, then --resume auto to 2; check
# that the runs used DISTRIBUTED_TYPE, resumed, that epoch_1/epoch_2 hold the full model
# (strict load into timm) and the unsharded optimizer state (numbered like the unsharded
# optimizer), and that the resumed run ends with the straight run's weights and optimizer state.
set -euo pipefail
cd "$(dirname "$0")/../.."
GPUS=$(python -c 'import torch; print(torch.cuda.device_count())')
NPROC=${NPROC:-$(( GPUS > 0 ? GPUS : 1 ))}
MIXED=${MIXED:-}
OUT=${OUT:-$(mktemp -d)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}  # --deterministic on CUDA
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

check() {  # check NAME OUT_DIR DISTRIBUTED_TYPE
    python - "$@" <<'PY'
import glob, json, sys
import timm, torch
from safetensors.torch import load_file
name, out, dist = sys.argv[1:4]
straight, resumed = f'{out}/straight', f'{out}/resumed'
for work in (straight, resumed):
    for log in sorted(glob.glob(f'{work}/*.log.json')):
        env = json.loads(open(log).readline())['env_info']
        assert env['distributed_type'] == f'DistributedType.{dist}', f"{name}: ran as {env['distributed_type']}"
logs = sorted(glob.glob(f'{resumed}/*.log.json'))
assert 'resumed from' in open(logs[-1][:-len('.json')]).read(), f'{name}: 2nd run did not resume'
model = timm.create_model('test_resnet', num_classes=4)
shapes = [tuple(p.shape) for p in model.parameters()]
for ckpt in ('epoch_1', 'epoch_2'):
    model.load_state_dict(load_file(f'{resumed}/{ckpt}/model.safetensors'))  # strict, full shapes
    opt = load_file(f'{resumed}/{ckpt}/optimizer.safetensors')
    got = [tuple(opt[f'state.{i}.momentum_buffer'].shape) if f'state.{i}.momentum_buffer' in opt else None
           for i in range(len(shapes))]
    assert got == shapes, f'{name} {ckpt}: optimizer state is sharded/flat or misnumbered: {got[:3]} vs {shapes[:3]}'
for f in ('model', 'optimizer'):
    a = load_file(f'{straight}/epoch_2/{f}.safetensors')
    b = load_file(f'{resumed}/epoch_2/{f}.safetensors')
    assert a.keys() == b.keys(), f'{name}: {f} keys differ'
    worst = max(((a[k].double() - b[k].double()).abs().max().item() for k in a), default=0.0)
    assert worst <= 1e-4, f'{name}: resumed {f} differs from the straight run by {worst}'
print(f'{name}: OK ({dist}; full model and optimizer state in epoch_1, epoch_2; resume == straight)')
PY
}

launch() {  # launch YAML WORK EPOCHS [args]
    local yaml=$1 work=$2 epochs=$3; shift 3
    accelerate launch --config_file "$yaml" --num_processes "$NPROC" ${MIXED:+--mixed_precision "$MIXED"} \
        train.py --config tests/data/tiny_cli.py --work-dir "$work" --deterministic \
        --cfg-options runner.max_epochs="$epochs" data.samples_per_gpu=8 "$@"
}

run() {  # run NAME:YAML:DISTRIBUTED_TYPE
    local name yaml dist
    IFS=: read -r name yaml dist <<< "$1"
    launch "$yaml" "$OUT/$name/straight" 2
    launch "$yaml" "$OUT/$name/resumed" 1
    launch "$yaml" "$OUT/$name/resumed" 2 --resume auto
    check "$name" "$OUT/$name" "$dist"
}

if [ $# -eq 0 ]; then
    set -- fsdp:launch/fsdp.yaml:FSDP fsdp2:launch/fsdp2.yaml:FSDP
    if python -c 'import deepspeed' 2>/dev/null; then
        set -- "$@" deepspeed_zero2:launch/deepspeed_zero2.yaml:DEEPSPEED
    else
        echo "deepspeed_zero2: SKIPPED (pip install deepspeed to check it)"
    fi
fi
for spec in "$@"; do run "$spec"; done
echo "launch checks passed (NPROC=$NPROC); outputs in $OUT"
