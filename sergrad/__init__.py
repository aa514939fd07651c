"""sergrad: privacy audits of federated speech-emotion recognition."""

__version__ = "0.1.0"
