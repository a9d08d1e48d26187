"""Data: sources -> splits -> a tf.data pipeline, plus the DataInfo the model is built from."""
