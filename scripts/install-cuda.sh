#!/usr/bin/env bash
# Installs what `cargo build --features cuda` needs on a machine without the CUDA toolkit: nvcc,
# the headers and the libraries the build links against, CUDA 13.0, from NVIDIA's PyPI wheels
# (nothing else is fetched). Run it on the build machine, not the GPU machine: the binary it builds
# finds the driver and CUDA 13 libraries of the machine it runs on (libcuda.so.1, libcublas.so.13,
# libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13).
#
# Prints the lines to eval before building:
#   eval "$(scripts/install-cuda.sh)" && cargo build --release --features cuda
#
# CUDA 13.0 because PTX built by a newer nvcc than the driver's CUDA version is refused at load
# time (CUDA_ERROR_UNSUPPORTED_PTX_VERSION); the H100 machines this was checked on run driver 580
# (CUDA 13.0). libcuda.so is a link-time stub made from cuda.h, as the toolkit's own
# lib64/stubs/libcuda.so is: the real one comes with the driver.
# Cached: a second run finds the tree and prints the same lines.
#   MEMAUDIT_CUDA_DIR     where it goes (default ~/.cache/memaudit/cuda-13.0)
#   CUDA_COMPUTE_CAP      GPU generation to build kernels for (default 90: H100/H200)
set -euo pipefail
dir=${MEMAUDIT_CUDA_DIR:-$HOME/.cache/memaudit/cuda-13.0}
cap=${CUDA_COMPUTE_CAP:-90}
wheels=(
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
  nvidia-curand==10.4.0.35 nvidia-cublas==13.0.2.14
)

if [ ! -x "$dir/bin/nvcc" ] || [ ! -f "$dir/lib/stubs/libcuda.so" ]; then
  command -v gcc >/dev/null || { echo "install-cuda: gcc is needed (nvcc's host compiler)" >&2; exit 1; }
  mkdir -p "$(dirname "$dir")"
  tmp=$(mktemp -d "$(dirname "$dir")/.cuda.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "install-cuda: downloading ${#wheels[@]} wheels (~680 MB, cuBLAS most of it)" >&2
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
    --platform manylinux2010_x86_64 --dest "$tmp/whl" "${wheels[@]}" >&2
  mkdir -p "$tmp/unpacked"
  for w in "$tmp"/whl/*.whl; do
    python3 -m zipfile -e "$w" "$tmp/unpacked"
  done
  root="$tmp/unpacked/nvidia/cu13"
  chmod +x "$root"/bin/* "$root"/nvvm/bin/*
  # nvcc looks for libnvvm under nvvm/lib64; the wheel puts it in lib/.
  mkdir -p "$root/nvvm/lib64" "$root/lib/stubs"
  ln -sf ../../lib/libnvvm.so.4 "$root/nvvm/lib64/libnvvm.so"
  # The linker wants the unversioned names.
  for so in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13; do
    ln -sf "$so" "$root/lib/${so%.so.*}.so"
  done
  # Link-time stub of the driver library: every cu* function cuda.h declares (versioned names
  # included), each an empty body; soname libcuda.so.1 so the binary loads the real driver.
  grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$root/include/cuda.h" | sort -u |
    awk '{ print "void " $1 "(void) {}" }' >"$tmp/libcuda-stub.c"
  gcc -shared -fPIC -w -Wl,-soname,libcuda.so.1 -o "$root/lib/stubs/libcuda.so" "$tmp/libcuda-stub.c"
  "$root/bin/nvcc" --version >/dev/null
  rm -rf "$dir"
  mv "$root" "$dir"
fi

echo "export CUDA_ROOT='$dir' CUDA_COMPUTE_CAP='$cap' PATH='$dir/bin':\"\$PATH\""
