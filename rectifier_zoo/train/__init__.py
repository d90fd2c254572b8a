"""Training under tf.distribute (TensorFlow only): config, recipes, the loop, run folders."""
