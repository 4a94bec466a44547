"""Kernel emitters: the kernel ABI, loop nests of fused bodies, reductions, scatters and
the packed GEMM."""
