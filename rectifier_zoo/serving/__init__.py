"""The SavedModel contract, export to SavedModel / TFLite / ONNX, dense scoring and evaluation
(TensorFlow only)."""
