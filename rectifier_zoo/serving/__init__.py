"""Serving: the SavedModel contract, export to SavedModel / TFLite / ONNX, dense scoring and the
evaluator (TensorFlow only; `contract`, `protocols`, `publish`, `report` and `cli` are pure
Python).

- `contract`: endpoint, input and output names, `assets.extra` files, metadata keys, readers.
- `servable`: what a model must be to be exported; the softmax the endpoints serve.
- `dense`: `DenseScorer`, multi-view testing on feature maps (Sec. 2.3, "Testing").
- `limits`: the size checks of a request, before anything is decoded.
- `endpoints`: the three endpoints in a `keras.export.ExportArchive`, and the metadata.
- `publish`: version folders and atomic renames.
- `export`: `export_model`, the versioned SavedModel.
- `convert`: `export_tflite`, `export_onnx`.
- `protocols`, `views`, `evaluation`, `report`: the evaluator of exports and ensembles.
- `cli`: the `rectifier-zoo-export` and `rectifier-zoo-evaluate` commands.
"""
