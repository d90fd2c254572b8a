"""Training under tf.distribute: the config and recipes (pure Python), the loop and its pieces.

- `config`: `Config`, every setting declared once; `recipes`: `PAPER` and the named recipes;
  `cli`: the flags generated from the config, and `main` / `run`.
- `loop.train(config)`: the loop; `state` (model, optimizer, counters; checkpoints), `steps`,
  `schedule`, `metrics`, `report`, `signals`, `run_dir` (config.json, resume, reading a run
  back), `distribute` (strategies by name).
"""
