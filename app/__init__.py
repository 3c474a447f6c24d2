"""Trainyard: training as a service."""
