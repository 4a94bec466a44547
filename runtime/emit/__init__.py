"""The LLVM vocabulary kernels are written in: the scalar emitter and loop helpers,
index evaluation of fused bodies, and vectorisable transcendentals."""
