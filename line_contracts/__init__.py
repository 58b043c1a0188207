"""Contracts shared by every deployable: message formats, the model contract, settings base.

Nothing here imports TensorFlow or Kafka clients, so every process can import it cheaply.
"""
