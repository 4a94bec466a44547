"""All of ONNX: import (`importer`), the op table (`table`, `ops`, `nn_ops`), export and
the onnx.backend adapter."""
