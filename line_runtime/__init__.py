"""What every deployable needs at run time, below them all: open an exported model version and run it on a
backend (`model`), the settings base with its error messages (`settings`), the Kafka preflight
(`kafka_check`) and the CPUs a container may really use (`cpus`). It imports only `line_contracts`; worker, training and producer_sim import it.
"""
