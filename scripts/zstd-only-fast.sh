# shellcheck shell=bash
# Sourced by scripts/build-static and scripts/build-static-aarch64. vmsift compresses with
# zstd at level 1 only, which is the "fast" strategy for every input size (zstd's
# lib/compress/clevels.h): leaving out the other strategies' block compressors keeps about
# 200 KB of code the collector never runs out of the binary; the output is the same.
ZSTD_ONLY_FAST="-DZSTD_EXCLUDE_DFAST_BLOCK_COMPRESSOR -DZSTD_EXCLUDE_GREEDY_BLOCK_COMPRESSOR \
-DZSTD_EXCLUDE_LAZY_BLOCK_COMPRESSOR -DZSTD_EXCLUDE_LAZY2_BLOCK_COMPRESSOR \
-DZSTD_EXCLUDE_BTLAZY2_BLOCK_COMPRESSOR -DZSTD_EXCLUDE_BTOPT_BLOCK_COMPRESSOR \
-DZSTD_EXCLUDE_BTULTRA_BLOCK_COMPRESSOR"
