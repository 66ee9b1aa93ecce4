#!/usr/bin/env bash
# Issue 18's GPU figures in one prepared run, for a lent GPU (device time is scarce: about 11 minutes).
#
#   bash benchmarks/gpu_issue18.sh            # from the repository root, with .venv built
#
# Writes under ${OUT:-benchmarks/results/gpu}: the device's name and memory, the CUDA test files'
# results (the CUDA-only tests among them), shape-steps per second at 1, 8, 32 and 128 stacked shapes
# with CUDA's peak allocation beside what `shapes_per_batch: auto` counts, and the hash grid's PSNR
# against time at 400 x 400 for 300 s. Each part has its own time limit, so one that hangs leaves the
# others their time.
set -u
out=${OUT:-benchmarks/results/gpu}
mkdir -p "$out"
python=.venv/bin/python
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; } > "$out/device.txt" 2>&1
timeout 150 "$python" -m pytest -q -rs tests/inrcore/fields/test_networks.py tests/inrcore/geometry/test_rays.py \
    tests/inrcore/nerf/test_encodings.py tests/inrcore/nerf/test_models.py tests/inrcore/nerf/test_volrender.py \
    tests/inrcore/queries/test_isopoints.py tests/inrcore/queries/test_raycast.py tests/inrcore/sdf/test_batched.py \
    > "$out/cuda_tests.txt" 2>&1
echo "cuda tests: exit $?"
timeout 200 "$python" benchmarks/train_throughput.py --device cuda --steps 100 --sizes 1,8,32,128 \
    --out "$out/train_throughput_cuda.json" > "$out/train_throughput_cuda.log" 2>&1
echo "throughput: exit $?"
timeout 330 "$python" benchmarks/nerf_psnr.py --run ngp:400:300 --eval-every 500 \
    --out "$out/nerf_psnr_cuda.json" > "$out/nerf_psnr_cuda.log" 2>&1
echo "nerf: exit $?"
