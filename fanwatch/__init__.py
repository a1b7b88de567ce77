"""fanwatch: file-access monitoring and control with Linux fanotify."""

__version__ = "0.1.0"
