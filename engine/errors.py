"""Typed errors raised by the engine.

The engine never prints or exits; the CLI and the UI turn these into one
clear sentence and an exit code. Every message is a complete sentence
written for the person using AssetLens.
"""

from __future__ import annotations


class AssetLensError(Exception):
    """Base class: something the user can act on."""

    exit_code = 1


class UsageError(AssetLensError):
    """A bad argument (empty query, k <= 0, a file where a folder is expected)."""

    exit_code = 2


class ModelNotFoundError(AssetLensError):
    """The requested model is neither exported nor a valid model directory."""


class ModelLoadError(AssetLensError):
    """An exported model directory is damaged or incompatible."""


class DeviceUnavailableError(AssetLensError):
    """The requested execution device (CUDA) cannot be used here."""


class StoreError(AssetLensError):
    """The vector store cannot be opened or answered with an error."""


class StoreLockedError(StoreError):
    """A Milvus Lite file is held by another process."""


class ModelMismatchError(AssetLensError):
    """A collection holds embeddings of another model or dimension."""


class ImageDecodeError(AssetLensError):
    """One image could not be read; indexing skips it and counts it."""


class ExportError(AssetLensError):
    """Model export or its parity check failed."""


class GenerationError(AssetLensError):
    """Image generation failed; the message never contains the API key."""


class StoreWriteError(StoreError):
    """A write to the vector store failed (a full disk, a lost server); rows written before it are kept."""


class LibraryDamagedError(StoreError):
    """Files of a Milvus Lite library are missing or unreadable; nothing was opened or changed."""


class LibraryVersionError(StoreError):
    """A collection's AssetLens metadata is of a newer version than this AssetLens reads."""


class ReadOnlyLibraryError(StoreError):
    """A write was asked of a library opened read-only."""


class ModelDownloadError(AssetLensError):
    """A registry model could not be fetched from the Hugging Face Hub (no network, offline mode, a gated
    repository, a full disk, an interrupted download); nothing was installed."""


class ModelVerificationError(ModelDownloadError):
    """Fetched files are not what the registry pins (revision, sha256, preprocessing, self-check values);
    nothing was installed."""
