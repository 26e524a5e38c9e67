"""Kafka: client factories, topic administration and the development broker."""
