"""Ops: the registry (one OpDef per op), each op family's records, and the op-building API
(`api`) that the records' gradients and users both call. `families` imports every family."""
